"""The default router's predictor: per-(prompt, model) quality from the low-rank model (``irt.py``).

A configured model the training data names (``gpt-4-1106-preview``, ``Mixtral-8x7B-Instruct``,
``claude-3-haiku-20240307``…, matched by ``corpus.canonical_model`` of its name or upstream model)
uses its trained offset and loadings; any other model gets them from its *profile* ability
(config ``ability``, else the catalogue, else config ``tier``; see ``profiles.py``).
``quality_sources`` says which, per model. Difficulty, reported in decisions and ``gearshift
score``, is ``1 − q`` of a reference model of ability ``REFERENCE_ABILITY``: a continuous score,
so distinct prompts keep distinct values (no calibration plateaus).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gearshift.routing.corpus import canonical_model
from gearshift.routing.encoder import default_encoder
from gearshift.routing.features import Features
from gearshift.routing.irt import UNSEEN_SPREAD, QualityModel, sigmoid
from gearshift.routing.profiles import ModelProfile

__all__ = ["REFERENCE_ABILITY", "IrtPredictor"]

FloatArray = npt.NDArray[np.float64]
REFERENCE_ABILITY = 0.6  # a mid-range model: difficulty = its predicted chance of a poor answer
_CACHE_LIMIT = 256
# per model set: the heads' weights and biases it uses (the mean head last), each model's column
# among them (-1: from the mean head) and its unseen spread UNSEEN_SPREAD·(1 − ability)
_Heads = tuple[FloatArray, list[float], list[int], list[float]] | None


class IrtPredictor:
    serves_any_model = True

    def __init__(self, model: QualityModel, description: str = "default") -> None:
        self.model = model
        self.description = description
        self._params: dict[tuple[tuple[str, float], ...], FloatArray] = {}
        # the last models' offsets (with the reference model's, last), loadings and heads
        self._last: tuple[Sequence[ModelProfile], list[float], FloatArray, _Heads] | None = None
        self._reference = model.params_for_ability(REFERENCE_ABILITY)
        self._reference_heads = self._heads_of([-1], [REFERENCE_ABILITY])
        if model.has_heads:  # load the encoder table now (~45 ms), not on the first request
            default_encoder()

    def _trained_name(self, profile: ModelProfile) -> str | None:
        for name in (profile.name, profile.upstream):
            key = canonical_model(name) if name else ""
            if key in self.model.index:
                return key
        return None

    def quality_sources(self, models: Sequence[ModelProfile]) -> dict[str, str]:
        """Per model: 'trained (<name>)' or 'profile (<ability source> ability <a>)'."""
        out = {}
        for p in models:
            trained = self._trained_name(p)
            out[p.name] = f"trained ({trained})" if trained else p.ability_description
        return out

    def parameters(self, models: Sequence[ModelProfile]) -> FloatArray:
        """(M, K + 2): each model's offset and loadings, then the reference model's (last row)."""
        key = tuple((p.name + "\0" + p.upstream, p.ability) for p in models)
        cached = self._params.get(key)
        if cached is not None:
            return cached
        rows = []
        for p in models:
            trained = self._trained_name(p)
            rows.append(self.model.params(trained or "", p.ability)[0])
        rows.append(self._reference)
        params = np.stack(rows)
        if len(self._params) >= _CACHE_LIMIT:
            self._params.clear()
        self._params[key] = params
        return params

    def _rows_abilities(self, models: Sequence[ModelProfile]) -> tuple[list[int], list[float]]:
        """Each model's encoder head (-1: unseen) and ability, then the reference model's."""
        rows = [self.model.head_row(self._trained_name(p) or "") for p in models]
        return [*rows, -1], [*(p.ability for p in models), REFERENCE_ABILITY]

    def _heads_of(self, rows: list[int], abilities: list[float]) -> _Heads:
        """What ``_blend`` needs for these models, or None when the model has no heads."""
        if not self.model.has_heads:
            return None
        m = self.model
        used, cols = m.head_columns(rows)
        weights = np.ascontiguousarray(m.head_weights[used])
        spread = [(1.0 - a) * UNSEEN_SPREAD for a in abilities]
        return weights, m.head_bias[used].tolist(), cols, spread

    def _blend(self, q: list[float], features: Features, heads: _Heads) -> list[float]:
        """q blended with the encoder heads, in plain floats (a handful of models)."""
        if heads is None:
            return q
        weights, bias, cols, spread = heads
        e = default_encoder().embed_words(features.words)
        raw = [min(max(z + b, 0.0), 1.0) for z, b in zip((weights @ e).tolist(), bias, strict=True)]
        miss = 1.0 - raw[-1]
        share = self.model.share_for(len(features.words))
        keep = 1.0 - share
        return [
            keep * qi + share * (raw[c] if c >= 0 else min(max(1.0 - s * miss, 0.0), 1.0))
            for qi, c, s in zip(q, cols, spread, strict=True)
        ]

    def predict(
        self, features: Features, models: Sequence[ModelProfile]
    ) -> tuple[float, list[float]]:
        last = self._last  # one reference, read once: safe if threads share the predictor
        if last is not None and last[0] is models:
            offsets, loadings, heads = last[1], last[2], last[3]  # a router passes the same tuple
        else:
            params = self.parameters(models)
            offsets, loadings = params[:, 0].tolist(), np.ascontiguousarray(params[:, 1:])
            heads = self._heads_of(*self._rows_abilities(models))
            self._last = (models, offsets, loadings, heads)
        h = self.model.embed(features)
        # a handful of models: the sigmoid in plain floats beats four numpy calls
        exp = math.exp
        q = [
            1.0 / (1.0 + exp(-min(max(a + z, -30.0), 30.0)))
            for a, z in zip(offsets, (loadings @ h).tolist(), strict=True)
        ]
        q = self._blend(q, features, heads)
        return 1.0 - q[-1], q[:-1]

    def predict_many(
        self, batch: Sequence[Features], models: Sequence[ModelProfile]
    ) -> tuple[FloatArray, FloatArray]:
        params = self.parameters(models)
        h = self.model.embed_many(batch)
        q = sigmoid(params[:, 0] + h @ params[:, 1:].T)
        if self.model.has_heads:
            rows, abilities = self._rows_abilities(models)
            e = self.model.prompt_vectors(batch)
            q = self.model.blend(q, e, rows, abilities, self.model.shares(batch))
        return 1.0 - q[:, -1], q[:, :-1]

    def difficulty(self, features: Features) -> float:
        h = self.model.embed(features)
        z = self._reference[0] + float(self._reference[1:] @ h)
        q = 1.0 / (1.0 + math.exp(-min(max(z, -30.0), 30.0)))
        return 1.0 - self._blend([q], features, self._reference_heads)[0]

    def check_models(self, names: Sequence[str]) -> None:
        return None
