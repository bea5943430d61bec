"""Two policy engines (two gateway replicas) sharing one targets controller state through a real
Redis: what one replica observed steers the other."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from pathlib import Path

import pytest
from tests.policy.conftest import FakeClock, make_settings

from gearshift.ledger.record import LedgerRecord
from gearshift.policy.contract import Admission, Caller
from gearshift.policy.engine import GearshiftPolicy

COST = {"small": 0.001, "medium": 0.01, "large": 0.05}


@pytest.mark.redis
async def test_replicas_share_the_controller_window(
    tmp_path: Path, clock: FakeClock, redis_url: str, redis_prefix: str
) -> None:
    router = {
        "name": "auto",
        "models": ["small", "medium", "large"],
        "quality_tolerance": 0.02,
        "targets": {"avg_cost_per_request_usd": 0.01, "max_quality_tolerance": 0.5},
    }
    settings = make_settings(tmp_path, routers=[router], redis_url=redis_url)
    a, b = (
        GearshiftPolicy(settings, clock=clock, redis_prefix=redis_prefix, seed_from_ledger=False)
        for _ in range(2)
    )
    try:
        await a.start()
        await b.start()
        rng = random.Random(3)
        cfg = settings.router("auto")
        for i in range(400):  # all traffic lands on replica A, on the expensive model
            adm = await a.admit(cfg, "auto", {}, Caller())
            d = rng.random()
            predicted = {"small": 0.9 - 0.6 * d, "medium": 0.93 - 0.3 * d, "large": 0.95 - 0.1 * d}
            await a.settle(
                adm,
                LedgerRecord(
                    id=f"x{i}",
                    ts=clock(),
                    dialect="openai",
                    requested_model="auto",
                    router="auto",
                    predicted=predicted,
                    tolerance=adm.tolerance,  # as the pipeline records the decision's
                    served_model="large",
                    cost_usd=Decimal(str(COST["large"])),
                    latency_ms=900.0,
                ),
            )
        ctl_a, ctl_b = a.controller("auto"), b.controller("auto")
        assert ctl_a is not None and ctl_b is not None
        assert ctl_a.tolerance > 0.02  # A had to trade quality for cost
        await asyncio.sleep(1.5)  # B pulls the shared window once a second
        assert ctl_b.status()["window"]["requests"] == 400
        assert ctl_b.tolerance == pytest.approx(ctl_a.tolerance, abs=0.02)
        adm_b: Admission = await b.admit(cfg, "auto", {}, Caller())
        assert adm_b.tolerance == pytest.approx(ctl_b.tolerance)
    finally:
        await a.aclose()
        await b.aclose()
