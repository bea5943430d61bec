"""Cost of the /metrics observer the gateway calls once per finished request. Prints JSON.

    .venv/bin/python bench/report_metrics_observe.py

Feeds 200,000 realistic ledger records (three models, two routers, ten features, a fallback now
and then) through ``Metrics.observe`` and reports the mean wall and CPU time per call, then
times one ``render()`` of the resulting exposition.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal

from gearshift.analytics.metrics import Metrics
from gearshift.ledger.record import LedgerRecord


def records(n: int) -> list[LedgerRecord]:
    models = ("small", "medium", "large")
    return [
        LedgerRecord(
            id=f"r{i}",
            ts=0.0,
            dialect="openai",
            requested_model="auto",
            router="auto" if i % 4 else "support",
            served_model=models[i % 3],
            tags={"feature": f"f{i % 10}", "team": f"t{i % 4}", "user": f"u{i}"},
            fallbacks=["small"] if i % 50 == 0 else [],
            prompt_tokens=100 + i % 900,
            completion_tokens=20 + i % 300,
            cached_tokens=i % 64,
            cost_usd=Decimal(i % 997) / 10**7,
            counterfactual_cost_usd=Decimal(i % 997) / 10**6,
            latency_ms=50.0 + i % 3000,
            ttfb_ms=20.0 + i % 500,
            outcome="ok" if i % 100 else "error",
            status=200 if i % 100 else 502,
        )
        for i in range(n)
    ]


def main() -> None:
    batch = records(200_000)
    metrics = Metrics()
    t0, c0 = time.perf_counter(), time.process_time()
    for record in batch:
        metrics.observe(record)
    observe_s, observe_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    text = metrics.render()
    render_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "records": len(batch),
                "observe_us_mean": round(observe_s / len(batch) * 1e6, 2),
                # CPU time is what the gateway pays; wall time also counts other processes
                # competing for the same cores.
                "observe_cpu_us_mean": round(observe_cpu_s / len(batch) * 1e6, 2),
                "render_ms": round(render_s * 1e3, 2),
                "series_lines": text.count("\n"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
