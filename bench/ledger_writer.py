"""Ledger writer cost: what ``submit()`` costs the request path, and how fast batches land.

    .venv/bin/python bench/ledger_writer.py [--rows 100000] [--postgres URL]

For each backend (SQLite in a temp dir; PostgreSQL when ``--postgres`` or
``GEARSHIFT_TEST_POSTGRES_URL`` is given) it submits ``rows`` full ledger records as fast as one
thread can, and reports the per-call cost of ``submit()`` (p50/p99 over 1,000-call slices, in
nanoseconds per call), the rows per second the background thread sustained until ``close()``
returned, and that every row landed. Prints one JSON object.
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


def make_record(i: int) -> LedgerRecord:
    return LedgerRecord(
        id=f"bench-{i:08d}",
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


def run(url: str, rows: int) -> dict[str, Any]:
    store = open_store(url)
    records = [make_record(i) for i in range(rows)]
    writer = LedgerWriter(store)
    slice_ns: list[float] = []
    start = time.perf_counter()
    for s in range(0, rows, 1000):
        t0 = time.perf_counter_ns()
        for r in records[s : s + 1000]:
            writer.submit(r)
        slice_ns.append((time.perf_counter_ns() - t0) / len(records[s : s + 1000]))
    submitted = time.perf_counter() - start
    writer.close()
    total = time.perf_counter() - start
    count = store.count()
    store.close()
    slice_ns.sort()
    return {
        "rows": rows,
        "rows_in_ledger": count,
        "submit_ns_p50": round(statistics.median(slice_ns), 1),
        "submit_ns_p99": round(slice_ns[int(len(slice_ns) * 0.99) - 1], 1),
        "submit_all_s": round(submitted, 3),
        "written_by_close_s": round(total, 3),
        "rows_per_s": round(rows / total),
        "batches": writer.stats.batches,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get("GEARSHIFT_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = run(f"sqlite:///{tmp}/ledger.db", args.rows)
    if args.postgres:
        import psycopg

        name = f"gs_bench_{os.getpid()}"
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            result["postgresql"] = run(args.postgres.rsplit("/", 1)[0] + f"/{name}", args.rows)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    print(json.dumps(result, indent=2))
    return 0 if all(r["rows_in_ledger"] == args.rows for r in result.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
