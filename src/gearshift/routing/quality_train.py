"""``gearshift train``: learn the quality of every (prompt, model) pair from labelled rows.

The model, for a prompt with features x (the n-gram indicators and standardised dense features
of ``train.Design``) and a model m::

    q_m(x) = sigmoid(b_m + s_m · (x · w) + x · v_m)

* ``x · w`` is a *shared* difficulty, learned from every model's outcomes at once (with 14 models
  a prompt contributes 14 labels to it, so it is far less noisy than any one model's head);
* ``s_m`` is how strongly model m feels that difficulty (an IRT "discrimination": frontier models
  drop less on hard prompts than small ones);
* ``v_m`` is what is *particular* to model m — a cheap model that is good at code and bad at law —
  regularised harder than ``w`` so it only keeps what the data support;
* ``b_m`` is the model's overall level.

The fit minimises the mean binary cross-entropy over the scores the rows record (fractional judge
scores are soft labels; a model a row does not score is left out of that row's loss) plus L2
penalties ``λ_shared·|w|²`` and ``λ_own·Σ|v_m|²`` and a pull of ``s_m`` towards 1, by L-BFGS
with the gradients written out (two sparse products per step): seconds on a few thousand rows.

x is a tf-idf row (binary grams × idf, L2-normalised: long and short prompts weigh the same);
the kind detector's probabilities are appended when they lower the validation loss, and the
standardised structural features only on request (``dense_share``: they raised the held-out cost
on MMLU-Pro and arena-bench). Serving needs none of this:
column m of the saved ``TextModel`` is ``s_m·w + v_m`` with the idf folded in and bias ``b_m``,
scored by the existing numpy code (which divides a prompt's gram sum by its idf norm). The
penalties are picked on an inner validation split of the training rows (``tune_settings``),
never on rows the report is measured on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from gearshift.errors import InvalidRequest
from gearshift.routing.features import Features
from gearshift.routing.formats import LabelledRow
from gearshift.routing.numeric import sigmoid
from gearshift.routing.textmodel import TextModel

__all__ = [
    "FitSettings",
    "QualityFit",
    "QualityOptions",
    "TfidfDesign",
    "fit_quality",
    "quality_report",
    "score_matrix",
    "train_quality_router",
    "tune_settings",
]

FloatArray = npt.NDArray[np.float64]
# (λ_shared, λ_own / λ_shared); λ on the mean loss per recorded score
# A wider grid (3e-5 .. 0.1) and also trying the structural features lowered the validation
# log-loss but raised the held-out cost at 95% on MMLU-Pro and arena-bench (bench/trained_router.py,
# 2026-12-05): log-loss then favours smoother heads than routing wants.
SHARED_GRID = (1e-4, 1e-3, 1e-2)
OWN_RATIO_GRID = (1.0, 16.0)
KIND_SHARE = 0.3
DISCRIMINATION_PULL = 1e-2
VALIDATION_SHARE = 0.25
MAX_ITER = 200


@dataclass(slots=True, frozen=True)
class FitSettings:
    shared: float = 1e-4  # λ on the shared weights w
    own_ratio: float = 1.0  # λ on each model's own weights v_m, as a multiple of ``shared``
    min_df: int = 2
    max_vocab: int = 20_000
    own_vocab: int = 20_000  # n-grams (most frequent first) that get per-model weights
    dense_share: float = 0.0  # scale of the standardised structural features (0: unused)
    kind_share: float = 0.0  # scale of the kind detector's probabilities (0: unused)


@dataclass(slots=True)
class QualityFit:
    w: FloatArray  # (F,)
    own: FloatArray  # (F, M)
    bias: FloatArray  # (M,)
    slope: FloatArray  # (M,) discrimination s_m

    def weights(self) -> FloatArray:
        """(F, M): the per-model weights the saved model scores with."""
        out: FloatArray = self.w[:, None] * self.slope[None, :] + self.own
        return out

    def predict(self, x: Any) -> FloatArray:
        return sigmoid(x @ self.weights() + self.bias)


def score_matrix(
    rows: Sequence[LabelledRow], models: Sequence[str]
) -> tuple[FloatArray, FloatArray]:
    """(scores, mask): mask is 0 where a row records no score for a model."""
    scores = np.zeros((len(rows), len(models)))
    mask = np.zeros((len(rows), len(models)))
    col = {m: j for j, m in enumerate(models)}
    for i, r in enumerate(rows):
        for m, v in r.scores.items():
            j = col.get(m)
            if j is not None:
                scores[i, j] = v
                mask[i, j] = 1.0
    return scores, mask


def own_columns(x: Any, own_vocab: int, n_tokens: int) -> npt.NDArray[np.int64]:
    """Columns that get per-model weights: the ``own_vocab`` most frequent n-grams + the rest
    (structural features and kinds).

    Per-model weights over the whole vocabulary would multiply the parameters by the number of
    models (and the fit time with them) for grams too rare to say anything about one model.
    """
    df = np.asarray((x[:, :n_tokens] != 0).sum(axis=0)).ravel()
    top = np.sort(np.argsort(-df, kind="stable")[: min(own_vocab, n_tokens)])
    dense = np.arange(n_tokens, x.shape[1])
    return np.concatenate([top, dense]).astype(np.int64)


def fit_quality(
    x: Any,
    scores: FloatArray,
    mask: FloatArray,
    settings: FitSettings,
    *,
    n_tokens: int,
    start: QualityFit | None = None,
) -> QualityFit:
    """Fit w, v, b, s on a CSR design ``x`` (N, F) whose first ``n_tokens`` columns are grams;
    ``start`` warm-starts the optimiser."""
    from scipy.optimize import minimize

    f = x.shape[1]
    m = scores.shape[1]
    observed = float(mask.sum())
    if observed == 0:
        raise InvalidRequest("no recorded scores to train on")
    lam_w = settings.shared
    lam_v = settings.shared * settings.own_ratio
    cols = own_columns(x, settings.own_vocab, n_tokens)
    k = len(cols)
    xo = x[:, cols].tocsr()
    xt, xot = x.T.tocsr(), xo.T.tocsr()
    # models' base rates start the biases, so the first steps are not spent finding them
    rate = np.clip((scores * mask).sum(0) / np.maximum(mask.sum(0), 1.0), 1e-3, 1 - 1e-3)
    if start is None or start.own.shape != (f, m):
        theta0 = np.concatenate(
            [np.zeros(f), np.zeros(k * m), np.log(rate / (1 - rate)), np.ones(m)]
        )
    else:
        theta0 = np.concatenate([start.w, start.own[cols].ravel(), start.bias, start.slope])

    def unpack(theta: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        w = theta[:f]
        v = theta[f : f + k * m].reshape(k, m)
        b = theta[f + k * m : f + k * m + m]
        s = theta[f + k * m + m :]
        return w, v, b, s

    def loss_grad(theta: FloatArray) -> tuple[float, FloatArray]:
        w, v, b, s = unpack(theta)
        u = x @ w
        z = b[None, :] + u[:, None] * s[None, :] + xo @ v
        # log(1 + e^z) - y·z, written to stay finite for large |z|
        soft = np.logaddexp(0.0, z)
        loss = float((mask * (soft - scores * z)).sum()) / observed
        r = mask * (sigmoid(z) - scores) / observed
        g_b = r.sum(0)
        g_s = (r * u[:, None]).sum(0) + DISCRIMINATION_PULL * (s - 1.0)
        g_w = xt @ (r @ s) + lam_w * w
        g_v = xot @ r + lam_v * v
        loss += 0.5 * (lam_w * float(w @ w) + lam_v * float((v * v).sum()))
        loss += 0.5 * DISCRIMINATION_PULL * float(((s - 1.0) ** 2).sum())
        return loss, np.concatenate([g_w, g_v.ravel(), g_b, g_s])

    from threadpoolctl import threadpool_limits

    # one BLAS thread: the products are sparse or small, and threads fighting over busy cores
    # made a fit ten times slower on a loaded machine (measured: 160 s -> 18 s on 2 cores)
    with threadpool_limits(limits=1):
        result = minimize(
            loss_grad,
            theta0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": MAX_ITER, "gtol": 1e-5},
        )
    w, v, b, s = unpack(np.asarray(result.x, dtype=np.float64))
    own = np.zeros((f, m))
    own[cols] = v
    return QualityFit(w.copy(), own, b.copy(), s.copy())


class TfidfDesign:
    """The trained router's columns: tf-idf grams (binary × idf, L2-normalised rows), then the
    standardised structural features × ``dense_share``, then the kind probabilities ×
    ``kind_share``. The vocabulary, idf and standardisation come from the rows it is built on."""

    def __init__(self, feats: Sequence[Features], settings: FitSettings) -> None:
        from gearshift.routing.train import Design

        self.base = Design(feats, settings.min_df, settings.max_vocab)
        self.settings = settings
        self.n_tokens = len(self.base.vocab)
        binary = self.base.matrix(feats)[:, : self.n_tokens]
        df = np.asarray((binary != 0).sum(axis=0), dtype=np.float64).ravel()
        self.idf: FloatArray = np.log((1.0 + len(feats)) / (1.0 + df)) + 1.0
        self.use_kinds = settings.kind_share > 0 and all(len(f.kind_probs) for f in feats)

    def matrix(self, feats: Sequence[Features]) -> Any:
        from scipy import sparse

        x = self.base.matrix(feats)
        v = self.n_tokens
        tokens = x[:, :v] @ sparse.diags(self.idf)
        norm = np.sqrt(np.asarray(tokens.multiply(tokens).sum(axis=1)).ravel())
        tokens = sparse.diags(1.0 / np.where(norm > 0, norm, 1.0)) @ tokens
        parts = [tokens, x[:, v:] * self.settings.dense_share]
        if self.use_kinds:
            probs = np.asarray([f.kind_probs for f in feats], dtype=np.float64)
            parts.append(sparse.csr_matrix(probs * self.settings.kind_share))
        return sparse.hstack(parts).tocsr()

    def to_text_model(
        self, fit: QualityFit, heads: Sequence[str], meta: dict[str, Any]
    ) -> TextModel:
        """The saved form: idf folded into the gram weights, shares into the others."""
        weights = fit.weights()
        v, d = self.n_tokens, len(self.base.mean)
        words = sorted(self.base.vocab, key=self.base.vocab.__getitem__)
        kinds = weights[v + d :] * self.settings.kind_share if self.use_kinds else np.zeros((0, 0))
        return TextModel(
            heads=list(heads),
            vocab={w: i for i, w in enumerate(words)},
            token_weights=weights[:v] * self.idf[:, None],
            dense_mean=self.base.mean,
            dense_scale=self.base.scale,
            dense_weights=weights[v : v + d] * self.settings.dense_share,
            bias=fit.bias.copy(),
            meta=dict(meta),
            token_idf=self.idf.copy(),
            kind_weights=kinds,
        )


def _log_loss(p: FloatArray, scores: FloatArray, mask: FloatArray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    ll = -(scores * np.log(p) + (1 - scores) * np.log(1 - p))
    return float((ll * mask).sum() / max(mask.sum(), 1.0))


def tune_settings(
    feats: Sequence[Features],
    scores: FloatArray,
    mask: FloatArray,
    *,
    seed: int,
    base: FitSettings,
    progress: Callable[[str], None] | None = None,
) -> tuple[FitSettings, list[dict[str, Any]]]:
    """Pick (λ_shared, λ_own ratio) from the grids by log-loss on an inner validation split of
    these rows, then try adding the kind probabilities."""
    n = len(feats)
    order = np.random.default_rng(seed + 7919).permutation(n)
    cut = max(2, round(n * (1 - VALIDATION_SHARE)))
    tr, va = order[:cut].tolist(), order[cut:].tolist()
    if len(va) < 2:
        return base, []
    design = TfidfDesign([feats[i] for i in tr], base)
    xtr = design.matrix([feats[i] for i in tr])
    xva = design.matrix([feats[i] for i in va])
    trials: list[dict[str, Any]] = []
    best: tuple[float, FitSettings] | None = None
    for ratio in OWN_RATIO_GRID:
        warm: QualityFit | None = None
        # from strong to weak regularisation: each fit warm-starts the next
        for shared in sorted(SHARED_GRID, reverse=True):
            settings = replace(base, shared=shared, own_ratio=ratio)
            warm = fit_quality(
                xtr, scores[tr], mask[tr], settings, n_tokens=design.n_tokens, start=warm
            )
            loss = _log_loss(warm.predict(xva), scores[va], mask[va])
            trials.append({**asdict(settings), "validation_log_loss": loss})
            if progress:
                progress(f"tune: shared {shared:g}, own x{ratio:g}: log-loss {loss:.4f}")
            if best is None or loss < best[0]:
                best = (loss, settings)
    assert best is not None
    # then the kind detector's probabilities, kept only where they lower the validation loss
    for extra in ({"kind_share": KIND_SHARE},):
        candidate = replace(best[1], **extra)  # type: ignore[arg-type]
        design = TfidfDesign([feats[i] for i in tr], candidate)
        if "kind_share" in extra and not design.use_kinds:
            continue
        fit = fit_quality(
            design.matrix([feats[i] for i in tr]),
            scores[tr],
            mask[tr],
            candidate,
            n_tokens=design.n_tokens,
        )
        loss = _log_loss(fit.predict(design.matrix([feats[i] for i in va])), scores[va], mask[va])
        trials.append({**asdict(candidate), "validation_log_loss": loss})
        if progress:
            progress(f"tune: + {', '.join(extra)}: log-loss {loss:.4f}")
        if loss < best[0]:
            best = (loss, candidate)
    return best[1], trials


# ---- gearshift train -------------------------------------------------------------------------


@dataclass(slots=True)
class QualityOptions:
    folds: int = 5  # cross-validated report; 0 skips it (the router is the same)
    seed: int = 0
    min_df: int = 2
    max_vocab: int = 20_000
    shared: float | None = None  # fixed penalties; None = tune on an inner split
    own_ratio: float | None = None
    answer_tokens: int = 300  # for costs estimated from list prices


def _pair(
    models: Sequence[str], mean_score: dict[str, float], mean_cost: dict[str, float]
) -> tuple[str, str]:
    """(weak, strong): the cheapest model and the best-scoring one (cheaper on ties)."""
    strong = max(models, key=lambda m: (mean_score[m], -mean_cost[m]))
    weak = min(models, key=lambda m: (mean_cost[m], -mean_score[m]))
    if weak == strong:
        weak = min((m for m in models if m != strong), key=lambda m: (mean_cost[m], -mean_score[m]))
    return weak, strong


def train_quality_router(
    rows: Sequence[LabelledRow],
    options: QualityOptions,
    *,
    feats: Sequence[Features] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[TextModel, dict[str, Any]]:
    """Fit the per-model quality router on ``rows``; returns (model, report)."""
    from gearshift.routing.row_costs import fill_missing_costs
    from gearshift.routing.train import featurize

    if len(rows) < 8:
        raise InvalidRequest("need at least 8 labelled rows to train")
    models = list(dict.fromkeys(m for r in rows for m in r.scores))
    if len(models) < 2:
        raise InvalidRequest("labelled data must score at least two models to train a router")
    price_sources = fill_missing_costs(rows, models, answer_tokens=options.answer_tokens)
    scores, mask = score_matrix(rows, models)
    feats = featurize(rows) if feats is None else feats
    say = progress or (lambda _msg: None)
    say(f"{len(rows)} rows, {len(models)} models, {int(mask.sum())} recorded scores")
    trials: list[dict[str, Any]] = []
    base = FitSettings(min_df=options.min_df, max_vocab=options.max_vocab)
    if options.shared is not None and options.own_ratio is not None:
        settings = replace(base, shared=options.shared, own_ratio=options.own_ratio)
    else:
        settings, trials = tune_settings(
            feats, scores, mask, seed=options.seed, base=base, progress=progress
        )
    mean_score = {m: float(scores[mask[:, j] > 0, j].mean()) for j, m in enumerate(models)}
    mean_cost = {m: float(np.mean([r.costs[m] for r in rows if m in r.scores])) for m in models}
    weak, strong = _pair(models, mean_score, mean_cost)
    meta: dict[str, Any] = {
        "kind": "quality",
        "strong": strong,
        "weak": weak,
        "mean_score": mean_score,
        "mean_cost": mean_cost,
        "price_sources": price_sources,
        "rows": len(rows),
        "settings": asdict(settings),
        "tuning": trials,
    }
    report: dict[str, Any] = {"weak": weak, "strong": strong, "settings": meta["settings"]}
    if options.folds >= 2:
        say(f"{options.folds}-fold cross-validation")
        oof = _kfold(feats, scores, mask, settings, options)
        costs = np.asarray([[r.costs.get(m, 0.0) for m in models] for r in rows])
        report.update(quality_report(oof, scores, mask, costs, models, weak, strong))
    say("fitting on all rows")
    design = TfidfDesign(feats, settings)
    fit = fit_quality(design.matrix(feats), scores, mask, settings, n_tokens=design.n_tokens)
    meta["cv"] = report
    return design.to_text_model(fit, models, meta), report


def _kfold(
    feats: Sequence[Features],
    scores: FloatArray,
    mask: FloatArray,
    settings: FitSettings,
    options: QualityOptions,
) -> FloatArray:
    from gearshift.routing.train import fold_ids

    fold = fold_ids(len(feats), options.folds, options.seed)
    out = np.zeros(scores.shape)
    for k in range(options.folds):
        tr = np.flatnonzero(fold != k).tolist()
        te = np.flatnonzero(fold == k).tolist()
        design = TfidfDesign([feats[i] for i in tr], settings)
        xtr = design.matrix([feats[i] for i in tr])
        fit = fit_quality(xtr, scores[tr], mask[tr], settings, n_tokens=design.n_tokens)
        out[te] = fit.predict(design.matrix([feats[i] for i in te]))
    return out


def quality_report(
    predicted: FloatArray,
    scores: FloatArray,
    mask: FloatArray,
    costs: FloatArray,
    models: Sequence[str],
    weak: str,
    strong: str,
) -> dict[str, Any]:
    """Brier per model, pair APGR (ranked by predicted gain) and the N-model cost shares."""
    from gearshift.routing.metrics import apgr, cost_share_at, cpt, pair_curve

    per_model = {}
    for j, m in enumerate(models):
        have = mask[:, j] > 0
        err = predicted[have, j] - scores[have, j]
        per_model[m] = {"rows": int(have.sum()), "brier": round(float(np.mean(err**2)), 4)}
    out: dict[str, Any] = {"per_model": per_model}
    w, s = models.index(weak), models.index(strong)
    both = (mask[:, w] > 0) & (mask[:, s] > 0)
    if both.sum() >= 10:
        curve = pair_curve(
            predicted[both, s] - predicted[both, w], scores[both, w], scores[both, s]
        )
        out["pair"] = {
            "weak": weak,
            "strong": strong,
            "apgr": round(apgr(curve), 4),
            "cpt50": round(cpt(curve, 0.5), 4),
            "cpt80": round(cpt(curve, 0.8), 4),
        }
    full = mask.all(axis=1)
    if len(models) > 2 and full.sum() >= 10:
        out["n_models"] = cost_share_at(predicted[full], costs[full], scores[full], models)
    return out
