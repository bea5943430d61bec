"""Predictors: prompt features in, predicted quality per candidate model out.

* ``DefaultPredictor`` predicts one number per prompt, its *difficulty* (the probability a strong
  model is needed), and maps it through each model's ability, so it serves models it has never
  seen: ``quality = 1 − (1 − ability) · 2·difficulty`` (clipped to [0, 1]). An easy prompt
  (difficulty → 0) is answered well by every model, so the cheapest wins; on a hard one
  (difficulty 0.5 and up) the predicted quality approaches and then falls below the model's
  ability, so quality gaps between models widen and the tolerance keeps the stronger model.
* ``TrainedPredictor`` predicts each model's quality with its own head (shared difficulty plus
  per-model weights, ``quality_train``), learned from labelled data
  (``gearshift train``); it only serves the models it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from gearshift.errors import ConfigError
from gearshift.routing.features import DENSE_NAMES, Features
from gearshift.routing.profiles import ModelProfile
from gearshift.routing.textmodel import TextModel

if TYPE_CHECKING:
    from gearshift.routing.irt_predictor import IrtPredictor

__all__ = [
    "DEFAULT_MODEL_FILE",
    "DefaultPredictor",
    "Predictor",
    "TrainedPredictor",
    "default_predictor",
    "load_predictor",
]

DEFAULT_MODEL_FILE = "default_router.npz"
ROUTER_FILE = "router.npz"
FloatArray = npt.NDArray[np.float64]


class Predictor(Protocol):
    """The routing seam: difficulty and per-model quality for a prompt."""

    description: str

    def predict(
        self, features: Features, models: Sequence[ModelProfile]
    ) -> tuple[float, list[float]]:
        """(difficulty, quality of each model in ``models`` order)."""
        ...

    def predict_many(
        self, batch: Sequence[Features], models: Sequence[ModelProfile]
    ) -> tuple[FloatArray, FloatArray]:
        """(N,) difficulties and (N, M) qualities, for offline scoring."""
        ...

    def check_models(self, names: Sequence[str]) -> None:
        """Raise ``ConfigError`` if this predictor cannot serve these models."""
        ...


def ability_quality(difficulty: float, ability: float) -> float:
    q = 1.0 - (1.0 - ability) * 2.0 * difficulty
    return 0.0 if q < 0.0 else (1.0 if q > 1.0 else q)


class DefaultPredictor:
    serves_any_model = True

    def __init__(self, model: TextModel, description: str = "default") -> None:
        if model.heads != ["difficulty"]:
            raise ConfigError("a default-router model must have exactly one 'difficulty' head")
        self.model = model
        self.description = description

    def difficulty(self, features: Features) -> float:
        return self.model.predict(features)[0]

    def predict(
        self, features: Features, models: Sequence[ModelProfile]
    ) -> tuple[float, list[float]]:
        d = self.model.predict(features)[0]
        return d, [ability_quality(d, m.ability) for m in models]

    def predict_many(
        self, batch: Sequence[Features], models: Sequence[ModelProfile]
    ) -> tuple[FloatArray, FloatArray]:
        d = self.model.predict_many(batch)[:, 0]
        abilities = np.asarray([m.ability for m in models], dtype=np.float64)
        q = 1.0 - (1.0 - abilities[None, :]) * 2.0 * d[:, None]
        return d, np.clip(q, 0.0, 1.0)

    def check_models(self, names: Sequence[str]) -> None:
        return None

    def quality_sources(self, models: Sequence[ModelProfile]) -> dict[str, str]:
        """Per model: its profile ability, which the difficulty is mapped through."""
        return {p.name: p.ability_description for p in models}


class TrainedPredictor:
    def __init__(self, model: TextModel, description: str) -> None:
        self.model = model
        self.description = description
        self.index = {name: i for i, name in enumerate(model.heads)}
        self.strong: str = str(model.meta.get("strong", model.heads[-1]))
        self.weak: str = str(model.meta.get("weak", model.heads[0]))

    def check_models(self, names: Sequence[str]) -> None:
        unknown = [n for n in names if n not in self.index]
        if unknown:
            raise ConfigError(
                f"trained router {self.description} has no predictions for "
                f"{', '.join(unknown)}; it knows: {', '.join(self.model.heads)}"
            )

    def quality_sources(self, models: Sequence[ModelProfile]) -> dict[str, str]:
        """Per model: its own trained head."""
        return {p.name: f"trained ({p.name})" for p in models}

    def _difficulty(self, q: Sequence[float] | FloatArray) -> float:
        # P(strong right and weak wrong), the chance that sending the prompt to the strong model
        # is what makes the answer good (heads are treated as independent).
        qs, qw = q[self.index[self.strong]], q[self.index[self.weak]]
        return float(qs * (1.0 - qw))

    def predict(
        self, features: Features, models: Sequence[ModelProfile]
    ) -> tuple[float, list[float]]:
        q = self.model.predict(features)
        return self._difficulty(q), [q[self.index[m.name]] for m in models]

    def predict_many(
        self, batch: Sequence[Features], models: Sequence[ModelProfile]
    ) -> tuple[FloatArray, FloatArray]:
        q = self.model.predict_many(batch)
        qs, qw = q[:, self.index[self.strong]], q[:, self.index[self.weak]]
        cols = [self.index[m.name] for m in models]
        return qs * (1.0 - qw), q[:, cols]


def _heuristic_model() -> TextModel:
    """The fallback when no trained file ships: a hand-set difficulty from structure alone."""
    weights = dict.fromkeys(DENSE_NAMES, 0.0)
    weights.update(
        log_chars_question=0.35,
        code_marks=0.3,
        latex_marks=0.4,
        math_words=0.3,
        reasoning_cues=0.35,
        constraints=0.2,
        long_output=0.25,
        list_items=0.15,
        short_output=-0.3,
        turns=0.05,
    )
    d = len(DENSE_NAMES)
    return TextModel(
        heads=["difficulty"],
        vocab={},
        token_weights=np.zeros((0, 1)),
        dense_mean=np.zeros(d),
        dense_scale=np.ones(d),
        dense_weights=np.asarray([[weights[n]] for n in DENSE_NAMES]),
        bias=np.asarray([-2.2]),
        meta={"kind": "difficulty", "source": "heuristic (no trained file)"},
    )


@lru_cache(maxsize=1)
def default_predictor() -> IrtPredictor | DefaultPredictor:
    """The bundled default router (loaded once per process): per-(prompt, model) quality."""
    from gearshift.routing.irt import QualityModel
    from gearshift.routing.irt_predictor import IrtPredictor

    path = Path(__file__).parent / "data" / DEFAULT_MODEL_FILE  # package data (pyproject)
    if path.is_file():
        return IrtPredictor(QualityModel.load(path), "default")
    return DefaultPredictor(_heuristic_model(), "default (heuristic: bundled model missing)")


def load_predictor(spec: str) -> Predictor:
    """``"default"`` or a directory written by ``gearshift train`` (or a ``.npz`` file)."""
    if spec in ("", "default"):
        return default_predictor()
    path = Path(spec)
    if path.is_dir():
        path = path / ROUTER_FILE
    if not path.is_file():
        raise ConfigError(
            f"router {spec!r} not found: give 'default' or a directory written by "
            "'gearshift train --out DIR'"
        )
    if _is_quality_model(path):
        from gearshift.routing.irt import QualityModel
        from gearshift.routing.irt_predictor import IrtPredictor

        return IrtPredictor(QualityModel.load(path), str(spec))
    model = TextModel.load(path)
    if model.meta.get("kind") == "difficulty":
        return DefaultPredictor(model, str(spec))
    return TrainedPredictor(model, str(spec))


def _is_quality_model(path: Path) -> bool:
    """A file ``build_default`` wrote (the default router's format), not a ``TextModel``."""
    import json

    try:
        with np.load(path, allow_pickle=False) as data:
            return "loadings" in data.files and json.loads(str(data["meta"])).get("format") == (
                "irt-1"
            )
    except (OSError, ValueError, KeyError):
        return False
