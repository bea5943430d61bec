"""The plain baseline every router figure is set beside: tf-idf word 1-2-grams + ridge per model.

    from baseline import TfidfRidge
    base = TfidfRidge(seed=0).fit(texts, scores, weights)        # scores: [{model: 0..1}, ...]
    q = base.predict(test_texts, ["gpt-4-1106-preview", "x"], abilities={"x": 0.7})  # (N, M)

One ridge regressor per model seen in training, on the prompt's tf-idf vector (word unigrams and
bigrams, sublinear tf, min_df 2), predicting the model's score. Models no training row names get
a *difficulty fallback*: a ridge on each row's mean score over its models, mapped through the
model's ability as the first default router did, ``q = 1 − (1 − ability) · 2 · (1 − mean)``.
Tuned fairly: the ridge strength is chosen from a small grid on an inner validation split (20% of
the training rows, seeded) by mean squared error over all observed (prompt, model) pairs, then
refitted on all training rows. Rows carry weights (the bench caps each source's total weight, as
the router's training does). scikit-learn is fine here: this is a benchmark, not the serving path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0)
DIFFICULTY = "(row mean)"


class TfidfRidge:
    def __init__(self, seed: int = 0, alphas: Sequence[float] = ALPHAS) -> None:
        self.seed = seed
        self.alphas = tuple(alphas)
        self.alpha = float("nan")
        self.vectorizer: Any = None
        self.heads: dict[str, Any] = {}

    @staticmethod
    def _targets(scores: Sequence[Mapping[str, float]]) -> dict[str, tuple[list[int], FloatArray]]:
        models = sorted({m for s in scores for m in s})
        out: dict[str, tuple[list[int], FloatArray]] = {}
        for m in models:
            idx = [i for i, s in enumerate(scores) if m in s]
            out[m] = (idx, np.asarray([scores[i][m] for i in idx]))
        idx = [i for i, s in enumerate(scores) if s]
        out[DIFFICULTY] = (idx, np.asarray([float(np.mean(list(scores[i].values()))) for i in idx]))
        return out

    def _fit_heads(
        self, x: Any, scores: Sequence[Mapping[str, float]], weights: FloatArray, alpha: float
    ) -> dict[str, Any]:
        from sklearn.linear_model import Ridge

        heads = {}
        for m, (idx, y) in self._targets(scores).items():
            heads[m] = Ridge(alpha=alpha).fit(x[idx], y, sample_weight=weights[idx])
        return heads

    def fit(
        self, texts: Sequence[str], scores: Sequence[Mapping[str, float]], weights: FloatArray
    ) -> TfidfRidge:
        from sklearn.feature_extraction.text import TfidfVectorizer

        rng = np.random.default_rng(self.seed)
        n = len(texts)
        valid = np.zeros(n, dtype=bool)
        valid[rng.permutation(n)[: n // 5]] = True
        inner = np.flatnonzero(~valid)
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000)
        x_in = vec.fit_transform([texts[i] for i in inner])
        x_val = vec.transform([texts[i] for i in np.flatnonzero(valid)])
        val_scores = [scores[i] for i in np.flatnonzero(valid)]
        best = (float("inf"), self.alphas[0])
        for alpha in self.alphas:
            heads = self._fit_heads(x_in, [scores[i] for i in inner], weights[inner], alpha)
            err, count = 0.0, 0
            for m, (idx, y) in self._targets(val_scores).items():
                if m == DIFFICULTY or m not in heads or not idx:
                    continue
                err += float(((heads[m].predict(x_val[idx]) - y) ** 2).sum())
                count += len(idx)
            best = min(best, (err / max(count, 1), alpha))
        self.alpha = best[1]
        self.vectorizer = TfidfVectorizer(
            ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000
        )
        x = self.vectorizer.fit_transform(texts)
        self.heads = self._fit_heads(x, scores, weights, self.alpha)
        return self

    def predict(
        self, texts: Sequence[str], models: Sequence[str], abilities: Mapping[str, float]
    ) -> FloatArray:
        x = self.vectorizer.transform(texts)
        mean = np.clip(self.heads[DIFFICULTY].predict(x), 0.0, 1.0)
        cols = []
        for m in models:
            if m in self.heads:
                cols.append(self.heads[m].predict(x))
            else:
                ability = abilities.get(m, 0.6)
                cols.append(np.clip(1.0 - (1.0 - ability) * 2.0 * (1.0 - mean), 0.0, 1.0))
        return np.stack(cols, axis=1)
