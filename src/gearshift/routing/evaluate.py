"""Evaluate a router on labelled rows: the pair metrics (APGR, CPT) and the N-model cost curve.

``evaluate`` takes what a router predicted (difficulty per row, quality per row and model) and
the truth (scores, costs) and returns a JSON-ready report; ``plot`` draws it (matplotlib is
imported there, lazily). ``predict_rows`` runs a predictor over rows; ``split_predict`` trains a
quality router on one share of the rows and predicts the rest, for honest held-out numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gearshift.errors import InvalidRequest
from gearshift.routing.features import extract
from gearshift.routing.formats import LabelledRow
from gearshift.routing.metrics import (
    apgr,
    cost_at_quality,
    cost_quality_curve,
    cost_share_at,
    cpt,
    oracle_curve,
    pair_curve,
)

__all__ = ["Predictions", "evaluate", "plot", "predict_rows", "split_predict", "truth_matrices"]

FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class Predictions:
    difficulty: FloatArray  # (N,)
    quality: FloatArray  # (N, M) in ``models`` order
    models: list[str]
    # per-model routers rank a pair by its predicted gain q_strong − q_weak (whatever the pair);
    # the default router by its difficulty (its qualities are clipped maps of it)
    rank_by_gain: bool = False


def truth_matrices(
    rows: Sequence[LabelledRow], models: Sequence[str]
) -> tuple[FloatArray, FloatArray | None]:
    """(scores, costs) for rows that score every model; costs None unless all rows have them."""
    scores = np.zeros((len(rows), len(models)))
    costs = np.zeros((len(rows), len(models)))
    have_costs = True
    for i, r in enumerate(rows):
        for j, m in enumerate(models):
            if m not in r.scores:
                raise InvalidRequest(f"row {r.id!r} has no score for model {m!r}")
            scores[i, j] = r.scores[m]
            if m in r.costs:
                costs[i, j] = r.costs[m]
            else:
                have_costs = False
    return scores, (costs if have_costs else None)


def predict_rows(
    predictor_spec: str, rows: Sequence[LabelledRow], models: Sequence[str]
) -> Predictions:
    from gearshift.routing.predictors import TrainedPredictor, load_predictor
    from gearshift.routing.scoring import profiles_for_names

    predictor = load_predictor(predictor_spec)
    predictor.check_models(models)
    feats = [extract(r.request) for r in rows]
    diff, qual = predictor.predict_many(feats, profiles_for_names(models))
    return Predictions(
        diff, qual, list(models), rank_by_gain=isinstance(predictor, TrainedPredictor)
    )


def split_predict(
    rows: Sequence[LabelledRow],
    models: Sequence[str],
    train_share: float,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[LabelledRow], Predictions]:
    """Train on ``train_share`` of the rows, predict the rest: (held-out rows, predictions)."""
    from gearshift.routing.quality_train import QualityOptions, train_quality_router
    from gearshift.routing.train import featurize

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    cut = round(train_share * len(rows))
    train = [rows[i] for i in order[:cut]]
    test = [rows[i] for i in order[cut:]]
    if len(train) < 10 or not test:
        raise InvalidRequest("not enough rows for that train/test split")
    options = QualityOptions(folds=0, seed=seed)
    model, _ = train_quality_router(train, options, progress=progress)
    q = model.predict_many(featurize(test))
    cols = [model.heads.index(m) for m in models]
    strong, weak = model.heads.index(model.meta["strong"]), model.heads.index(model.meta["weak"])
    diff = q[:, strong] * (1 - q[:, weak])
    return test, Predictions(diff, q[:, cols], list(models), rank_by_gain=True)


def evaluate(
    preds: Predictions,
    scores: FloatArray,
    costs: FloatArray | None,
    *,
    weak: str,
    strong: str,
    quality_target: float = 0.95,
) -> dict[str, Any]:
    m = preds.models
    w, s = m.index(weak), m.index(strong)
    rank = preds.quality[:, s] - preds.quality[:, w] if preds.rank_by_gain else preds.difficulty
    curve = pair_curve(rank, scores[:, w], scores[:, s])
    oracle = pair_curve(scores[:, s] - scores[:, w] + 1e-9 * rank, scores[:, w], scores[:, s])
    report: dict[str, Any] = {
        "rows": len(scores),
        "models": m,
        "mean_score": {name: round(float(scores[:, j].mean()), 4) for j, name in enumerate(m)},
        "pair": {
            "weak": weak,
            "strong": strong,
            "apgr": round(apgr(curve), 4),
            "cpt50": round(cpt(curve, 0.5), 4),
            "cpt80": round(cpt(curve, 0.8), 4),
            "oracle_apgr": round(apgr(oracle), 4),
            "oracle_gain_share": round(float(np.maximum(scores[:, s] - scores[:, w], 0).mean()), 4),
            "curve": {
                "strong_share": [round(float(x), 4) for x in curve.strong_share],
                "quality": [round(float(y), 4) for y in curve.quality],
            },
        },
    }
    if costs is not None:
        tols, mean_cost, mean_q = cost_quality_curve(preds.quality, costs, scores)
        best_single = int(np.argmax(scores.mean(axis=0)))
        best_q = float(scores[:, best_single].mean())
        best_cost = float(costs[:, best_single].mean())
        reach = cost_at_quality(mean_cost, mean_q, quality_target * best_q)
        shares = cost_share_at(preds.quality, costs, scores, m)
        oc, oq = oracle_curve(costs, scores)
        report["n_models"] = {
            "best_single_model": m[best_single],
            "best_single_quality": round(best_q, 4),
            "best_single_cost": best_cost,
            "target_quality": round(quality_target * best_q, 4),
            "cost_at_target": reach,
            "cost_share_at_target": None if reach is None else round(reach / best_cost, 4),
            # read on a tolerance grid that follows the predictions (finer than the curve's)
            "cost_share_at_95": shares["cost_share_at_95"],
            "cost_share_at_100": shares["cost_share_at_100"],
            "curve": {
                "tolerance": [round(float(t), 4) for t in tols],
                "mean_cost": [float(c) for c in mean_cost],
                "quality": [round(float(q), 4) for q in mean_q],
            },
            "oracle": {
                "mean_cost": [float(c) for c in oc],
                "quality": [round(float(q), 4) for q in oq],
            },
            "single_models": {
                name: {
                    "mean_cost": float(costs[:, j].mean()),
                    "quality": round(float(scores[:, j].mean()), 4),
                }
                for j, name in enumerate(m)
            },
        }
    return report


def plot(report: dict[str, Any], path: str, title: str = "gearshift router") -> None:
    """Quality against share of strong calls (with random and oracle) and against cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pair = report["pair"]
    has_cost = "n_models" in report
    fig, axes = plt.subplots(1, 2 if has_cost else 1, figsize=(12 if has_cost else 6, 4.5))
    ax = axes[0] if has_cost else axes
    xs, ys = pair["curve"]["strong_share"], pair["curve"]["quality"]
    wq, sq = report["mean_score"][pair["weak"]], report["mean_score"][pair["strong"]]
    ax.plot(xs, ys, marker=".", label=f"router (APGR {pair['apgr']:.3f})")
    ax.plot([0, 1], [wq, sq], linestyle="--", color="grey", label="random (APGR 0.5)")
    ax.plot(*_pair_oracle(wq, sq, report), linestyle=":", color="green", label="oracle")
    ax.axhline(wq, color="lightgrey", linewidth=0.8)
    ax.axhline(sq, color="lightgrey", linewidth=0.8)
    ax.set_xlabel(f"share of calls to {pair['strong']}")
    ax.set_ylabel("mean quality")
    ax.set_title(f"{pair['weak']} vs {pair['strong']}", fontsize=9)
    ax.legend(fontsize=8)
    if has_cost:
        n = report["n_models"]
        ax2 = axes[1]
        ax2.plot(n["curve"]["mean_cost"], n["curve"]["quality"], marker=".", label="router")
        ax2.plot(
            n["oracle"]["mean_cost"],
            n["oracle"]["quality"],
            linestyle=":",
            color="green",
            label="oracle",
        )
        singles = n["single_models"]
        pts = sorted((v["mean_cost"], v["quality"], k) for k, v in singles.items())
        ax2.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            linestyle="--",
            color="grey",
            label="random mix",
        )
        for c, q, name in pts:
            ax2.scatter([c], [q], color="black", s=12)
            ax2.annotate(name, (c, q), fontsize=7)
        ax2.axhline(n["target_quality"], color="orange", linewidth=0.8, label="95% of best model")
        # linear axis: mixing two models at random is a straight line between their points
        ax2.set_xlabel("mean cost per prompt (USD)")
        ax2.set_ylabel("mean quality")
        ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pair_oracle(wq: float, sq: float, report: dict[str, Any]) -> tuple[list[float], list[float]]:
    # the oracle sends to the strong model exactly the prompts only it gets right, best first
    # (RouteLLM's get_optimal_accuracy: weak quality plus the gain, capped by the strong share)
    gain = float(report["pair"]["oracle_gain_share"])
    return [0.0, gain, 1.0], [wq, wq + gain, wq + gain]
