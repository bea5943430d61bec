"""Time ``gearshift report`` on a 5-million-row ledger, on SQLite and PostgreSQL. Prints JSON.

    .venv/bin/python bench/report_big_ledger.py --rows 5000000 --backend both

The ledger is created by the ledger's own migrations (``open_store``), then filled inside the
database with ``INSERT ... SELECT`` over a generated sequence (fast bulk insert, no Python per
row): 30 days of traffic ending now, three models at real list-price ratios, ten features, four
teams, fifty keys, six prompt kinds, per-request predicted qualities, 1% errors, 0.5% fallbacks.
Then it times, each as a fresh ``gearshift report`` process (so imports and start-up count):

- ``first_report_s``: the first report ever, which rolls every complete day up (one-off);
- ``report_s``: later reports (``--since 30d``, by feature / model / day / key; median of three),
  which read the daily rollup, the hourly rollup at both edges and the raw rows of the partial
  hours at each end;
- ``report_7d_s``: ``--since 7d --by team``.

PostgreSQL comes from ``--pg-url`` or ``$GEARSHIFT_TEST_POSTGRES_URL`` (loopback only); a fresh
database is created and dropped unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

DAY = 86400
# Picodollars per token (input, output): list prices of a light, a mid and a frontier model.
PRICES = {
    "small": (250_000, 1_250_000),
    "medium": (3_000_000, 15_000_000),
    "large": (15_000_000, 75_000_000),
}


def _expressions(n: int, start: float, dialect: str) -> dict[str, str]:
    """Column -> SQL expression of the sequence number ``i`` (0-based), both dialects."""
    text = "CAST({} AS TEXT)"
    span = 30 * DAY

    def pick(expr: str, options: list[tuple[int, str]]) -> str:
        """``options`` = [(upper bound exclusive, SQL value)], on ``expr`` in [0, 100)."""
        parts = " ".join(f"WHEN {expr} < {bound} THEN {value}" for bound, value in options[:-1])
        return f"CASE {parts} ELSE {options[-1][1]} END"

    model_roll = "((i * 7919) % 100)"
    model = pick(model_roll, [(60, "'small'"), (85, "'medium'"), (100, "'large'")])
    feature = "((i * 104729) % 10)"
    team = f"({feature} % 4)"
    prompt = "(50 + (i * 31) % 2000)"
    completion = "(10 + (i * 17) % 500)"

    def price(which: int) -> str:
        return pick(
            model_roll,
            [
                (60, str(PRICES["small"][which])),
                (85, str(PRICES["medium"][which])),
                (100, str(PRICES["large"][which])),
            ],
        )

    cost = f"({prompt} * {price(0)} + {completion} * {price(1)})"
    cf = f"({prompt} * {PRICES['large'][0]} + {completion} * {PRICES['large'][1]})"
    ok = "((i * 13) % 100) <> 0"
    small_q = "(0.55 + ((i * 7) % 400) / 1000.0)"
    if dialect == "sqlite":
        money = "printf('%.12f', {} / 1e12)"
        fmt_q = "printf('%.3f', {})"
        concat = " || "
    else:
        money = "CAST(CAST({} AS numeric) / 1000000000000 AS numeric)"
        fmt_q = "to_char({}, 'FM0.000')"
        concat = " || "
    tags = concat.join(
        ['\'{"feature":"f\'', text.format(feature), '\'","team":"t\'', text.format(team), "'\"}'"]
    )
    predicted = concat.join(
        [
            '\'{"large":0.95,"medium":\'',
            fmt_q.format("(0.80 + ((i * 3) % 100) / 1000.0)"),
            "',\"small\":'",
            fmt_q.format(small_q),
            "'}'",
        ]
    )
    latency = (
        pick(model_roll, [(60, "300.0"), (85, "800.0"), (100, "2000.0")]) + " + ((i * 37) % 1000)"
    )
    return {
        "id": "'r' || " + text.format("i"),
        "ts": f"{start} + i * {span / n}",
        "dialect": "'openai'",
        "requested_model": "'auto'",
        "router": "CASE WHEN i % 10 = 0 THEN NULL ELSE 'auto' END",
        "key_id": "'key-' || " + text.format("(i * 31) % 50"),
        "tags": tags,
        "predicted": predicted,
        "prompt_kind": pick(
            "((i * 13) % 6) * 16",
            [
                (16, "'chat'"),
                (32, "'code'"),
                (48, "'math'"),
                (64, "'summarise'"),
                (80, "'extract'"),
                (100, "'faq'"),
            ],
        ),
        "tolerance": "0.1",
        "chosen_model": model,
        "served_model": f"CASE WHEN {ok} THEN {model} ELSE NULL END",
        "fallbacks": "CASE WHEN i % 200 = 1 THEN '[\"small\"]' ELSE '[]' END",
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost_usd": money.format(f"CASE WHEN {ok} THEN {cost} ELSE 0 END"),
        "counterfactual_model": "'large'",
        "counterfactual_cost_usd": money.format(f"CASE WHEN {ok} THEN {cf} ELSE 0 END"),
        "cost_pusd": f"CASE WHEN {ok} THEN {cost} ELSE 0 END",
        "counterfactual_cost_pusd": f"CASE WHEN {ok} THEN {cf} ELSE 0 END",
        "latency_ms": latency,
        "ttfb_ms": "(" + latency + ") / 4",
        "status": f"CASE WHEN {ok} THEN 200 ELSE 502 END",
        "outcome": f"CASE WHEN {ok} THEN 'ok' ELSE 'error' END",
    }


def build(url: str, n: int, start: float) -> float:
    from gearshift.analytics.db import LedgerDB
    from gearshift.ledger import open_store

    open_store(url).close()  # the real schema, through the ledger's migrations
    t0 = time.perf_counter()
    with LedgerDB(url) as db:
        exprs = _expressions(n, start, db.dialect)
        columns = ", ".join(exprs)
        values = ", ".join(exprs.values())
        if db.dialect == "sqlite":
            db.execute("PRAGMA synchronous = OFF")
            chunk = 1_000_000
            for lo in range(0, n, chunk):
                hi = min(n, lo + chunk)
                db.execute(
                    f"WITH RECURSIVE seq(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM seq"
                    f" WHERE i < {hi - 1})"
                    f" INSERT INTO requests ({columns}) SELECT {values} FROM seq"
                )
            db.execute("ANALYZE")
        else:
            chunk = 1_000_000
            for lo in range(0, n, chunk):
                hi = min(n, lo + chunk)
                db.execute(
                    f"INSERT INTO requests ({columns}) SELECT {values}"
                    f" FROM generate_series(CAST({lo} AS BIGINT), {hi - 1}) AS s(i)"
                )
            db.execute("ANALYZE requests")
    return time.perf_counter() - t0


def timed_report(url: str, *args: str) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "gearshift", "report", "--storage", url, "--format", "json", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - t0, json.loads(done.stdout)


def log(message: str) -> None:
    print(
        f"[{time.strftime('%H:%M:%S')}] {message} (load {os.getloadavg()[0]:.1f})", file=sys.stderr
    )


def _time_dashboard(url: str) -> float:
    """What one /api/dashboard call costs (7 days, every chart), in process."""
    from gearshift.analytics.dashboard import dashboard_data
    from gearshift.analytics.db import LedgerDB

    with LedgerDB(url) as db:
        t0 = time.perf_counter()
        dashboard_data(db, None, time.time() - 7 * DAY, None)
        return time.perf_counter() - t0


def run_backend(url: str, n: int, *, reuse: bool = False) -> dict[str, Any]:
    now = time.time()
    build_s = 0.0 if reuse else build(url, n, now - 30 * DAY)
    log(f"built {n} rows in {build_s:.0f} s")
    first_s, first = timed_report(url, "--since", "30d", "--by", "feature")
    log(f"first report (rolls everything up) {first_s:.1f} s")
    reports = {}
    for by in ("feature", "model", "day", "key"):
        # The median of three runs: this machine is shared, so single runs are noisy.
        reports[by] = statistics.median(
            timed_report(url, "--since", "30d", "--by", by)[0] for _ in range(3)
        )
    week_s, week = timed_report(url, "--since", "7d", "--by", "team")
    dashboard_s = _time_dashboard(url)
    from gearshift.analytics.db import LedgerDB

    with LedgerDB(url) as db:
        rows = db.fetchone("SELECT count(*) FROM requests")
        rollup_rows = db.fetchone("SELECT count(*) FROM analytics_rollup")
    log(f"reports {reports}")
    return {
        "load_average_1m": round(os.getloadavg()[0], 1),
        "rows": int(rows[0]) if rows else 0,
        "build_s": round(build_s, 1),
        "first_report_s": round(first_s, 2),
        "report_s": {k: round(v, 2) for k, v in reports.items()},
        "report_7d_s": round(week_s, 2),
        "dashboard_api_7d_s": round(dashboard_s, 2),
        "max_report_s": round(max([*reports.values(), week_s]), 2),
        "rollup_rows": int(rollup_rows[0]) if rollup_rows else 0,
        "requests_in_30d_report": first["totals"]["requests"],
        "requests_in_7d_report": week["totals"]["requests"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=5_000_000)
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--pg-url", default=os.environ.get("GEARSHIFT_TEST_POSTGRES_URL"))
    p.add_argument("--keep", action="store_true", help="keep the ledgers for inspection")
    p.add_argument("--reuse", metavar="URL", help="time reports on an existing ledger (no build)")
    args = p.parse_args()
    out: dict[str, Any] = {"rows": args.rows}
    if args.reuse:
        out["reused"] = run_backend(args.reuse, args.rows, reuse=True)
        print(json.dumps(out, indent=2))
        return
    if args.backend in ("sqlite", "both"):
        folder = Path(tempfile.mkdtemp(prefix="gearshift-bench-"))
        url = f"sqlite:///{folder}/ledger.db"
        out["sqlite"] = run_backend(url, args.rows)
        if not args.keep:
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
    if args.backend in ("postgresql", "both"):
        if not args.pg_url or ("127.0.0.1" not in args.pg_url and "localhost" not in args.pg_url):
            raise SystemExit(
                "PostgreSQL on loopback needed: --pg-url or GEARSHIFT_TEST_POSTGRES_URL"
            )
        import psycopg

        name = f"gs_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        try:
            out["postgresql"] = run_backend(args.pg_url.rsplit("/", 1)[0] + "/" + name, args.rows)
        finally:
            if not args.keep:
                with psycopg.connect(args.pg_url, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
