"""Fit the default router's low-rank quality model (``irt.py``) on labelled rows.

Every observed (prompt, model, score) is one soft-labelled binary outcome; the loss is the
weighted cross-entropy of ``sigmoid(a_m + θ_m · (W·φ(x) + c) + u_m · kinds(x) + d_{m,source})``
against the score plus L2 penalties, minimised jointly by L-BFGS (scipy, imported here, never on
the request path). ``d`` is a training-only offset per (model, source) that serving drops; ``u_m``
are the model's own weights on the kind probabilities; trained loadings are pulled towards the
ability line that profiles unseen models (``IrtOptions``). Rows are weighted so each source counts
at most ``SOURCE_CAP`` rows. The start point is seeded, so a build is reproducible.

Then the encoder heads (``fit_heads``): a ridge regression per trained model of its scores on the
prompts' static-encoder embeddings, and one of each row's mean score; numpy only, closed form."""

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
    # one training-only offset per (model, source) (dropped when serving: the model's pooled
    # offset a_m serves), L2-penalised: it absorbs each source's scale for each model (a judge's
    # 1-10 against exam accuracy; Mixtral close to GPT-4 on one source, far on another), so the
    # prompt embedding spends its capacity on what varies *within* a source, the ranking a router
    # needs, instead of on telling the sources apart
    l2_source: float = 1e-3  # 0: no (model, source) offsets
    # one training-only offset per source shared by its models, lightly penalised: it puts the
    # models that only one source scores (arena-bench's judge scale, RouterArena's) on the
    # common scale of the models several sources score, so the profile line from ability to
    # offset is not fitted across sources' scales; serving adds the sources' weighted mean
    l2_source_level: float = 0.0  # 0: no per-source offsets
    # observation weights: each source's total is proportional to (its outcomes)^(1 - balance):
    # 0 keeps every outcome equal (MMLU-Pro's 14 models per row dominate), 1 gives every
    # source the same total weight
    balance: float = 0.0
    kinds: bool = True  # the kind probabilities as inputs (False: zeros, for the ablation)
    # own per-model weights on the last ``own_inputs`` dense inputs (11: the kind
    # probabilities), L2-penalised by ``l2_own``: what a model is good or bad at by kind
    own_inputs: int = 11
    l2_own: float = 1e-3
    # a trained model's loadings are pulled towards a line in its catalogue ability (fitted
    # jointly), the same line that gives unseen models theirs: without it a model fitted on a
    # few 2-model exam sources (Mixtral: θ ≈ -4.8 against the line's -1.7) is not on the scale
    # of the profiled models it is compared with, and wins argmax on easy prompts it fails.
    # Off: at 1e-2 (set before measuring) MMLU-Pro held out reached 95% of the best model's
    # quality (at 75% of its cost) but its pair APGR fell below the baseline's (0.537 vs 0.542)
    l2_profile: float = 0.0
    # the encoder heads (``QualityModel.head_share``): share of the final quality, and the ridge
    # strength of each model's head on the 256 embedding dimensions (unit vectors). Chosen on
    # seed 0 of the held-out folds among shares 0-1 and strengths 1 and 10 (docs/benchmarks.md)
    head_share: float = 0.5
    head_alpha: float = 10.0
    # prompts of fewer focus words give the heads a proportionally smaller share: "hi" alone
    # embeds unlike every training prompt (under 0.1% have fewer than 8 words) and its mean head
    # said 0.49, an exam question's level. Held out (3 seeds), 4 against none: the same pair APGR
    # on the permissive sources and AlpacaEval 1/2 (0.498 / 0.429); 16 lost 0.04 on AlpacaEval 2
    head_full_words: int = 4


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
            words=f.words,
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
    src_list = list(sources) if sources is not None else ["all"] * len(scores)
    w = weights[r_idx] * _balance_factors(src_list, r_idx, weights, options.balance)
    w = w / w.sum()
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
    src_names = sorted(set(src_list)) if options.l2_source > 0 else []
    src_of_row = (
        np.asarray([src_names.index(g) for g in src_list])
        if src_names
        else np.zeros(n, dtype=np.int64)
    )
    # one offset per (source, model) pair: index source * models + model
    s_idx = src_of_row[r_idx] * n_models + m_idx
    n_src = len(src_names) * n_models
    level_names = sorted(set(src_list)) if options.l2_source_level > 0 else []
    l_idx = (
        np.asarray([level_names.index(g) for g in src_list])[r_idx]
        if level_names
        else np.zeros(len(r_idx), dtype=np.int64)
    )
    n_lvl = len(level_names)
    n_own = options.own_inputs
    own_x = dense_part[:, dense_part.shape[1] - n_own :] if n_own else np.zeros((n, 0))
    own_obs = own_x[r_idx]  # (obs, n_own)
    known = np.asarray([j for j, m in enumerate(models) if m in abilities], dtype=np.int64)
    known_ab = np.asarray([abilities[models[j]] for j in known])
    n_line = 2 * (k + n_own) if options.l2_profile > 0 else 0
    sizes = [p * k, k, n_models, n_models * k, n_src, n_lvl, n_models * n_own, n_line]

    def unpack(
        v: FloatArray,
    ) -> tuple[FloatArray, ...]:
        cuts = np.cumsum(sizes)[:-1]
        ww, c, a, th, b, lv, u, line = np.split(v, cuts)
        return (
            ww.reshape(p, k),
            c,
            a,
            th.reshape(n_models, k),
            b,
            lv,
            u.reshape(n_models, n_own),
            line.reshape(2 if n_line else 0, k + n_own),
        )

    def loss(v: FloatArray) -> tuple[float, FloatArray]:
        ww, c, a, th, b, lv, u, line = unpack(v)
        h = np.asarray(x @ ww) + c  # (N, K)
        z = a[m_idx] + np.einsum("ij,ij->i", h[r_idx], th[m_idx])
        if n_src:
            z = z + b[s_idx]
        if n_lvl:
            z = z + lv[l_idx]
        if n_own:
            z = z + np.einsum("ij,ij->i", own_obs, u[m_idx])
        q = sigmoid(z)
        eps = 1e-12
        ce = -(y * np.log(q + eps) + (1 - y) * np.log(1 - q + eps))
        value = float(w @ ce)
        value += float(penalty @ (ww**2).sum(axis=1)) + options.l2_loadings * float((th**2).sum())
        value += options.l2_source * float((b**2).sum())
        value += options.l2_source_level * float((lv**2).sum())
        value += options.l2_own * float((u**2).sum())
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
        g_l = np.bincount(l_idx, weights=r, minlength=n_lvl)[:n_lvl] + (
            2 * options.l2_source_level * lv
        )
        g_u = np.zeros_like(u)
        if n_own:
            np.add.at(g_u, m_idx, r[:, None] * own_obs)
            g_u += 2 * options.l2_own * u
        g_line = np.zeros_like(line)
        if n_line and len(known):
            loads = np.concatenate([th, u], axis=1)
            resid = loads[known] - line[0] - known_ab[:, None] * line[1]
            value += options.l2_profile * float((resid**2).sum())
            g_load = np.zeros_like(loads)
            g_load[known] = 2 * options.l2_profile * resid
            g_th += g_load[:, :k]
            g_u += g_load[:, k:]
            g_line[0] = -2 * options.l2_profile * resid.sum(axis=0)
            g_line[1] = -2 * options.l2_profile * (known_ab[:, None] * resid).sum(axis=0)
        parts = [g_w.ravel(), g_c, g_a, g_th.ravel(), g_b, g_l, g_u.ravel(), g_line.ravel()]
        return value, np.concatenate(parts)

    start = np.concatenate(
        [
            w0.ravel(),
            c0,
            a0,
            theta0.ravel(),
            np.zeros(n_src),
            np.zeros(n_lvl),
            np.zeros(n_models * n_own),
            np.zeros(n_line),
        ]
    )
    result = minimize(
        loss, start, jac=True, method="L-BFGS-B", options={"maxiter": options.iterations}
    )
    if log:
        log(f"irt: {n} rows, {len(y)} outcomes, {n_models} models, loss {result.fun:.4f}")
    ww, c, a, th, _, lv, u, _ = unpack(np.asarray(result.x))
    if n_lvl:  # serving knows no source: every model gets the sources' mean level
        level_w = np.bincount(l_idx, weights=w, minlength=n_lvl)
        a = a + float(level_w @ lv) / float(level_w.sum())
    dense_w = ww[n_words:].copy()
    if not options.kinds:  # the kind columns were zeros: their start weights mean nothing
        dense_w[n_dense - n_kinds :] = 0.0
    params = np.concatenate([a[:, None], th, u], axis=1)
    coef = profile_coefficients(models, params, abilities)
    heads: dict[str, Any] = {}
    if options.head_share > 0:
        w_heads, b_heads = fit_heads(
            QualityModel.prompt_vectors(feats), scores, models, options.head_alpha
        )
        heads = {
            "head_weights": w_heads,
            "head_bias": b_heads,
            "head_share": options.head_share,
            "head_full_words": options.head_full_words,
        }
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
        loadings=np.concatenate([th, u], axis=1),
        profile_coef=coef,
        own_inputs=n_own,
        meta={"options": {f: getattr(options, f) for f in options.__slots__}},
        **heads,
    )


def fit_heads(
    e: FloatArray, scores: Sequence[Mapping[str, float]], models: Sequence[str], alpha: float
) -> tuple[FloatArray, FloatArray]:
    """(M + 1, D) weights and (M + 1,) biases: a ridge regression of each model's scores on the
    prompts' embeddings e (N, D), over the rows that score it, then one of each row's mean score
    (the head unseen models are predicted from). Unweighted: every outcome counts once."""
    weights = np.zeros((len(models) + 1, e.shape[1]))
    bias = np.zeros(len(models) + 1)
    for j, m in enumerate(models):
        rows = [i for i, s in enumerate(scores) if m in s]
        y = np.asarray([scores[i][m] for i in rows])
        weights[j], bias[j] = _ridge(e[rows], y, alpha)
    mean = np.asarray([float(np.mean(list(s.values()))) if s else 0.5 for s in scores])
    weights[-1], bias[-1] = _ridge(e, mean, alpha)
    return weights, bias


def _ridge(x: FloatArray, y: FloatArray, alpha: float) -> tuple[FloatArray, float]:
    """Weights and intercept minimising |y − x·w − b|² + alpha·|w|² (the intercept unpenalised)."""
    if len(y) < 2:
        return np.zeros(x.shape[1]), float(y.mean()) if len(y) else 0.5
    x_mean = x.mean(axis=0)
    y_mean = float(y.mean())
    xc = x - x_mean
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - y_mean))
    return w, y_mean - float(x_mean @ w)


def _balance_factors(
    sources: Sequence[str], r_idx: npt.NDArray[np.int64], weights: FloatArray, balance: float
) -> FloatArray:
    """Per observation: scale each source's total weight to (its total)^(1 - balance)."""
    if balance == 0.0:
        return np.ones(len(r_idx))
    names = sorted(set(sources))
    of_row = np.asarray([names.index(g) for g in sources])
    of_obs = of_row[r_idx]
    totals = np.bincount(of_obs, weights=weights[r_idx], minlength=len(names))
    factor = totals ** (-balance)
    out: FloatArray = factor[of_obs]
    return out


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
