"""Router quality metrics, computed exactly as RouteLLM does (Ong et al. 2024, ``evaluate.py``).

Two models. A router gives each prompt a score (higher = more likely to need the strong model).
Thresholds are the ``n_points``-quantile edges of the scores (11 for the default 10 bins); at each,
prompts scoring ``>= threshold`` (``>`` at the top edge, so the last point sends none) go to the
strong model. Each threshold is a point (share of strong calls, mean quality).

* **APGR** — the area under that curve (trapezoids over the strong share), normalised so the
  weak model alone scores 0 and the strong model alone 1:
  ``(AUC − weak·span) / ((strong − weak)·span)``.
  Random routing is about 0.5; an oracle can exceed 1 where the weak model is sometimes right and
  the strong one wrong.
* **CPT(x%)** — the share of strong calls needed to recover x% of the quality gap, read off the
  curve by linear interpolation (``np.interp`` over the quality axis, as RouteLLM).

N models: ``cost_quality_curve`` sweeps the quality tolerance of the decision rule and records
(mean cost, mean quality) per setting; ``oracle_curve`` and ``random_curve`` give the reference
lines; ``cost_at_quality`` reads "reaches x% of the best single model's quality at y% of its cost";
``cost_share_at`` reads it at 95% and 100% over a tolerance grid fitted to the predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "PairCurve",
    "apgr",
    "cost_at_quality",
    "cost_quality_curve",
    "cost_share_at",
    "cpt",
    "oracle_curve",
    "pair_curve",
    "random_curve",
    "route_by_tolerance",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True, frozen=True)
class PairCurve:
    strong_share: FloatArray  # increasing, in [0, 1]
    quality: FloatArray  # mean quality at each point
    weak_quality: float
    strong_quality: float


def _arr(x: Sequence[float] | FloatArray) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def pair_curve(
    scores: Sequence[float] | FloatArray,
    weak: Sequence[float] | FloatArray,
    strong: Sequence[float] | FloatArray,
    n_points: int = 10,
) -> PairCurve:
    s, w, g = _arr(scores), _arr(weak), _arr(strong)
    if not (len(s) == len(w) == len(g)) or len(s) == 0:
        raise ValueError("scores, weak and strong must be non-empty and of equal length")
    thresholds = np.quantile(s, np.linspace(0.0, 1.0, n_points + 1))
    shares, quals = [], []
    for i, t in enumerate(thresholds):
        to_strong = s >= t if i != len(thresholds) - 1 else s > t
        shares.append(float(to_strong.mean()))
        quals.append(float(np.where(to_strong, g, w).mean()))
    order = np.argsort(shares, kind="stable")
    return PairCurve(_arr(shares)[order], _arr(quals)[order], float(w.mean()), float(g.mean()))


def apgr(curve: PairCurve) -> float:
    x, y = curve.strong_share, curve.quality
    span = float(x[-1] - x[0])
    gap = curve.strong_quality - curve.weak_quality
    if span <= 0 or gap == 0:
        return float("nan")
    auc = float(np.trapezoid(y, x))
    return (auc - curve.weak_quality * span) / (gap * span)


def cpt(curve: PairCurve, fraction: float) -> float:
    """Share of strong calls needed to recover ``fraction`` of the quality gap."""
    target = curve.weak_quality + fraction * (curve.strong_quality - curve.weak_quality)
    return float(np.interp(target, curve.quality, curve.strong_share))


# ---- N models ----------------------------------------------------------------------------


def route_by_tolerance(
    predicted: FloatArray, costs: FloatArray, tolerance: float
) -> npt.NDArray[np.int64]:
    """Chosen model per row: the cheapest within ``tolerance`` of the best prediction."""
    best = predicted.max(axis=1, keepdims=True)
    ok = predicted >= best - tolerance - 1e-12
    masked = np.where(ok, costs, np.inf)
    chosen: npt.NDArray[np.int64] = masked.argmin(axis=1)
    return chosen


def cost_quality_curve(
    predicted: FloatArray, costs: FloatArray, truth: FloatArray, n_points: int = 41
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(tolerances, mean cost, mean true quality) as the tolerance goes from 0 to 1."""
    tolerances = np.linspace(0.0, 1.0, n_points)
    rows = np.arange(len(truth))
    mean_cost, mean_q = [], []
    for tol in tolerances:
        chosen = route_by_tolerance(predicted, costs, float(tol))
        mean_cost.append(float(costs[rows, chosen].mean()))
        mean_q.append(float(truth[rows, chosen].mean()))
    return tolerances, _arr(mean_cost), _arr(mean_q)


def oracle_curve(
    costs: FloatArray, truth: FloatArray, n_points: int = 41
) -> tuple[FloatArray, FloatArray]:
    """Best achievable (mean cost, mean quality): per row maximise quality − λ·cost."""
    scale = float(np.median(costs[costs > 0])) if np.any(costs > 0) else 1.0
    lambdas = np.concatenate([[0.0], np.geomspace(1e-4, 1e4, n_points - 1)]) / scale
    rows = np.arange(len(truth))
    out_c, out_q = [], []
    for lam in lambdas:
        # ties on utility go to the cheaper model
        utility = truth - lam * costs - 1e-12 * costs / scale
        chosen = utility.argmax(axis=1)
        out_c.append(float(costs[rows, chosen].mean()))
        out_q.append(float(truth[rows, chosen].mean()))
    order = np.argsort(out_c)
    return _arr(out_c)[order], _arr(out_q)[order]


def random_curve(costs: FloatArray, truth: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Random mixing of single models: the lower-left hull of the single-model points."""
    c, q = costs.mean(axis=0), truth.mean(axis=0)
    order = np.argsort(c)
    return c[order], q[order]


def cost_at_quality(
    mean_cost: FloatArray, mean_quality: FloatArray, target_quality: float
) -> float | None:
    """Lowest mean cost on a curve whose quality reaches ``target_quality`` (None if never)."""
    ok = mean_quality >= target_quality - 1e-12
    if not np.any(ok):
        return None
    return float(mean_cost[ok].min())


def tolerance_grid(predicted: FloatArray, n_points: int = 400) -> FloatArray:
    """Tolerances at the quantiles of the rows' gaps to their best prediction (and 0).

    Predicted quality gaps are mostly small; an even grid over [0, 1] would step over most of
    the decisions, so the grid follows where the gaps are.
    """
    gaps = (predicted.max(axis=1, keepdims=True) - predicted).ravel()
    grid = np.quantile(gaps, np.linspace(0.0, 1.0, n_points))
    return np.unique(np.concatenate([[0.0], grid, [1.0]]))


def cost_share_at(
    predicted: FloatArray,
    costs: FloatArray,
    truth: FloatArray,
    models: Sequence[str],
    targets: Sequence[float] = (0.95, 1.0),
) -> dict[str, object]:
    """Cost of routing, as a share of the best single model's, at which it first reaches each
    target share of that model's quality (None where no tolerance reaches it)."""
    rows = np.arange(len(truth))
    curve_c, curve_q = [], []
    for tol in tolerance_grid(predicted):
        chosen = route_by_tolerance(predicted, costs, float(tol))
        curve_c.append(float(costs[rows, chosen].mean()))
        curve_q.append(float(truth[rows, chosen].mean()))
    best = int(np.argmax(truth.mean(axis=0)))
    best_q, best_c = float(truth[:, best].mean()), float(costs[:, best].mean())
    out: dict[str, object] = {
        "rows": len(truth),
        "best_single_model": models[best],
        "best_single_quality": round(best_q, 4),
        "best_single_cost": best_c,
    }
    for target in targets:
        reach = cost_at_quality(_arr(curve_c), _arr(curve_q), target * best_q)
        key = f"cost_share_at_{round(target * 100)}"
        out[key] = None if reach is None or best_c <= 0 else round(reach / best_c, 4)
    return out
