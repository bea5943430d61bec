"""APGR / CPT on hand-computed cases, and the N-model curves."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.routing.metrics import (
    apgr,
    cost_at_quality,
    cost_quality_curve,
    cpt,
    oracle_curve,
    pair_curve,
    random_curve,
    route_by_tolerance,
)


def test_oracle_apgr_hand_computed() -> None:
    weak = [1, 0, 1, 0]
    strong = [1, 1, 0, 1]
    scores = [0, 1, -1, 1]  # strong - weak: the oracle's ranking
    curve = pair_curve(scores, weak, strong, n_points=2)
    # thresholds -1, 0.5, 1 -> shares 1, 0.5, 0 -> qualities 0.75, 1.0, 0.5
    assert curve.strong_share.tolist() == [0.0, 0.5, 1.0]
    assert curve.quality.tolist() == [0.5, 1.0, 0.75]
    # AUC = 0.5*(0.5+1)/2 + 0.5*(1+0.75)/2 = 0.8125; APGR = (0.8125-0.5)/0.25
    assert apgr(curve) == pytest.approx(1.25)


def test_worst_ranking_is_below_random() -> None:
    weak = [1, 0, 1, 0]
    strong = [1, 1, 0, 1]
    curve = pair_curve([0, -1, 1, -1], weak, strong, n_points=2)
    assert apgr(curve) < 0.5


def test_random_router_is_about_half() -> None:
    rng = np.random.default_rng(7)
    n = 40_000
    weak = (rng.random(n) < 0.6).astype(float)
    strong = (rng.random(n) < 0.8).astype(float)
    values = [apgr(pair_curve(rng.random(n), weak, strong)) for _ in range(5)]
    assert np.mean(values) == pytest.approx(0.5, abs=0.02)


def test_cpt_interpolates_on_quality() -> None:
    # curve x = 0, .5, 1 and y = .5, .7, .75: half the gap (0.625) needs 0.3125 strong calls
    weak = [1, 0, 1, 0]
    strong = [1, 1, 1, 0]
    scores = [0.1, 0.9, 0.2, 0.8]
    curve = pair_curve(scores, weak, strong, n_points=2)
    assert curve.strong_share.tolist() == [0.0, 0.5, 1.0]
    assert curve.quality.tolist() == [0.5, 0.75, 0.75]
    assert cpt(curve, 0.5) == pytest.approx(0.25)  # 0.625 is half-way from 0.5 to 0.75
    # on a plateau np.interp (and so RouteLLM) reads the right end of the plateau
    assert cpt(curve, 1.0) == pytest.approx(1.0)


def test_pair_curve_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        pair_curve([], [], [])
    with pytest.raises(ValueError):
        pair_curve([0.1], [1, 0], [1, 1])


def test_route_by_tolerance_and_curves() -> None:
    predicted = np.array([[0.9, 0.8, 0.5], [0.9, 0.88, 0.89]])
    costs = np.array([[10.0, 1.0, 0.1], [10.0, 1.0, 0.1]])
    truth = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    assert route_by_tolerance(predicted, costs, 0.0).tolist() == [0, 0]
    assert route_by_tolerance(predicted, costs, 0.1).tolist() == [1, 2]
    assert route_by_tolerance(predicted, costs, 1.0).tolist() == [2, 2]
    tols, mean_cost, mean_q = cost_quality_curve(predicted, costs, truth, n_points=3)
    assert tols.tolist() == [0.0, 0.5, 1.0]
    assert mean_cost[0] == 10.0 and mean_q[0] == 1.0
    oc, oq = oracle_curve(costs, truth)
    assert oq.max() == 1.0
    assert cost_at_quality(oc, oq, 1.0) == pytest.approx((1.0 + 0.1) / 2)
    rc, rq = random_curve(costs, truth)
    assert rc.tolist() == [0.1, 1.0, 10.0]
    assert cost_at_quality(rc, rq, 2.0) is None
