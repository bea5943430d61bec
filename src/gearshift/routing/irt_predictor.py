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
from gearshift.routing.features import Features
from gearshift.routing.irt import QualityModel, sigmoid
from gearshift.routing.profiles import ModelProfile

__all__ = ["REFERENCE_ABILITY", "IrtPredictor"]

FloatArray = npt.NDArray[np.float64]
REFERENCE_ABILITY = 0.6  # a mid-range model: difficulty = its predicted chance of a poor answer
_CACHE_LIMIT = 256


class IrtPredictor:
    serves_any_model = True

    def __init__(self, model: QualityModel, description: str = "default") -> None:
        self.model = model
        self.description = description
        self._params: dict[tuple[tuple[str, float], ...], FloatArray] = {}
        # the last models' offsets (with the reference model's, last) and loadings
        self._last: tuple[Sequence[ModelProfile], list[float], FloatArray] | None = None
        self._reference = model.params_for_ability(REFERENCE_ABILITY)

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
            out[p.name] = (
                f"trained ({trained})"
                if trained
                else f"profile ({p.ability_source} ability {p.ability:.2f})"
            )
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

    def predict(
        self, features: Features, models: Sequence[ModelProfile]
    ) -> tuple[float, list[float]]:
        last = self._last  # one reference, read once: safe if threads share the predictor
        if last is not None and last[0] is models:
            offsets, loadings = last[1], last[2]  # a router passes the same tuple every time
        else:
            params = self.parameters(models)
            offsets, loadings = params[:, 0].tolist(), np.ascontiguousarray(params[:, 1:])
            self._last = (models, offsets, loadings)
        h = self.model.embed(features)
        # a handful of models: the sigmoid in plain floats beats four numpy calls
        exp = math.exp
        q = [
            1.0 / (1.0 + exp(-min(max(a + z, -30.0), 30.0)))
            for a, z in zip(offsets, (loadings @ h).tolist(), strict=True)
        ]
        return 1.0 - q[-1], q[:-1]

    def predict_many(
        self, batch: Sequence[Features], models: Sequence[ModelProfile]
    ) -> tuple[FloatArray, FloatArray]:
        params = self.parameters(models)
        h = self.model.embed_many(batch)
        q = sigmoid(params[:, 0] + h @ params[:, 1:].T)
        return 1.0 - q[:, -1], q[:, :-1]

    def difficulty(self, features: Features) -> float:
        h = self.model.embed(features)
        z = self._reference[0] + float(self._reference[1:] @ h)
        return 1.0 - 1.0 / (1.0 + math.exp(-min(max(z, -30.0), 30.0)))

    def check_models(self, names: Sequence[str]) -> None:
        return None
