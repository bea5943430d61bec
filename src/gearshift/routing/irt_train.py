"""Fit the default router's low-rank quality model (``irt.py``) on labelled rows.

Every observed (prompt, model, score) is one soft-labelled binary outcome; the loss is the
weighted cross-entropy of ``sigmoid(a_m + θ_m · (W·φ(x) + c))`` against the score plus L2 on W
and θ, minimised jointly by L-BFGS (scipy, imported here, never on the request path). Rows are
weighted so each source counts at most ``SOURCE_CAP`` rows, so MMLU's 14k questions do not drown
the 299 arena prompts. The start point is seeded, so a build is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gearshift.routing.features import Features
from gearshift.routing.irt import (
    BUCKETS,
    DENSE_CLIP,
    QualityModel,
    bucket_of,
    dense_inputs,
    sigmoid,
)

__all__ = ["IrtOptions", "fit_quality_model", "profile_coefficients", "source_weights"]

FloatArray = npt.NDArray[np.float64]
SOURCE_CAP = 4000


@dataclass(slots=True, frozen=True)
class IrtOptions:
    # one prompt dimension generalised best to a held-out source (RouterArena, seed 0: APGR
    # 0.603 against 0.583 with three); more dimensions fit the training sources' quirks
    rank: int = 1
    l2_words: float = 3e-3  # per-weight penalty on the n-gram embedding (× total weight)
    l2_dense: float = 1e-3
    l2_loadings: float = 1e-3
    max_vocab: int = 20_000
    min_df: int = 3
    iterations: int = 150
    seed: int = 0
    # one training-only offset per source (dropped when serving), L2-penalised: it absorbs each
    # source's scale (a judge's 1-10 against exam accuracy), so the prompt embedding spends its
    # capacity on what varies *within* a source, the ranking a router needs
    l2_source: float = 0.0  # 0: no source offsets
    kinds: bool = True  # the kind probabilities as inputs (False: zeros, for the ablation)


def source_weights(sources: Sequence[str], cap: int = SOURCE_CAP) -> FloatArray:
    counts: dict[str, int] = {}
    for s in sources:
        counts[s] = counts.get(s, 0) + 1
    return np.asarray([min(1.0, cap / counts[s]) for s in sources], dtype=np.float64)


def fit_quality_model(
    feats: Sequence[Features],
    scores: Sequence[Mapping[str, float]],
    weights: FloatArray,
    abilities: Mapping[str, float],
    options: IrtOptions = IrtOptions(),
    log: Callable[[str], Any] | None = None,
    sources: Sequence[str] | None = None,
) -> QualityModel:
    """Train on rows (features, {model: score}, weight); ``abilities`` (catalogue) of the
    trained models that have one, for the profile map of unseen models."""
    from scipy import sparse
    from scipy.optimize import minimize

    from gearshift.routing.train import Design

    # the structural numbers and the kind probabilities are one standardised dense block
    feats = [
        Features(
            dense=dense_inputs(f) if options.kinds else [*f.dense, *([0.0] * len(f.kind_probs))],
            tokens=f.tokens,
            kind=f.kind,
            kind_probs=f.kind_probs,
        )
        for f in feats
    ]
    design = Design(feats, options.min_df, options.max_vocab)
    # kind probabilities stay raw (in [0, 1]): a kind rare in training has a tiny spread, and
    # dividing by it would turn one chat prompt into a 50-sigma input
    n_kinds = len(feats[0].kind_probs) if feats else 0
    n_dense = len(design.mean)
    design.mean[n_dense - n_kinds :] = 0.0
    design.scale[n_dense - n_kinds :] = 1.0
    words_dense = design.matrix(feats)  # (N, V + D): n-gram indicators, standardised dense
    n_vocab = len(design.vocab)
    dense_part = np.asarray(words_dense[:, n_vocab:].todense()).clip(-DENSE_CLIP, DENSE_CLIP)
    buckets = _bucket_matrix(feats, design.vocab)  # (N, B): grams outside the vocabulary
    x = sparse.hstack(
        [words_dense[:, :n_vocab], buckets, sparse.csr_matrix(dense_part)], format="csr"
    )
    n_words = n_vocab + BUCKETS
    models = sorted({m for s in scores for m in s})
    col = {m: j for j, m in enumerate(models)}
    obs_row: list[int] = []
    obs_model: list[int] = []
    obs_y: list[float] = []
    for i, s in enumerate(scores):
        for m in sorted(s):
            obs_row.append(i)
            obs_model.append(col[m])
            obs_y.append(float(s[m]))
    r_idx = np.asarray(obs_row)
    m_idx = np.asarray(obs_model)
    y = np.asarray(obs_y)
    w = weights[r_idx] / weights[r_idx].sum()
    n, p = x.shape
    k, n_models = options.rank, len(models)
    penalty = np.full(p, options.l2_words)
    penalty[n_words:] = options.l2_dense
    xt = x.T.tocsr()

    # start: model offsets at their mean score, small random embedding and loadings
    rng = np.random.default_rng(options.seed)
    means = np.asarray([y[m_idx == j].mean() for j in range(n_models)])
    a0 = np.log(np.clip(means, 0.02, 0.98) / (1 - np.clip(means, 0.02, 0.98)))
    theta0 = 0.1 * rng.standard_normal((n_models, k))
    w0 = 0.01 * rng.standard_normal((p, k))
    c0 = np.zeros(k)
    src_names = sorted(set(sources)) if sources is not None and options.l2_source > 0 else []
    src_of_row = (
        np.asarray([src_names.index(g) for g in sources])
        if sources is not None and src_names
        else np.zeros(n, dtype=np.int64)
    )
    s_idx = src_of_row[r_idx]
    n_src = len(src_names)
    sizes = [p * k, k, n_models, n_models * k, n_src]

    def unpack(v: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        cuts = np.cumsum(sizes)[:-1]
        ww, c, a, th, b = np.split(v, cuts)
        return ww.reshape(p, k), c, a, th.reshape(n_models, k), b

    def loss(v: FloatArray) -> tuple[float, FloatArray]:
        ww, c, a, th, b = unpack(v)
        h = np.asarray(x @ ww) + c  # (N, K)
        z = a[m_idx] + np.einsum("ij,ij->i", h[r_idx], th[m_idx])
        if n_src:
            z = z + b[s_idx]
        q = sigmoid(z)
        eps = 1e-12
        ce = -(y * np.log(q + eps) + (1 - y) * np.log(1 - q + eps))
        value = float(w @ ce)
        value += float(penalty @ (ww**2).sum(axis=1)) + options.l2_loadings * float((th**2).sum())
        value += options.l2_source * float((b**2).sum())
        r = w * (q - y)  # d loss / d z per observation
        g_a = np.bincount(m_idx, weights=r, minlength=n_models)
        g_th = np.zeros_like(th)
        np.add.at(g_th, m_idx, r[:, None] * h[r_idx])
        g_h = np.zeros_like(h)
        np.add.at(g_h, r_idx, r[:, None] * th[m_idx])
        g_w = np.asarray(xt @ g_h) + 2 * penalty[:, None] * ww
        g_c = g_h.sum(axis=0)
        g_th += 2 * options.l2_loadings * th
        g_b = np.bincount(s_idx, weights=r, minlength=n_src)[:n_src] + 2 * options.l2_source * b
        return value, np.concatenate([g_w.ravel(), g_c, g_a, g_th.ravel(), g_b])

    start = np.concatenate([w0.ravel(), c0, a0, theta0.ravel(), np.zeros(n_src)])
    result = minimize(
        loss, start, jac=True, method="L-BFGS-B", options={"maxiter": options.iterations}
    )
    if log:
        log(f"irt: {n} rows, {len(y)} outcomes, {n_models} models, loss {result.fun:.4f}")
    ww, c, a, th, _ = unpack(np.asarray(result.x))
    dense_w = ww[n_words:].copy()
    if not options.kinds:  # the kind columns were zeros: their start weights mean nothing
        dense_w[n_dense - n_kinds :] = 0.0
    params = np.concatenate([a[:, None], th], axis=1)
    coef = profile_coefficients(models, params, abilities)
    return QualityModel(
        vocab=dict(design.vocab),
        token_weights=ww[:n_vocab].astype(np.float32),
        bucket_weights=ww[n_vocab:n_words].astype(np.float32),
        dense_mean=design.mean,
        dense_scale=design.scale,
        dense_weights=dense_w,
        embed_bias=c,
        models=models,
        offsets=a,
        loadings=th,
        profile_coef=coef,
        meta={"options": {f: getattr(options, f) for f in options.__slots__}},
    )


def _bucket_matrix(feats: Sequence[Features], vocab: Mapping[str, int]) -> Any:
    from scipy import sparse

    rows: list[int] = []
    cols: list[int] = []
    for r, f in enumerate(feats):
        hit = sorted({bucket_of(g) for g in f.tokens if g not in vocab})
        rows.extend([r] * len(hit))
        cols.extend(hit)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(feats), BUCKETS))


def profile_coefficients(
    models: Sequence[str], params: FloatArray, abilities: Mapping[str, float]
) -> FloatArray:
    """(2, K + 1): least-squares line from ability to each parameter over the trained models
    with a known ability (a flat line at the mean when fewer than two are known)."""
    known = [i for i, m in enumerate(models) if m in abilities]
    if len(known) < 2:
        mean = params.mean(axis=0) if len(params) else np.zeros(params.shape[1])
        return np.stack([mean, np.zeros_like(mean)])
    ab = np.asarray([abilities[models[i]] for i in known])
    design = np.stack([np.ones_like(ab), ab], axis=1)
    coef, *_ = np.linalg.lstsq(design, params[known], rcond=None)
    out: FloatArray = np.asarray(coef, dtype=np.float64)
    return out


# Labels that describe the grader rather than the prompts: GPT-4 is "right" on 3% of MMLU
# high-school mathematics (chance is 25%), Mixtral on 32%. Never trained on (still scored).
EXCLUDED_CATEGORIES = frozenset({"mmlu/high_school_mathematics"})
SOURCE_ROWS = 3000  # rows sampled from each source (seeded): no source drowns the others


def sample_rows(
    n_rows: int, categories: Sequence[str], seed: int, cap: int = SOURCE_ROWS
) -> list[int]:
    """Indices of at most ``cap`` rows of one source, seeded, excluded categories left out."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_rows)
    kept = [int(i) for i in order if categories[i] not in EXCLUDED_CATEGORIES]
    return sorted(kept[:cap])
