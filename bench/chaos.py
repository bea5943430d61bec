"""Chaos: sustained load with wrk against ``gearshift serve`` while things break, then every 200
is looked up in the ledger. Prints one JSON object (and a Markdown table on stderr).

    .venv/bin/python bench/chaos.py                       # SQLite ledger
    .venv/bin/python bench/chaos.py --storage postgresql  # a PostgreSQL cluster of its own

What runs, all on loopback and owned by the script: the fake OpenAI-compatible provider
(``tests/fakes/openai_server.py``, a subprocess), Redis (``redis-server``: the budget counters of
``policy.redis_url``, with one budget so every request touches it), the ledger (a SQLite file, or
a PostgreSQL cluster initialised in a temp dir) and ``gearshift serve``. wrk drives
``--connections`` connections for ``--seconds`` per phase; its Lua script records the status and
``x-request-id`` of every response. Phases, each with its event ``--event-at`` seconds in:

- ``steady``: nothing breaks;
- ``kill9``: the gateway gets SIGKILL and is restarted at once;
- ``sigterm``: the gateway gets SIGTERM (drains, flushes), and is restarted;
- ``db_outage``: the database is gone for ``--outage-s`` s (SQLite: another connection holds the
  write lock; PostgreSQL: the server is stopped with ``pg_ctl stop -m fast`` and started again);
- ``redis_outage``: two gateway replicas (one wrk each); Redis is killed for ``--outage-s`` s;
- ``upstream_dies_mid_stream``: streamed requests; the provider gets SIGKILL while streams are
  open and is restarted 2 s later.

Per phase: responses, 200s, 5xx, ledger rows (rows of the responses the phase's clients got, plus
rows with no response at all), **missing** (a 200 whose request id has no row), **duplicated** (a
request id answered twice, or a row counted twice), rows with no response (requests in flight when
the gateway was killed, or when wrk stopped at the phase's end: their clients got nothing), and
the gateway's RSS (max over the replicas) at the phase's end and its maximum, sampled every 2 s.
The final SIGTERM flushes, then the ledger is read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from gateway_overhead import PROMPT, rss_mb
from processes import free_port, serve_command, wait_http

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("steady", "kill9", "sigterm", "db_outage", "redis_outage", "upstream_dies_mid_stream")

WRK_LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  out = io.open("{prefix}" .. tid .. ".txt", "w")
  out:setvbuf("line")
end
function response(status, headers, body)
  out:write(status, " ", headers["x-request-id"] or "-", "\\n")
end
"""


class Postgres:
    """A throwaway cluster the script can stop and start (running as ``postgres`` under root)."""

    def __init__(self, directory: Path) -> None:
        initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1]
        self.bin = initdb.parent
        self.dir = directory
        self.port = free_port()
        self.run: list[str] = []
        if os.getuid() == 0:
            shutil.chown(directory, "postgres")
            self.run = ["runuser", "-u", "postgres", "--"]
        quiet = {"stdout": subprocess.DEVNULL, "check": True}
        subprocess.run([*self.run, str(initdb), "-D", str(directory / "pg"), "-U", "gs",
                        "--auth=trust"], **quiet)  # type: ignore[call-overload]  # fmt: skip
        self.start()
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", "gs", "chaos"], check=True)  # fmt: skip
        self.url = f"postgresql://gs@127.0.0.1:{self.port}/chaos"

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self.run, str(self.bin / "pg_ctl"), "-D", str(self.dir / "pg"), "-w",
                        *args], check=True, stdout=subprocess.DEVNULL)  # fmt: skip

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -h 127.0.0.1 -c fsync=off"
        self._ctl("-l", str(self.dir / "pg.log"), "-o", opts, "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")


class Rig:
    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp = tmp
        self.args = args
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.upstream_port = free_port()
        self.upstream: subprocess.Popen[bytes] | None = None
        self.start_upstream()
        self.redis_port = free_port()
        self.redis: subprocess.Popen[bytes] | None = None
        self.start_redis()
        self.pg: Postgres | None = None
        if args.storage == "postgresql":
            pg_dir = tmp / "pgdata"
            pg_dir.mkdir()
            self.pg = Postgres(pg_dir)
            self.storage = self.pg.url
        else:
            self.sqlite_path = tmp / "ledger.db"
            self.storage = f"sqlite:///{self.sqlite_path}?busy_timeout_ms=200"
        self.config = self.write_config()
        self.gateways: dict[int, subprocess.Popen[bytes]] = {}  # port -> process

    # ---- processes ------------------------------------------------------------------------

    def _spawn(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "GEARSHIFT_LEDGER_SPOOL_DIR": str(self.tmp / "spool")}
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115  # the child keeps it
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def start_upstream(self) -> None:
        argv = [sys.executable, "-m", "tests.fakes.openai_server", "--port",
                str(self.upstream_port), "--chunk-delay-ms", "5"]  # fmt: skip
        self.upstream = self._spawn(argv, "upstream")
        wait_http(f"http://127.0.0.1:{self.upstream_port}/v1/models", self.upstream)

    def start_redis(self) -> None:
        argv = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no"]  # fmt: skip
        self.redis = self._spawn(argv, "redis")
        time.sleep(0.3)

    def write_config(self) -> Path:
        base = f"http://127.0.0.1:{self.upstream_port}/v1"
        config = {
            "models": [
                {
                    "name": "small",
                    "base_url": base,
                    "tier": 1,
                    "price": {"input_per_mtok": 0.25, "output_per_mtok": 1.25},
                },
                {
                    "name": "large",
                    "base_url": base,
                    "model": "large-2025",
                    "tier": 3,
                    "price": {"input_per_mtok": 15, "output_per_mtok": 75},
                },
            ],
            "routers": [{"name": "auto", "models": ["small", "large"], "fallback": "large"}],
            "storage": self.storage,
            "policy": {
                "redis_url": f"redis://127.0.0.1:{self.redis_port}/0",
                "budgets": [{"name": "everything", "limit_usd": 1_000_000, "period": "month"}],
            },
        }
        path = self.tmp / "gearshift.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start_gateway(self, port: int) -> None:
        proc = self._spawn(serve_command(self.config, port), f"gateway-{port}")
        self.gateways[port] = proc
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)

    def stop_gateway(self, port: int, sig: signal.Signals = signal.SIGTERM) -> None:
        proc = self.gateways.pop(port)
        proc.send_signal(sig)
        proc.wait(120)

    def close(self) -> None:
        for port in list(self.gateways):
            self.stop_gateway(port)
        for proc in (self.upstream, self.redis):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if self.pg is not None:
            self.pg.stop()

    # ---- load -----------------------------------------------------------------------------

    def wrk(self, port: int, phase: str, *, stream: bool) -> subprocess.Popen[bytes]:
        body = {"model": "auto", "messages": [{"role": "user", "content": PROMPT}]}
        if stream:
            body["stream"] = True
        out = self.tmp / "ids" / phase
        out.mkdir(parents=True, exist_ok=True)
        script = self.tmp / f"{phase}-{port}.lua"
        lua = WRK_LUA.replace("{body}", json.dumps(json.dumps(body)))
        script.write_text(lua.replace("{prefix}", f"{out}/{port}-"))
        argv = ["wrk", "-t2", f"-c{self.args.connections}", f"-d{self.args.seconds}s",
                "--timeout", "20s", "-s", str(script),
                f"http://127.0.0.1:{port}/v1/chat/completions"]  # fmt: skip
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    # ---- the events -----------------------------------------------------------------------

    def event(self, phase: str, port: int) -> None:
        outage = self.args.outage_s
        if phase == "kill9":
            self.stop_gateway(port, signal.SIGKILL)
            self.start_gateway(port)
        elif phase == "sigterm":
            self.stop_gateway(port, signal.SIGTERM)
            self.start_gateway(port)
        elif phase == "db_outage":
            if self.pg is not None:
                self.pg.stop()
                time.sleep(outage)
                self.pg.start()
            else:
                lock = sqlite3.connect(self.sqlite_path, isolation_level=None, timeout=30)
                lock.execute("BEGIN EXCLUSIVE")
                time.sleep(outage)
                lock.execute("ROLLBACK")
                lock.close()
        elif phase == "redis_outage":
            assert self.redis is not None
            self.redis.kill()
            self.redis.wait()
            time.sleep(outage)
            self.start_redis()
        elif phase == "upstream_dies_mid_stream":
            assert self.upstream is not None
            self.upstream.kill()
            self.upstream.wait()
            time.sleep(2)
            self.start_upstream()


class AnsweredCount:
    """How many responses wrk's Lua script has recorded so far in a phase: counts the newlines
    appended to its files since the last call (a long soak never rereads a million lines)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.offsets: dict[Path, int] = {}
        self.total = 0

    def __call__(self) -> int:
        for file in self.directory.glob("*.txt"):
            with file.open("rb") as handle:
                handle.seek(self.offsets.get(file, 0))
                data = handle.read()
            self.offsets[file] = self.offsets.get(file, 0) + len(data)
            self.total += data.count(b"\n")
        return self.total


def rss_parts_mb(pid: int) -> tuple[float, float]:
    """(anonymous, file-backed) resident MB of one process: a memory-mapped file's pages (the
    spool's, the shared libraries') are file-backed and count in RSS as well as the heap."""
    parts = {"RssAnon": 0, "RssFile": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in parts:
                parts[name] = int(value.split()[0])
    except OSError:
        pass
    return round(parts["RssAnon"] / 1024, 1), round(parts["RssFile"] / 1024, 1)


def run_phase(rig: Rig, phase: str, port: int) -> dict[str, Any]:
    ports = [port]
    if phase == "redis_outage":
        ports.append(free_port())
        rig.start_gateway(ports[1])
    started = time.time()
    loads = [rig.wrk(p, phase, stream=phase == "upstream_dies_mid_stream") for p in ports]
    rss: list[float] = []
    # Every --trend-s seconds: seconds in, responses so far, RSS and its anonymous and file-backed
    # parts (the largest gateway's), so a long soak shows RSS against requests served.
    trend: list[dict[str, float]] = []
    milestone: dict[str, float] = {}  # the first sample at or past --stop-at-requests
    answered = AnsweredCount(rig.tmp / "ids" / phase)
    sampler_stop = threading.Event()
    every = max(1, round(rig.args.trend_s / 2))

    def sample() -> None:
        while not sampler_stop.wait(2):
            pids = [p.pid for p in rig.gateways.values()]
            rss.append(max((rss_mb(pid) for pid in pids), default=0.0))
            count = answered()
            if len(rss) % every == 0 or (count >= rig.args.stop_at_requests and not milestone):
                anon, file = max((rss_parts_mb(pid) for pid in pids), default=(0.0, 0.0))
                point = {"s": round(time.time() - started), "requests": count,
                         "rss_mb": rss[-1], "anon_mb": anon, "file_mb": file}  # fmt: skip
                trend.append(point)
                print(f"chaos: {phase} {point}", file=sys.stderr, flush=True)
            if count >= rig.args.stop_at_requests and not milestone:
                milestone.update(trend[-1])
                for load in loads:  # wrk prints its summary on SIGINT and exits
                    load.send_signal(signal.SIGINT)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(rig.args.event_at)
    rig.event(phase, port)
    outputs = [load.communicate()[0].decode() for load in loads]
    sampler_stop.set()
    sampler.join()
    rss_end = max(rss_mb(p.pid) for p in rig.gateways.values())
    if phase == "redis_outage":
        rig.stop_gateway(ports[1])
    return {
        "phase": phase,
        "started": started,
        "ended": time.time(),
        "rss_mb_end": rss_end,
        "rss_mb_max": max([*rss, rss_end]),
        "rss_trend": trend,
        "stopped_at_requests": milestone or None,
        "wrk_tail": [o.strip().splitlines()[-3:] for o in outputs],
    }


def responses(tmp: Path, phase: str) -> list[tuple[int, str]]:
    seen: list[tuple[int, str]] = []
    for file in sorted((tmp / "ids" / phase).glob("*.txt")):
        for line in file.read_text().splitlines():
            status, _, request_id = line.partition(" ")
            if status.isdigit():
                seen.append((int(status), request_id))
    return seen


def tally(rig: Rig, phases: list[dict[str, Any]]) -> None:
    """Fill in each phase's counts from the ledger (after the final SIGTERM flushed it)."""
    from gearshift.ledger import open_store

    with open_store(rig.storage, spool_dir=rig.tmp / "spool") as store:
        rows = {str(r[0]): float(r[1]) for r in store.execute_read("SELECT id, ts FROM requests")}
        doubled = store.execute_read("SELECT id FROM requests GROUP BY id HAVING COUNT(*) > 1")
    answered_anywhere = set()
    per_phase = []
    for phase in phases:
        got = responses(rig.tmp, phase["phase"])
        per_phase.append(got)
        answered_anywhere |= {rid for _, rid in got}
    for phase, got in zip(phases, per_phase, strict=True):
        statuses = Counter(status for status, _ in got)
        ok_ids = [rid for status, rid in got if status == 200]
        unique_ok = set(ok_ids)
        seen_here = {rid for _, rid in got}
        started, ended = phase["started"], phase["ended"]
        in_window = {rid for rid, ts in rows.items() if started <= ts <= ended}
        unanswered = in_window - answered_anywhere  # in flight at a kill, or at wrk's stop
        phase.update(
            responses=len(got),
            served_200=len(ok_ids),
            status_5xx=sum(n for s, n in statuses.items() if s >= 500),
            statuses={str(s): n for s, n in sorted(statuses.items())},
            ledger_rows=len(seen_here & rows.keys()) + len(unanswered),
            rows_for_200s=len(unique_ok & rows.keys()),
            missing=len(unique_ok - rows.keys()),
            duplicated=len(ok_ids) - len(unique_ok) + len(doubled),
            rows_without_response=len(unanswered),
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seconds", type=int, default=30, help="wrk duration per phase")
    parser.add_argument("--event-at", type=float, default=8.0, help="seconds into each phase")
    parser.add_argument("--outage-s", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument(
        "--trend-s",
        type=float,
        default=30.0,
        help="seconds between RSS trend samples (with the responses so far)",
    )
    parser.add_argument(
        "--stop-at-requests",
        type=int,
        default=10**12,
        help="end a phase's load once this many responses were recorded "
        "(the RSS soak: 1000000 with a --seconds long enough to reach it)",
    )
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (apt-get install {tool.split('-')[0]})")
    result: dict[str, Any] = {"loadavg_before": Path("/proc/loadavg").read_text().split()[:3]}
    with tempfile.TemporaryDirectory(prefix="gearshift-chaos-") as name:
        tmp = Path(name)
        tmp.chmod(0o755)  # PostgreSQL runs as its own user and must reach its data directory
        rig = Rig(tmp, args)
        port = free_port()
        phases: list[dict[str, Any]] = []
        try:
            rig.start_gateway(port)
            for phase in args.phases.split(","):
                phases.append(run_phase(rig, phase, port))
                print(f"chaos: {phase} done", file=sys.stderr)
        finally:
            rig.close()  # SIGTERM: the gateway flushes its ledger
        if rig.pg is not None:
            rig.pg.start()
        try:
            tally(rig, phases)
        finally:
            if rig.pg is not None:
                rig.pg.stop()
        left = sorted(str(p.relative_to(tmp)) for p in (tmp / "spool").rglob("*.jsonl"))
        left += [str(p.name) for p in tmp.glob("ledger.db.spool.d/*.jsonl")]
    result.update(storage=args.storage, seconds=args.seconds, connections=args.connections)
    result["phases"] = phases
    result["spool_files_left"] = left
    result["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    result["ok"] = all(p["missing"] == 0 and p["duplicated"] == 0 for p in phases)
    print(json.dumps(result, indent=2))
    print(markdown(phases, args.storage), file=sys.stderr)
    return 0 if result["ok"] else 1


def markdown(phases: list[dict[str, Any]], storage: str) -> str:
    head = (
        "| storage | phase | served 200s | ledger rows | **missing** | duplicated | 5xx | "
        "rows without a response | RSS end / max (MB) |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for p in phases:
        lines.append(
            f"| {storage} | {p['phase']} | {p['served_200']:,} | {p['ledger_rows']:,} | "
            f"**{p['missing']}** | {p['duplicated']} | {p['status_5xx']:,} | "
            f"{p['rows_without_response']} | {p['rss_mb_end']} / {p['rss_mb_max']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
