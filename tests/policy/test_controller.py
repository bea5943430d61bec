"""The targets controller driven offline: each target alone, targets it cannot meet, and conflicts.

A synthetic workload gives each request predicted qualities for three models; a request is decided
by the rule the router applies (cheapest allowed candidate within the tolerance of the best) and
its outcome (cost, latency) fed back, as the gateway does through ``settle``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection

import pytest

from gearshift.config import RouterTargets
from gearshift.policy.controller import Outcome, TargetsController

MODELS = ("small", "medium", "large")
COST = {"small": 0.001, "medium": 0.01, "large": 0.05}


def decide(pred: dict[str, float], tolerance: float, allowed: Collection[str] | None) -> str:
    cands = [m for m in MODELS if allowed is None or m in allowed]
    best = max(pred[m] for m in cands)
    fits = [m for m in cands if pred[m] >= best - tolerance]
    return min(fits, key=lambda m: COST[m])


def workload(rng: random.Random) -> dict[str, float]:
    d = rng.random()
    return {
        "small": 0.92 - 0.7 * d + rng.gauss(0, 0.05),
        "medium": 0.95 - 0.35 * d + rng.gauss(0, 0.04),
        "large": 0.97 - 0.1 * d + rng.gauss(0, 0.02),
    }


Decide = Callable[[dict[str, float], float, Collection[str] | None], str]


def run(
    ctl: TargetsController,
    n: int,
    latency: dict[str, float] | None = None,
    seed: int = 7,
    router: Decide = decide,
) -> list[tuple[str, float, float, float]]:
    """Replay ``n`` requests decided by ``router`` (the rule itself by default); returns
    (model, cost, latency, tolerance) per request."""
    rng = random.Random(seed)
    lat = latency or {"small": 300.0, "medium": 600.0, "large": 900.0}
    out = []
    for _ in range(n):
        pred = workload(rng)
        advice = ctl.advise()
        model = router(pred, advice.tolerance, advice.allowed)
        cost = COST[model] * rng.uniform(0.5, 1.5)
        latency_ms = lat[model] * rng.uniform(0.7, 1.3)
        ctl.observe(Outcome(pred, model, cost, latency_ms, advice.tolerance))
        out.append((model, cost, latency_ms, advice.tolerance))
    return out


def controller(**targets: float) -> TargetsController:
    return TargetsController(
        "auto",
        MODELS,
        0.02,
        RouterTargets(**targets),  # type: ignore[arg-type]
        light={"small"},
        prior_cost={"small": 1.0, "medium": 10.0, "large": 50.0},
    )


def unconstrained_avg_cost(n: int = 4000) -> float:
    rng = random.Random(7)
    total = 0.0
    for _ in range(n):
        total += COST[decide(workload(rng), 0.02, None)]
    return total / n


def p80(values: list[float]) -> float:
    return sorted(values)[int(0.8 * len(values)) - 1]


def test_cost_target_alone_holds_within_five_percent() -> None:
    free = unconstrained_avg_cost()
    target = free * 0.5
    ctl = controller(avg_cost_per_request_usd=target, max_quality_tolerance=0.4)
    served = run(ctl, 6000)
    realized = sum(c for _, c, _, _ in served) / len(served)
    assert abs(realized - target) / target < 0.05, (realized, target)
    assert 0.02 < ctl.tolerance <= 0.4
    assert ctl.status()["state"] == "ok"


def test_loose_cost_target_keeps_the_router_preference() -> None:
    free = unconstrained_avg_cost()
    ctl = controller(avg_cost_per_request_usd=free * 3)
    run(ctl, 2000)
    assert ctl.tolerance == pytest.approx(0.02)
    assert ctl.status()["state"] == "ok"


def test_light_share_target_alone() -> None:
    ctl = controller(light_share_min=0.6, max_quality_tolerance=0.5)
    served = run(ctl, 5000)
    tail = served[1000:]
    share = sum(m == "small" for m, *_ in tail) / len(tail)
    assert share >= 0.57, share  # the target, less sampling noise
    free_share = sum(decide(workload(random.Random(i)), 0.02, None) == "small" for i in range(500))
    assert free_share / 500 < 0.6  # so the controller had work to do
    assert ctl.status()["state"] == "ok"


def test_latency_target_alone_excludes_models_whose_p80_does_not_fit() -> None:
    ctl = controller(latency_p80_ms=1000)
    lat = {"small": 300.0, "medium": 600.0, "large": 2500.0}
    served = run(ctl, 3000, latency=lat)
    tail = served[1000:]
    assert p80([latency for _, _, latency, _ in tail]) <= 1000
    assert ctl.status()["latency_allowed"] == ["medium", "small"]
    # Exploration still lets the slow model be measured now and then.
    assert 0 < sum(m == "large" for m, *_ in tail) < 0.05 * len(tail)


def test_cost_target_below_the_quality_floor_is_reported_not_crossed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctl = controller(avg_cost_per_request_usd=0.0009, max_quality_tolerance=0.1)
    with caplog.at_level(logging.WARNING, logger="gearshift.policy.controller"):
        run(ctl, 1500)
    status = ctl.status()
    assert ctl.tolerance == pytest.approx(0.1)  # the floor, not beyond
    assert status["state"] == "unmet"
    assert any("avg_cost_per_request_usd" in m for m in status["messages"])
    assert any("targets unmet" in r.getMessage() for r in caplog.records)


def test_light_share_and_latency_in_conflict() -> None:
    ctl = controller(light_share_min=0.6, latency_p80_ms=800, max_quality_tolerance=0.5)
    lat = {"small": 1500.0, "medium": 400.0, "large": 500.0}
    run(ctl, 3000, latency=lat)
    status = ctl.status()
    assert status["state"] == "conflict"
    assert any("light_share_min" in m and "latency wins" in m for m in status["messages"])
    assert "small" not in (status["latency_allowed"] or [])


def test_cost_and_latency_in_conflict() -> None:
    # Medium alone costs ~0.010 and all three ~0.005 at tolerance 0.4: 0.007 needs the small one.
    ctl = controller(avg_cost_per_request_usd=0.007, latency_p80_ms=800, max_quality_tolerance=0.4)
    lat = {"small": 1500.0, "medium": 400.0, "large": 500.0}
    run(ctl, 3000, latency=lat)
    status = ctl.status()
    assert status["state"] == "conflict"
    assert any("avg_cost_per_request_usd needs models" in m for m in status["messages"])


def test_status_reports_the_window() -> None:
    ctl = controller(avg_cost_per_request_usd=0.01)
    assert ctl.status()["state"] == "warming_up"
    run(ctl, 600)
    window = ctl.status()["window"]
    assert window["requests"] == 500
    assert 0 < window["avg_cost_usd"] < 0.05
    assert 0 <= window["light_share"] <= 1
