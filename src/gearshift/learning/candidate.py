"""A candidate router learnt from traffic labels: the current predictor plus a per-model residual.

The bundled router already encodes the public labelled data; a team's traffic labels say where it
is wrong *for this team*. So a candidate keeps the base predictor and adds, for each model the
labels name, a ridge-regularised correction over the prompt's n-grams and kind:

    q'(m, x) = clip(q_base(m, x) + w_m . phi(x), 0, 1)

Ridge shrinks every correction toward zero, i.e. toward the bundled router: with few labels the
candidate stays where it was, and it moves only where the traffic agrees with itself. That is the
mix of "bundled data plus traffic labels" (docs/learning.md): ``l2`` sets how many consistent
labels it takes to move a prediction, ``traffic_weight`` / ``feedback_weight`` how much one label
counts. There is no intercept: a model that fails on one kind of prompt must not be marked down
on every prompt.

A candidate is one JSON document, so it can live in the ledger database (``gearshift promote``)
and reach every replica without a shared file system.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gearshift.errors import ConfigError, NotEnoughLabels
from gearshift.routing.features import Features
from gearshift.routing.predictors import Predictor
from gearshift.routing.profiles import ModelProfile

__all__ = ["Candidate", "ResidualPredictor", "train_candidate"]

FloatArray = npt.NDArray[np.float64]
FORMAT = "gearshift-candidate/1"
# A kind column is scaled down: kinds are coarse, and a kind-wide correction should need more
# evidence than the n-grams that single out the prompts a model actually fails on.
KIND_SCALE = 0.5


@dataclass(slots=True)
class Candidate:
    base: str  # predictor spec of the router it was trained for ("default" or a DIR)
    router: str
    models: list[str]
    vocab: dict[str, int]
    kinds: list[str]
    weights: FloatArray  # (len(vocab) + len(kinds), len(models))
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "base": self.base,
                "router": self.router,
                "models": self.models,
                "vocab": sorted(self.vocab, key=self.vocab.__getitem__),
                "kinds": self.kinds,
                "weights": [[round(float(v), 6) for v in row] for row in self.weights],
                "meta": self.meta,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Candidate:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not a gearshift candidate router (bad JSON: {exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"not a gearshift candidate router (expected format {FORMAT})")
        vocab = {str(t): i for i, t in enumerate(data["vocab"])}
        kinds = [str(k) for k in data["kinds"]]
        models = [str(m) for m in data["models"]]
        weights = np.asarray(data["weights"], dtype=np.float64).reshape(
            len(vocab) + len(kinds), len(models)
        )
        return cls(
            str(data["base"]), str(data["router"]), models, vocab, kinds, weights, data["meta"]
        )

    def rows(self, features: Features) -> list[int]:
        idx = [self.vocab[t] for t in features.tokens if t in self.vocab]
        if features.kind in self.kinds:
            idx.append(len(self.vocab) + self.kinds.index(features.kind))
        return idx

    def correction(self, features: Features) -> FloatArray:
        """(len(models),) correction for one prompt."""
        idx = self.rows(features)
        if not idx:
            return np.zeros(len(self.models))
        rows = self.weights[idx]
        kinds_at = len(self.vocab)
        scale = np.asarray([KIND_SCALE if i >= kinds_at else 1.0 for i in idx])
        out: FloatArray = scale @ rows
        return out


class ResidualPredictor:
    """``base`` plus a candidate's per-model corrections (other models: the base alone)."""

    def __init__(self, base: Predictor, candidate: Candidate, description: str) -> None:
        self.base = base
        self.candidate = candidate
        self.description = description
        self._column = {name: i for i, name in enumerate(candidate.models)}

    def check_models(self, names: Sequence[str]) -> None:
        self.base.check_models(names)

    def _adjust(self, q: list[float], models: Sequence[ModelProfile], corr: FloatArray) -> None:
        for j, profile in enumerate(models):
            col = self._column.get(profile.name)
            if col is not None:
                v = q[j] + float(corr[col])
                q[j] = 0.0 if v < 0.0 else (1.0 if v > 1.0 else v)

    def predict(
        self, features: Features, models: Sequence[ModelProfile]
    ) -> tuple[float, list[float]]:
        difficulty, qualities = self.base.predict(features, models)
        q = list(qualities)
        self._adjust(q, models, self.candidate.correction(features))
        return difficulty, q

    def predict_many(
        self, batch: Sequence[Features], models: Sequence[ModelProfile]
    ) -> tuple[FloatArray, FloatArray]:
        d, q = self.base.predict_many(batch, models)
        out = np.array(q, dtype=np.float64, copy=True)
        for i, features in enumerate(batch):
            row = list(out[i])
            self._adjust(row, models, self.candidate.correction(features))
            out[i] = row
        return d, out


def train_candidate(
    rows: Sequence[dict[str, Any]],
    features: Sequence[Features],
    base_q: Sequence[dict[str, float]],
    *,
    base: str,
    router: str,
    l2: float = 1.0,
    max_vocab: int = 5000,
    min_count: int = 2,
    traffic_weight: float = 1.0,
    feedback_weight: float = 1.0,
) -> Candidate:
    """Fit the residuals. ``rows`` are labelled rows (``scores`` per model, ``source``),
    ``features`` their features, ``base_q`` the base predictor's quality for each row's models."""
    from scipy import sparse
    from sklearn.linear_model import Ridge

    if not rows:
        raise NotEnoughLabels(
            "no labels to train on: is learning on and has it judged any samples?"
        )
    counts: Counter[str] = Counter()
    for f in features:
        counts.update(f.tokens)
    grams = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    vocab = {t: i for i, t in enumerate(grams[:max_vocab])}
    kinds = sorted({f.kind for f in features if f.kind})
    cand = Candidate(base, router, [], vocab, kinds, np.zeros((len(vocab) + len(kinds), 0)))
    models = sorted({m for r in rows for m in r["scores"]})
    columns = []
    for model in models:
        at = [i for i, r in enumerate(rows) if model in r["scores"] and model in base_q[i]]
        if len(at) < 2:
            continue
        data: list[float] = []
        ind: list[int] = []
        ptr = [0]
        for i in at:
            idx = cand.rows(features[i])
            ind.extend(idx)
            data.extend(KIND_SCALE if j >= len(vocab) else 1.0 for j in idx)
            ptr.append(len(ind))
        x = sparse.csr_matrix(
            (np.asarray(data), np.asarray(ind, dtype=np.int64), np.asarray(ptr)),
            shape=(len(at), len(vocab) + len(kinds)),
        )
        y = np.asarray([rows[i]["scores"][model] - base_q[i][model] for i in at])
        w = np.asarray(
            [feedback_weight if rows[i].get("source") == "feedback" else traffic_weight for i in at]
        )
        fit = Ridge(alpha=l2, fit_intercept=False, solver="auto").fit(x, y, sample_weight=w)
        columns.append((model, np.asarray(fit.coef_, dtype=np.float64)))
    if not columns:
        raise NotEnoughLabels(
            f"the {len(rows)} label(s) to train on name no model often enough to learn from "
            "(need >= 2 each)"
        )
    cand.models = [m for m, _ in columns]
    cand.weights = np.stack([c for _, c in columns], axis=1)
    cand.meta = {"labels": len(rows), "l2": l2, "vocab": len(vocab)}
    return cand
