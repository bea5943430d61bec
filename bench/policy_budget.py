"""One hard budget, two gearshift replicas, 100 concurrent clients: overshoot and lost rows.

Starts on loopback: the fake OpenAI-compatible provider (tests/fakes/openai_server.py) and two
``gearshift serve`` processes sharing one Redis (budget counters) and one PostgreSQL ledger (a
fresh database per run). 100 clients, split across the two replicas, send requests to the
``large`` model until each is refused with 429 ``budget_exceeded``. Then both replicas get
SIGTERM (they drain and flush their ledgers), and the script checks:

- overshoot: what the ledger records as spent under the budget minus its limit (must be <= the
  cost of one request), and what the shared Redis counter says; and that no client was refused
  while a request's cost was still left (no early refusals);
- lost rows: every request id a client saw (answered or refused) must be one ledger row.

Needs Redis and PostgreSQL; scripts/services.sh starts throwaway ones:

    source scripts/services.sh && services_up
    .venv/bin/python bench/policy_budget.py [--limit-usd 2] [--clients 100]
    services_down

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from processes import free_port, serve_command, wait_http

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Summarise the refund policy for annual plans in three bullet points."
# The fake answers 30 prompt + 12 completion tokens: on "large" that is exactly this much.
REQUEST_COST = Decimal(30) * 15 / 10**6 + Decimal(12) * 75 / 10**6


def fresh_database(admin_url: str) -> tuple[str, str]:
    import psycopg

    name = f"gs_budget_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + "/" + name, name


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def client(
    session: aiohttp.ClientSession, url: str, seen: list[tuple[str, int]]
) -> tuple[int, int]:
    body = {"model": "large", "messages": [{"role": "user", "content": PROMPT}]}
    ok = other = 0
    while True:
        async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
            payload = await resp.json()
            seen.append((resp.headers.get("x-request-id", ""), resp.status))
            if resp.status == 200:
                ok += 1
                continue
            if resp.status == 429 and payload["error"]["code"] == "budget_exceeded":
                return ok, other
            other += 1
            if other > 20:
                raise RuntimeError(f"unexpected answers: {resp.status} {payload}")


async def load(urls: list[str], clients: int) -> dict[str, Any]:
    seen: list[tuple[str, int]] = []
    connector = aiohttp.TCPConnector(limit=clients)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        results = await asyncio.gather(
            *(client(session, urls[i % len(urls)], seen) for i in range(clients))
        )
    return {
        "seconds": time.perf_counter() - started,
        "answered": sum(ok for ok, _ in results),
        "other_errors": sum(o for _, o in results),
        "seen": seen,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit-usd", type=float, default=2.0)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--replicas", type=int, default=2)
    args = ap.parse_args(argv)
    redis_url = os.environ.get("GEARSHIFT_TEST_REDIS_URL")
    pg_admin = os.environ.get("GEARSHIFT_TEST_POSTGRES_URL")
    if not redis_url or not pg_admin:
        print(
            "needs GEARSHIFT_TEST_REDIS_URL and GEARSHIFT_TEST_POSTGRES_URL "
            "(source scripts/services.sh && services_up)",
            file=sys.stderr,
        )
        return 2
    storage, db_name = fresh_database(pg_admin)
    budget = f"bench-{secrets.token_hex(4)}"  # its own counters in a shared Redis
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="gs-budget-bench-"))
    try:
        fake_port = free_port()
        fake = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(fake_port)],
            cwd=ROOT,
        )
        procs.append(fake)
        base = f"http://127.0.0.1:{fake_port}/v1"
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
                    "tier": 3,
                    "price": {"input_per_mtok": 15, "output_per_mtok": 75},
                },
            ],
            "routers": [{"name": "auto", "models": ["small", "large"]}],
            "storage": storage,
            "policy": {
                "redis_url": redis_url,
                "budgets": [{"name": budget, "limit_usd": args.limit_usd, "period": "day"}],
            },
        }
        cfg = tmp / "gearshift.yaml"
        cfg.write_text(yaml.safe_dump(config))
        wait_http(f"http://127.0.0.1:{fake_port}/v1/models", fake)
        urls = []
        for _ in range(args.replicas):
            port = free_port()
            proc = subprocess.Popen(
                serve_command(cfg, port),
                cwd=tmp,
                env={**os.environ, "GEARSHIFT_LEDGER_SPOOL_DIR": str(tmp / "spool")},
            )
            procs.append(proc)
            urls.append(f"http://127.0.0.1:{port}")
            wait_http(f"{urls[-1]}/healthz", proc)
        run = asyncio.run(load(urls, args.clients))
        for proc in procs[1:]:
            proc.send_signal(signal.SIGTERM)
        for proc in procs[1:]:
            proc.wait(60)
        result = check(storage, redis_url, budget, args, run)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        drop_database(pg_admin, db_name)
    json.dump(result, sys.stdout, indent=2)
    print()
    good = result["overshoot_ok"] and result["no_early_refusal"] and result["lost_rows"] == 0
    return 0 if good else 1


def check(
    storage: str, redis_url: str, budget: str, args: argparse.Namespace, run: dict[str, Any]
) -> dict[str, Any]:
    import psycopg
    import redis

    seen = run["seen"]
    ids = {rid for rid, _ in seen}
    with psycopg.connect(storage) as conn:
        rows = conn.execute("SELECT id, outcome, status, cost_usd FROM requests").fetchall()
    ledger_ids = {r[0] for r in rows}
    spent = sum((Decimal(r[3]) for r in rows if r[1] == "ok"), Decimal(0))
    limit = Decimal(str(args.limit_usd))
    r = redis.Redis.from_url(redis_url)
    keys = r.keys(f"gs:budget:{budget}:*")
    counter = r.hmget(keys[0], "spent", "reserved") if keys else [None, None]
    r.close()
    overshoot = spent - limit
    return {
        "bench": "policy_budget",
        "replicas": args.replicas,
        "clients": args.clients,
        "limit_usd": float(limit),
        "request_cost_usd": float(REQUEST_COST),
        "answered": run["answered"],
        "refused_budget_exceeded": sum(1 for _, s in seen if s == 429),
        "other_errors": run["other_errors"],
        "ledger_spent_usd": float(spent),
        "redis_spent_usd": int(counter[0] or 0) / 1e9,
        "redis_reserved_after_usd": int(counter[1] or 0) / 1e9,
        "overshoot_usd": float(overshoot),
        "overshoot_ok": overshoot <= REQUEST_COST,
        # Refusals only once the budget is really spent: less than one request's cost left.
        "unused_usd": float(-overshoot) if overshoot < 0 else 0.0,
        "no_early_refusal": -overshoot < REQUEST_COST,
        "requests_seen_by_clients": len(ids),
        "ledger_rows": len(rows),
        "lost_rows": len(ids - ledger_ids),
        "seconds": round(run["seconds"], 2),
        "requests_per_s": round(len(seen) / run["seconds"], 1),
    }


if __name__ == "__main__":
    raise SystemExit(main())
