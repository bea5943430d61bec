"""A plain baseline router for the benchmarks: tf-idf word 1-2-grams + ridge regression per model.

Every router figure in docs/benchmarks.md is printed beside this baseline trained on the same
rows, so "the router is good" always means "better than the obvious thing". Fair tuning: the
ridge strength (per model) and the vocabulary's ``min_df`` are picked on an inner validation
split *of the training rows only* (never the rows it is scored on), by mean squared error, then
the regressors are refitted on all training rows.

    from baseline import fit_baseline
    model = fit_baseline(texts, scores, mask, seed=0)   # scores/mask: (N, M) arrays
    predicted = model.predict(new_texts)                 # (N', M) predicted quality in [0, 1]

``mask[i, j]`` is 1 where row i records a score for model j (rows may miss models). scikit-learn
only; importable from other bench scripts (``sys.path`` holds bench/ when they run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0)
MIN_DFS = (1, 2)
VALIDATION_SHARE = 0.25

__all__ = ["ALPHAS", "MIN_DFS", "RidgeBaseline", "fit_baseline", "row_text"]


def row_text(row: Any) -> str:
    """The prompt text of a ``LabelledRow`` (whole conversation, as a user would paste it)."""
    return str(row.request.prompt_text())


def _vectorizer(min_df: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        ngram_range=(1, 2), min_df=min_df, sublinear_tf=True, max_features=200_000
    )


def _fit_column(x: Any, y: FloatArray, alpha: float) -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha).fit(x, y)


@dataclass
class RidgeBaseline:
    vectorizer: Any
    heads: list[Any]  # one fitted Ridge per model (None: no rows, predicts the mean)
    means: FloatArray  # fallback per model
    alphas: list[float]
    min_df: int

    def predict(self, texts: Sequence[str]) -> FloatArray:
        x = self.vectorizer.transform(list(texts))
        out = np.tile(self.means, (len(texts), 1))
        for j, head in enumerate(self.heads):
            if head is not None:
                out[:, j] = head.predict(x)
        return np.clip(out, 0.0, 1.0)

    def describe(self) -> dict[str, Any]:
        return {"min_df": self.min_df, "alpha_per_model": self.alphas}


def _fit(
    texts: Sequence[str], scores: FloatArray, mask: FloatArray, min_df: int, alphas: Sequence[float]
) -> RidgeBaseline:
    vec = _vectorizer(min_df)
    x = vec.fit_transform(list(texts))
    heads: list[Any] = []
    means = np.zeros(scores.shape[1])
    for j in range(scores.shape[1]):
        have = mask[:, j] > 0
        means[j] = float(scores[have, j].mean()) if have.any() else 0.0
        heads.append(_fit_column(x[have], scores[have, j], alphas[j]) if have.sum() >= 2 else None)
    return RidgeBaseline(vec, heads, means, list(alphas), min_df)


def fit_baseline(
    texts: Sequence[str],
    scores: FloatArray,
    mask: FloatArray,
    *,
    seed: int = 0,
    alphas: Sequence[float] = ALPHAS,
    min_dfs: Sequence[int] = MIN_DFS,
) -> RidgeBaseline:
    """Tune (min_df, alpha per model) on an inner split of these rows, refit on all of them."""
    n, m = scores.shape
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    cut = max(1, round(n * (1 - VALIDATION_SHARE)))
    tr, va = order[:cut], order[cut:]
    best: tuple[float, int, list[float]] | None = None
    for min_df in min_dfs:
        vec = _vectorizer(min_df)
        try:
            xtr = vec.fit_transform([texts[i] for i in tr])
        except ValueError:  # every gram below min_df on a tiny split
            continue
        xva = vec.transform([texts[i] for i in va])
        picked: list[float] = []
        total = 0.0
        for j in range(m):
            have_tr = mask[tr, j] > 0
            have_va = mask[va, j] > 0
            if have_tr.sum() < 2 or not have_va.any():
                picked.append(alphas[len(alphas) // 2])
                continue
            errs = []
            for alpha in alphas:
                head = _fit_column(xtr[have_tr], scores[tr][have_tr, j], alpha)
                pred = np.clip(head.predict(xva[have_va]), 0.0, 1.0)
                errs.append(float(np.mean((pred - scores[va][have_va, j]) ** 2)))
            k = int(np.argmin(errs))
            picked.append(alphas[k])
            total += errs[k]
        if best is None or total < best[0]:
            best = (total, min_df, picked)
    if best is None:
        best = (0.0, 1, [alphas[len(alphas) // 2]] * m)
    return _fit(texts, scores, mask, best[1], best[2])
