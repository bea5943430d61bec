"""What the policy engine adds to one request: authenticate + admit + settle, in microseconds.

Runs the real ``GearshiftPolicy`` in-process (no HTTP) for several set-ups: no policies; a virtual
key plus two budgets (team and key) counted in memory; the same counted in Redis (needs
GEARSHIFT_TEST_REDIS_URL, e.g. from scripts/services.sh); and a router with targets (the
controller's control step, every 20 requests, included).

    .venv/bin/python bench/policy_overhead.py [--requests 20000]

Prints one JSON object: per request, CPU microseconds, and wall-clock p50/p99/mean (sequential).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from gearshift.config import parse_settings
from gearshift.ledger.record import LedgerRecord
from gearshift.policy.engine import GearshiftPolicy
from gearshift.policy.keys import KeyStore

MODELS = [
    {"name": "small", "tier": 1, "price": {"input_per_mtok": 0.25, "output_per_mtok": 1.25}},
    {"name": "large", "tier": 3, "price": {"input_per_mtok": 15, "output_per_mtok": 75}},
]


async def measure(policy_cfg: dict[str, Any], targets: dict[str, Any] | None, n: int) -> Any:
    tmp = Path(tempfile.mkdtemp(prefix="gs-policy-overhead-"))
    settings = parse_settings(
        {
            "models": MODELS,
            "routers": [{"name": "auto", "models": ["small", "large"], "targets": targets}],
            "storage": f"sqlite:///{tmp}/ledger.db",
            "policy": policy_cfg,
        }
    )
    store = KeyStore.open(settings.storage)
    secret, _ = store.create(team="support", budget=(1e9, "month"))
    store.close()
    policy = GearshiftPolicy(settings, redis_prefix=f"gs-bench-{secrets.token_hex(4)}:")
    await policy.start()
    router = settings.router("auto")
    rng = random.Random(0)
    times = []
    cpu0 = time.process_time()
    for i in range(n):
        d = rng.random()
        predicted = {"small": 0.9 - 0.6 * d, "large": 0.95 - 0.1 * d}
        served = "small" if rng.random() < 0.5 else "large"
        record = LedgerRecord(
            id=str(i),
            ts=0.0,
            dialect="openai",
            requested_model="auto",
            router="auto",
            predicted=predicted,
            served_model=served,
            cost_usd=Decimal("0.0001") if served == "small" else Decimal("0.002"),
            latency_ms=300.0 if served == "small" else 900.0,
        )
        t0 = time.perf_counter()
        caller = await policy.authenticate(secret)
        admission = await policy.admit(router, "auto", {"feature": "helpdesk"}, caller)
        await policy.settle(admission, record)
        times.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu0
    await policy.aclose()
    times.sort()
    return {
        # CPU time is what the policy costs; wall-clock percentiles include waiting for the
        # machine (and, for Redis, the round trips).
        "cpu_us_per_request": round(cpu / n * 1e6, 1),
        "p50_us": round(times[len(times) // 2] * 1e6, 1),
        "p99_us": round(times[int(len(times) * 0.99)] * 1e6, 1),
        "mean_us": round(sum(times) / len(times) * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20_000)
    args = ap.parse_args(argv)
    budgets = [{"name": "support", "scope": {"team": "support"}, "limit_usd": 1e9}]
    targets = {"avg_cost_per_request_usd": 0.0005, "max_quality_tolerance": 0.5}
    result: dict[str, Any] = {"bench": "policy_overhead", "requests": args.requests}
    result["no_policies"] = asyncio.run(measure({}, None, args.requests))
    result["key_and_budgets_memory"] = asyncio.run(
        measure({"budgets": budgets}, None, args.requests)
    )
    result["key_budgets_and_targets_memory"] = asyncio.run(
        measure({"budgets": budgets}, targets, args.requests)
    )
    redis_url = os.environ.get("GEARSHIFT_TEST_REDIS_URL")
    if redis_url:
        result["key_and_budgets_redis"] = asyncio.run(
            measure({"budgets": budgets, "redis_url": redis_url}, None, args.requests)
        )
    else:
        print("GEARSHIFT_TEST_REDIS_URL unset: Redis case skipped", file=sys.stderr)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
