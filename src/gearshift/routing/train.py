"""Train linear text heads: the bundled default router's difficulty head (``build_default``), and
the shared design (``Design``, ``fold_ids``) that ``quality_train`` (``gearshift train``) fits its
per-model quality router on. scikit-learn is imported here, lazily, never on the request path.

A head is an L2-regularised logistic regression over the prompt's distinct n-grams (vocabulary:
grams seen in at least ``min_df`` training prompts, capped at ``max_vocab`` by frequency) and its
standardised dense structural features, then calibrated by isotonic regression fitted on
out-of-fold predictions (k-fold), so a predicted 0.7 means about 70% of such prompts were good.
Fractional scores (judge scores in [0, 1]) are fitted as soft labels: each row counts as a
positive with weight ``score`` and a negative with weight ``1 − score``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gearshift.errors import InvalidRequest
from gearshift.routing.domain import most_frequent
from gearshift.routing.features import Features, extract
from gearshift.routing.formats import LabelledRow
from gearshift.routing.numeric import sigmoid
from gearshift.routing.textmodel import TextModel

__all__ = [
    "TrainOptions",
    "featurize",
    "fit_text_model",
    "kfold_predict",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CALIBRATION_KNOTS = 40


@dataclass(slots=True)
class TrainOptions:
    folds: int = 5
    seed: int = 0
    c: float = 0.1  # inverse L2 strength for the n-gram + dense logistic heads
    min_df: int = 2
    max_vocab: int = 60_000
    calibrate: bool = True


def featurize(rows: Sequence[LabelledRow]) -> list[Features]:
    return [extract(r.request) for r in rows]


class Design:
    """Sparse n-gram indicators + standardised dense features for a set of prompts."""

    def __init__(self, feats: Sequence[Features], min_df: int, max_vocab: int) -> None:
        counts: Counter[str] = Counter()
        for f in feats:
            counts.update(set(f.tokens))
        kept = [g for g, n in most_frequent(counts, max_vocab) if n >= min_df]
        self.vocab = {g: i for i, g in enumerate(sorted(kept))}
        dense = np.asarray([f.dense for f in feats], dtype=np.float64)
        self.mean = dense.mean(axis=0) if len(feats) else np.zeros(dense.shape[1])
        std = dense.std(axis=0) if len(feats) else np.ones(dense.shape[1])
        self.scale = np.where(std > 1e-9, std, 1.0)

    def matrix(self, feats: Sequence[Features]) -> Any:
        from scipy import sparse

        rows: list[int] = []
        cols: list[int] = []
        vocab = self.vocab
        for r, f in enumerate(feats):
            # sorted: a set of strings iterates in a per-process order, and the solver's sums
            # (so its weights, in the last digits) follow the column order of each row
            for i in sorted({vocab.get(g, -1) for g in f.tokens}):
                if i >= 0:
                    rows.append(r)
                    cols.append(i)
        text = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(feats), len(vocab)))
        dense = (np.asarray([f.dense for f in feats], dtype=np.float64) - self.mean) / self.scale
        return sparse.hstack([text, sparse.csr_matrix(dense)]).tocsr()


def _fit_head(
    x: Any, y: FloatArray, c: float, weight: FloatArray | None
) -> tuple[FloatArray, float]:
    """Logistic regression with soft labels; returns (coefficients, intercept)."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    base = np.ones(len(y)) if weight is None else weight
    hard = np.all((y == 0) | (y == 1))
    if hard:
        xx, yy, ww = x, y.astype(int), base
    else:  # soft labels: duplicate rows as positive (weight y) and negative (weight 1 - y)
        xx = sparse.vstack([x, x]).tocsr()
        yy = np.concatenate([np.ones(len(y), int), np.zeros(len(y), int)])
        ww = np.concatenate([base * y, base * (1 - y)])
    if len(np.unique(yy[ww > 0])) < 2:  # constant target: a flat head at its rate
        rate = float(np.average(y, weights=base))
        rate = min(max(rate, 1e-4), 1 - 1e-4)
        return np.zeros(x.shape[1]), float(np.log(rate / (1 - rate)))
    # liblinear shuffles its coordinates: a fixed seed makes `make router` reproducible
    model = LogisticRegression(C=c, max_iter=1000, solver="liblinear", random_state=0)
    model.fit(xx, yy, sample_weight=ww)
    return model.coef_[0].astype(np.float64), float(model.intercept_[0])


def fold_ids(n: int, folds: int, seed: int, groups: Sequence[str] | None = None) -> IntArray:
    """Fold of each row; stratified by ``groups`` (e.g. data source) so every fold has each."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n, dtype=np.int64)
    keys = groups if groups is not None else [""] * n
    by_group: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        by_group.setdefault(key, []).append(i)
    for idx in by_group.values():
        perm = rng.permutation(np.asarray(idx))
        for k in range(folds):
            out[perm[k::folds]] = k
    return out


def kfold_predict(
    feats: Sequence[Features],
    targets: FloatArray,
    options: TrainOptions,
    *,
    groups: Sequence[str] | None = None,
    weights: FloatArray | None = None,
    progress: Callable[[str], None] | None = None,
) -> FloatArray:
    """Out-of-fold raw probabilities (N, H): each row scored by heads never trained on it."""
    n = len(feats)
    if options.folds < 2 or n < options.folds:
        raise InvalidRequest(f"need at least {max(options.folds, 2)} rows for {options.folds}-fold")
    fold = fold_ids(n, options.folds, options.seed, groups)
    out = np.zeros(targets.shape, dtype=np.float64)
    for k in range(options.folds):
        train = np.flatnonzero(fold != k).tolist()
        test = np.flatnonzero(fold == k).tolist()
        if progress:
            progress(f"fold {k + 1}/{options.folds}")
        design = Design([feats[i] for i in train], options.min_df, options.max_vocab)
        xtr = design.matrix([feats[i] for i in train])
        xte = design.matrix([feats[i] for i in test])
        for h in range(targets.shape[1]):
            w = None if weights is None else weights[train, h]
            coef, icpt = _fit_head(xtr, targets[train, h], options.c, w)
            out[test, h] = sigmoid(xte @ coef + icpt)
    return out


def _isotonic_knots(
    raw: FloatArray, truth: FloatArray, weight: FloatArray | None
) -> tuple[list[float], list[float]]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(raw, truth, sample_weight=weight)
    xs = np.asarray(iso.X_thresholds_, dtype=np.float64)
    ys = np.asarray(iso.y_thresholds_, dtype=np.float64)
    if len(xs) > CALIBRATION_KNOTS:
        pick = np.unique(np.linspace(0, len(xs) - 1, CALIBRATION_KNOTS).round().astype(int))
        xs, ys = xs[pick], ys[pick]
    # a strictly increasing map keeps the ranking of the raw model (ties would lose APGR)
    ys = np.maximum.accumulate(ys + np.linspace(0.0, 1e-6, len(ys)))
    return xs.tolist(), np.clip(ys, 0.0, 1.0).tolist()


def fit_text_model(
    feats: Sequence[Features],
    targets: FloatArray,
    heads: Sequence[str],
    options: TrainOptions,
    *,
    oof: FloatArray | None = None,
    weights: FloatArray | None = None,
    meta: dict[str, Any] | None = None,
    calibration_targets: FloatArray | None = None,
) -> TextModel:
    """Fit every head on all rows; calibrate with out-of-fold predictions when given.

    ``calibration_targets`` (default: ``targets``) is what a calibrated head's output should be
    the probability of; the default router fits E[strong − weak] but reports P(strong needed).
    """
    calib_to = targets if calibration_targets is None else calibration_targets
    design = Design(feats, options.min_df, options.max_vocab)
    x = design.matrix(feats)
    v, d = len(design.vocab), len(design.mean)
    token_w = np.zeros((v, len(heads)))
    dense_w = np.zeros((d, len(heads)))
    bias = np.zeros(len(heads))
    calib_x: list[list[float]] = []
    calib_y: list[list[float]] = []
    for h in range(len(heads)):
        w = None if weights is None else weights[:, h]
        coef, icpt = _fit_head(x, targets[:, h], options.c, w)
        token_w[:, h], dense_w[:, h], bias[h] = coef[:v], coef[v:], icpt
        if options.calibrate and oof is not None:
            xs, ys = _isotonic_knots(oof[:, h], calib_to[:, h], w)
            calib_x.append(xs)
            calib_y.append(ys)
        else:
            calib_x.append([])
            calib_y.append([])
    # drop n-grams whose weights are all negligible: a smaller file, the same predictions
    keep = np.flatnonzero(np.abs(token_w).max(axis=1) > 1e-4)
    words = sorted(design.vocab, key=design.vocab.__getitem__)
    vocab = {words[i]: j for j, i in enumerate(keep)}
    return TextModel(
        heads=list(heads),
        vocab=vocab,
        token_weights=token_w[keep],
        dense_mean=design.mean,
        dense_scale=design.scale,
        dense_weights=dense_w,
        bias=bias,
        calib_x=calib_x,
        calib_y=calib_y,
        meta=dict(meta or {}),
    )
