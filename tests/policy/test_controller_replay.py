"""Targets mean what they say, whatever router sits behind the controller.

A router rarely makes exactly the decisions the controller replays (constraints, stickiness, its
own cost model): the controller calibrates its replay against what was really served, so a cost
target is held within 5% anyway; and a target it cannot reach is reported ``unmet``, never ``ok``.
The last test is bench/policy_controller.py's cost scenario on a small replay with the bundled
router and ../shared/data (skipped without the data)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Collection
from pathlib import Path
from types import ModuleType

import pytest
from tests.policy.test_controller import COST, MODELS, run

from gearshift.config import RouterTargets
from gearshift.policy.controller import TargetsController

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
BENCH = Path(__file__).resolve().parents[2] / "bench" / "policy_controller.py"


def unlike_the_rule(
    pred: dict[str, float], tolerance: float, allowed: Collection[str] | None
) -> str:
    """A router that trades less than the rule at the same tolerance (as if its own quality
    estimates were wider apart): the controller's plain replay would overrate each step."""
    cands = [m for m in MODELS if allowed is None or m in allowed]
    best = max(pred[m] for m in cands)
    fits = [m for m in cands if pred[m] >= best - 0.55 * tolerance]
    return min(fits, key=lambda m: COST[m])


def replay(ctl: TargetsController, n: int) -> list[float]:
    return [cost for _, cost, _, _ in run(ctl, n, seed=11, router=unlike_the_rule)]


def controller(target: float, floor: float) -> TargetsController:
    targets = RouterTargets(avg_cost_per_request_usd=target, max_quality_tolerance=floor)
    return TargetsController("auto", MODELS, 0.02, targets, light={"small"}, prior_cost=dict(COST))


def test_a_cost_target_is_held_with_a_router_unlike_the_rule() -> None:
    unconstrained = sum(replay(controller(1.0, 0.02), 4000)) / 4000
    target = 0.5 * unconstrained
    ctl = controller(target, 0.8)
    costs = replay(ctl, 8000)
    realised = sum(costs) / len(costs)
    assert abs(realised - target) / target < 0.05, (realised, target)
    status = ctl.status()
    assert status["state"] == "ok" and status["messages"] == []
    assert status["window"]["estimate_calibration"] > 1.05  # it saw the router was unlike it


def test_a_target_out_of_reach_is_unmet_not_ok() -> None:
    unconstrained = sum(replay(controller(1.0, 0.02), 4000)) / 4000
    ctl = controller(0.1 * unconstrained, 0.3)
    replay(ctl, 4000)
    status = ctl.status()
    assert status["state"] == "unmet"
    assert any("avg_cost_per_request_usd" in m for m in status["messages"])


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("policy_controller_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not present")
def test_bench_cost_scenario_on_a_small_replay_with_the_bundled_router() -> None:
    bench = _bench()
    mixed, _ = bench.load(DATA, 3000, 0)
    models = ["small", "medium", "large"]
    free = bench.replay(mixed, models, 0.05, None)
    targets = RouterTargets(
        avg_cost_per_request_usd=0.5 * free["avg_cost_usd"], max_quality_tolerance=0.5
    )
    result = bench.replay(mixed, models, 0.05, targets)
    verdict = bench.check(result, targets)
    assert abs(verdict["cost_error_pct"]) <= 5.0, verdict
    assert result["controller"]["state"] == "ok"
