"""Ledger writer cost: what ``submit()`` costs the request path, and how fast batches land.

    .venv/bin/python bench/ledger_writer.py [--rows 100000] [--postgres URL]

For each backend (SQLite in a temp dir; PostgreSQL when ``--postgres`` or
``GEARSHIFT_TEST_POSTGRES_URL`` is given):

- ``end_to_end``: submits ``rows`` full ledger records as fast as one thread can (each one a
  ``write()`` to the write-ahead spool, then queued), and reports the per-call cost of
  ``submit()`` (p50/p99 over 1,000-call slices, in microseconds per call), the rows per second
  until ``close()`` returned (the submitting thread and the writer share one GIL), and that every
  row landed;
- ``database_rows_per_s``: the database side alone, ``store.insert_many`` in batches of each
  ``--batch-sizes`` size into a fresh ledger (SQLite: one ``BEGIN IMMEDIATE`` transaction and two
  prepared ``executemany`` per batch, WAL; PostgreSQL: ``COPY`` into the tables, a staging merge
  only when an id is already there), the rate the writer sustains when the gateway is idle.

Prints one JSON object; the bar (issue 15) is >= 20,000 rows/s on both backends.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from gearshift.ledger import LedgerRecord, LedgerWriter, open_store  # noqa: E402


def make_record(i: int, prefix: str = "bench") -> LedgerRecord:
    return LedgerRecord(
        id=f"{prefix}-{i:08d}",
        ts=1_764_000_000.0 + i / 1000,
        dialect="openai",
        requested_model="auto",
        router="auto",
        key_id="key_1",
        tags={"feature": "helpdesk", "team": "support" if i % 2 else "sales"},
        predicted={"small": 0.81, "large": 0.93},
        difficulty=0.4,
        prompt_kind="chat",
        tolerance=0.1,
        chosen_model="small",
        served_model="small",
        prompt_tokens=812,
        completion_tokens=95,
        cost_usd=Decimal("0.00032175"),
        counterfactual_model="large",
        counterfactual_cost_usd=Decimal("0.019305"),
        price_source="config",
        ttfb_ms=12.5,
        latency_ms=80.25,
    )


def run(url: str, rows: int, batch_sizes: list[int]) -> dict[str, Any]:
    store = open_store(url)
    records = [make_record(i) for i in range(rows)]
    writer = LedgerWriter(store)
    slice_us: list[float] = []
    start = time.perf_counter()
    submit_cpu0 = time.thread_time()
    for s in range(0, rows, 1000):
        t0 = time.perf_counter_ns()
        for r in records[s : s + 1000]:
            writer.submit(r)
        slice_us.append((time.perf_counter_ns() - t0) / len(records[s : s + 1000]) / 1000)
    submitted = time.perf_counter() - start
    submit_cpu_us = (time.thread_time() - submit_cpu0) / rows * 1e6
    writer.close()
    total = time.perf_counter() - start
    count = store.count()
    slice_us.sort()
    result: dict[str, Any] = {
        "end_to_end": {
            "rows": rows,
            "rows_in_ledger": count,
            "submit_us_p50": round(statistics.median(slice_us), 2),
            "submit_us_p99": round(slice_us[int(len(slice_us) * 0.99) - 1], 2),
            "submit_cpu_us_mean": round(submit_cpu_us, 2),
            "submit_all_s": round(submitted, 3),
            "written_by_close_s": round(total, 3),
            "rows_per_s": round(rows / total),
            "batch_size": writer.batch_size,
            "batches": writer.stats.batches,
        },
        "database_rows_per_s": {},
    }
    server_pid = _postgres_backend_pid(store)
    for size in batch_sizes:
        fresh = [make_record(i, prefix=f"b{size}") for i in range(rows)]
        t0, cpu0, server0 = time.perf_counter(), time.thread_time(), _cpu_s(server_pid)
        for s in range(0, rows, size):
            store.insert_many(fresh[s : s + size])
        wall = time.perf_counter() - t0
        client_cpu, server_cpu = time.thread_time() - cpu0, _cpu_s(server_pid) - server0
        result["database_rows_per_s"][str(size)] = {
            "wall": round(rows / wall),
            # CPU seconds spent, which other load on the machine inflates far less than wall
            # time: the writer thread's (all of SQLite's work) and the PostgreSQL backend's.
            "writer_cpu_us_per_row": round(client_cpu / rows * 1e6, 2),
            "server_cpu_us_per_row": round(server_cpu / rows * 1e6, 2),
            # What one core each sustains: the slower of the two sides sets the pace.
            "per_core": round(rows / max(client_cpu, server_cpu, 1e-9)),
        }
    result["ok"] = store.count() == rows * (1 + len(batch_sizes))
    store.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get("GEARSHIFT_TEST_POSTGRES_URL"))
    parser.add_argument("--batch-sizes", default="500,2000,5000")
    args = parser.parse_args()
    sizes = [int(n) for n in args.batch_sizes.split(",")]
    result: dict[str, Any] = {"loadavg_before": _loadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = run(f"sqlite:///{tmp}/ledger.db", args.rows, sizes)
    if args.postgres:
        import psycopg

        name = f"gs_bench_{os.getpid()}"
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = args.postgres.rsplit("/", 1)[0] + f"/{name}"
            result["postgresql"] = run(url, args.rows, sizes)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    result["loadavg_after"] = _loadavg()
    print(json.dumps(result, indent=2))
    backends = [v for v in result.values() if isinstance(v, dict)]
    landed = all(r["ok"] and r["end_to_end"]["rows_in_ledger"] == args.rows for r in backends)
    return 0 if landed else 1


def _postgres_backend_pid(store: Any) -> int | None:
    if store.backend != "postgresql":
        return None
    return int(store._writer_conn().info.backend_pid)


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    raise SystemExit(main())
