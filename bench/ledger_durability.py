"""Ledger durability: zero lost rows over N requests through ``gearshift serve`` with a SIGTERM
(and restart) in the middle of the run. Prints one JSON object.

    .venv/bin/python bench/ledger_durability.py --requests 100000 --concurrency 32

What runs: the fake OpenAI-compatible provider (tests/fakes/openai_server.py) and
``gearshift serve``
as subprocesses on loopback, with the ledger on SQLite (default) or ``--storage postgresql://...``.
A client drives N chat completions with ``concurrency`` connections, each tagged with its sequence
number (``x-gearshift-tags: bench_seq=<n>,attempt=<k>``). When ``--sigterm-at`` of them have been
answered, the gateway gets SIGTERM: it must drain in-flight requests, flush the ledger and exit;
a new gateway is started on the same port and the client carries on, retrying any request whose
connection was refused or cut, until N requests have been answered. A final SIGTERM flushes.

Checks, from the ledger itself: every answered request (its ``x-request-id``) has exactly one row;
no (seq, attempt) pair has two rows; rows of attempts that got no answer (cut during the restart)
are counted separately, as are rows left in the spool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from processes import free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent


def write_config(directory: Path, provider_port: int, storage: str) -> Path:
    config = directory / "gearshift.yaml"
    config.write_text(
        f"""
models:
  - name: small
    provider: openai
    base_url: http://127.0.0.1:{provider_port}/v1
    tier: 1
    price: {{input_per_mtok: 0.25, output_per_mtok: 1.25}}
  - name: large
    provider: openai
    base_url: http://127.0.0.1:{provider_port}/v1
    model: large-2025
    tier: 3
    price: {{input_per_mtok: 15, output_per_mtok: 75}}
routers:
  - name: auto
    models: [small, large]
    quality_tolerance: 0.1
    fallback: large
storage: {storage}
server:
  shutdown_grace_s: 30
"""
    )
    return config


def start_gateway(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gearshift", "serve", "--config", str(config), "--port", str(port)],
        cwd=ROOT,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )


class Driver:
    def __init__(self, base_url: str, total: int, concurrency: int) -> None:
        self.base_url = base_url
        self.total = total
        self.concurrency = concurrency
        self.next_seq = 0
        self.answered: dict[str, tuple[int, int]] = {}  # request id -> (seq, attempt)
        self.statuses: Counter[int] = Counter()
        self.unanswered_attempts: list[tuple[int, int]] = []  # (seq, attempt) cut or refused
        self.milestones: dict[int, asyncio.Event] = {}  # answered count -> event
        self.started = time.perf_counter()

    async def run(self) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self.concurrency, force_close=False)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(*(self._worker(session) for _ in range(self.concurrency)))

    async def _worker(self, session: Any) -> None:
        import aiohttp

        url = f"{self.base_url}/v1/chat/completions"
        while self.next_seq < self.total:
            seq = self.next_seq
            self.next_seq += 1
            attempt = 0
            while True:
                body = {
                    "model": "auto",
                    "messages": [{"role": "user", "content": f"request {seq}: say hello"}],
                }
                headers = {"x-gearshift-tags": f"bench_seq={seq},attempt={attempt}"}
                try:
                    async with session.post(url, json=body, headers=headers) as resp:
                        await resp.read()
                        request_id = resp.headers.get("x-request-id")
                        status = resp.status
                except (TimeoutError, aiohttp.ClientError):
                    self.unanswered_attempts.append((seq, attempt))
                    attempt += 1
                    await asyncio.sleep(0.05)  # the gateway is restarting
                    continue
                if request_id is None:
                    raise RuntimeError(f"response without x-request-id (status {status})")
                self.answered[request_id] = (seq, attempt)
                self.statuses[status] += 1
                for count, event in self.milestones.items():
                    if len(self.answered) >= count:
                        event.set()
                break

    def milestone(self, count: int) -> asyncio.Event:
        return self.milestones.setdefault(count, asyncio.Event())


class TcpProxy:
    """Loopback forwarder in front of PostgreSQL that can cut every connection (an outage)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def down(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


class SQLiteLock:
    """Holds SQLite's write lock: every gateway write times out with "database is locked"."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: Any = None

    async def down(self) -> None:
        import sqlite3

        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.conn.execute("BEGIN EXCLUSIVE")

    async def up(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def count_ledger(storage: str, spool_dir: Path) -> tuple[dict[str, dict[str, str]], int]:
    """(request id -> tags, rows still in the spool) of the ledger at ``storage``."""
    from gearshift.ledger import Spool, open_store

    with open_store(storage, spool_dir=spool_dir) as store:
        tags: dict[str, dict[str, str]] = {}
        for request_id, key, value in store.execute_read(
            "SELECT request_id, key, value FROM request_tags WHERE key IN ('bench_seq', 'attempt')"
        ):
            tags.setdefault(str(request_id), {})[str(key)] = str(value)
        for (request_id,) in store.execute_read("SELECT id FROM requests"):
            tags.setdefault(str(request_id), {})
        spools = [*spool_dir.glob("*.spool.jsonl")]
        if store.spool_path is not None:
            spools.append(store.spool_path)
        spool_rows = sum(Spool(p).count() for p in set(spools))
    return tags, spool_rows


async def take_down(
    outage: TcpProxy | SQLiteLock, when: asyncio.Event, args: argparse.Namespace
) -> dict[str, Any]:
    """Make the ledger database unreachable for ``--db-outage-s`` once ``when`` is set."""
    await when.wait()
    t0 = time.perf_counter()
    await outage.down()
    await asyncio.sleep(args.db_outage_s)
    await outage.up()
    return {"db_outage_s": round(time.perf_counter() - t0, 2), "db_outage_at": args.outage_at}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="gearshift-durability-"))
    spool_dir = workdir / "spool"
    os.environ["GEARSHIFT_LEDGER_SPOOL_DIR"] = str(spool_dir)  # inherited by the gateway
    storage = args.storage or f"sqlite:///{workdir / 'ledger.db'}"
    gateway_storage = storage
    outage: TcpProxy | SQLiteLock | None = None
    if args.db_outage_s > 0 and storage.startswith("sqlite"):
        outage = SQLiteLock(storage.removeprefix("sqlite:///"))
        # a short busy timeout, so the locked database shows as an outage (spool), not a wait
        gateway_storage = storage + "?busy_timeout_ms=200"
    elif args.db_outage_s > 0:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(storage)
        outage = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        await outage.up()
        user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        netloc = f"{user}127.0.0.1:{outage.port}"
        gateway_storage = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    provider_port, gateway_port = free_port(), free_port()
    provider = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(provider_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = write_config(workdir, provider_port, gateway_storage)
    log = workdir / "gateway.log"
    gateway = start_gateway(config, gateway_port, log)
    result: dict[str, Any] = {"requests": args.requests, "concurrency": args.concurrency}
    try:
        # in threads: the loop must keep serving the PostgreSQL proxy the gateway starts through
        await asyncio.to_thread(
            wait_http, f"http://127.0.0.1:{provider_port}/v1/models", None, 30.0
        )
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{gateway_port}/healthz", None, 30.0)
        driver = Driver(f"http://127.0.0.1:{gateway_port}", args.requests, args.concurrency)
        sigterm_at = driver.milestone(int(args.requests * args.sigterm_at))
        outage_task = None
        if outage is not None:
            outage_task = asyncio.create_task(
                take_down(outage, driver.milestone(int(args.requests * args.outage_at)), args)
            )
        run = asyncio.create_task(driver.run())
        await sigterm_at.wait()

        # SIGTERM mid-run: the gateway drains in-flight requests and flushes the ledger.
        answered_at_sigterm = len(driver.answered)
        t0 = time.perf_counter()
        gateway.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(gateway.wait, 60)
        drain_s = time.perf_counter() - t0
        gateway = start_gateway(config, gateway_port, log)
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{gateway_port}/healthz", None, 30.0)
        restart_s = time.perf_counter() - t0

        await run
        if outage_task is not None:
            result.update(await outage_task)
        elapsed = time.perf_counter() - driver.started
        gateway.send_signal(signal.SIGTERM)
        final_exit = await asyncio.to_thread(gateway.wait, 60)
    finally:
        for proc in (gateway, provider):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    if isinstance(outage, TcpProxy):
        await outage.down()
    rows, spool_rows = count_ledger(storage, spool_dir)
    # What the gateway's writer reported: rows it replayed from the spool after the outage.
    replayed = sum(
        int(m.group(1))
        for m in re.finditer(r"replayed (\d+) spooled row", log.read_text(errors="replace"))
    )
    answered_ids = set(driver.answered)
    lost = sorted(answered_ids - set(rows))
    pairs = Counter(
        (t.get("bench_seq"), t.get("attempt")) for t in rows.values() if "bench_seq" in t
    )
    duplicates = sum(n - 1 for n in pairs.values() if n > 1)
    unanswered = set(driver.unanswered_attempts)
    rows_unanswered = sum(
        1
        for rid, t in rows.items()
        if rid not in answered_ids and (int(t["bench_seq"]), int(t["attempt"])) in unanswered
    )
    stray = len(rows) - len(answered_ids - set(lost)) - rows_unanswered
    result.update(
        {
            "storage": "sqlite" if storage.startswith("sqlite") else "postgresql",
            "answered": len(answered_ids),
            "status_counts": {str(k): v for k, v in sorted(driver.statuses.items())},
            "ledger_rows": len(rows),
            "lost_rows": len(lost),
            "lost_examples": lost[:5],
            "duplicate_rows": duplicates,
            "attempts_cut_by_restart": len(unanswered),
            "rows_for_cut_attempts": rows_unanswered,
            "unexplained_rows": stray,
            "rows_left_in_spool": spool_rows,
            "rows_replayed_from_spool": replayed,
            "answered_at_sigterm": answered_at_sigterm,
            "sigterm_exit_code": exit_code,
            "final_exit_code": final_exit,
            "drain_and_exit_s": round(drain_s, 3),
            "restart_to_healthy_s": round(restart_s, 3),
            "elapsed_s": round(elapsed, 2),
            "answered_per_s": round(len(answered_ids) / elapsed, 1),
            "ok": not lost and duplicates == 0 and stray == 0 and spool_rows == 0,
        }
    )
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    else:
        result["workdir"] = str(workdir)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sigterm-at", type=float, default=0.5, help="fraction answered")
    parser.add_argument(
        "--db-outage-s",
        type=float,
        default=0.0,
        help="also make the database unreachable this long (SQLite: locked; PostgreSQL: "
        "connections cut by a loopback proxy), after --outage-at of the requests",
    )
    parser.add_argument("--outage-at", type=float, default=0.75, help="fraction answered")
    parser.add_argument("--storage", default=None, help="ledger URL (default: SQLite in a tmp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, ledger)")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT / "src"))
    result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
