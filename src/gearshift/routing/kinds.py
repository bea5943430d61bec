"""Task kinds: what a prompt asks for (code, maths, a summary, a translation, small talk, ...).

The need for a strong model depends mostly on the kind of task, so the kind is both a routing
feature and the label explanations, reports and the audit group by. ``KINDS`` is the taxonomy
(defined in docs/routing.md, "Task kinds"):

* ``code`` — write, fix, explain, review or convert code, queries, shell, configuration;
* ``math`` — computation, word problems, algebra, proofs, statistics;
* ``reasoning`` — multi-step logic, puzzles, planning, trade-off analysis, causal arguments;
* ``extraction`` — pull fields, entities or answers out of a text the prompt supplies;
* ``summarisation`` — condense a supplied text (notes, a contract, a thread, an article);
* ``writing`` — compose or rewrite prose: emails, posts, stories, copy, proofreading;
* ``roleplay`` — play a character or persona, interactive fiction, simulations;
* ``chat`` — greetings, small talk and help-desk / FAQ requests;
* ``translation`` — translate or localise between languages;
* ``classification`` — put a supplied text into given labels (sentiment, intent, spam, priority);
* ``knowledge`` — factual questions and explanations (including exam questions).

The detector is a multinomial logistic regression over the prompt's distinct word n-grams (the
``Features.tokens`` that ``features.py`` already computes, so no second tokenisation) and a few of
its structural numbers (code marks, maths marks, numbers, answer options, length, non-ASCII
share), trained by ``build_kinds.py`` from the labelled kind set (``make kinds``). Scoring is a
set intersection, one (hits × kinds) sum, a small dot product and a softmax: numpy only.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gearshift.errors import ConfigError

__all__ = [
    "KINDS",
    "KindModel",
    "detect_kind",
    "kind_model",
    "kind_probabilities",
]

KINDS: tuple[str, ...] = (
    "code",
    "math",
    "reasoning",
    "extraction",
    "summarisation",
    "writing",
    "roleplay",
    "chat",
    "translation",
    "classification",
    "knowledge",
)
FORMAT_VERSION = 1
MODEL_FILE = "kinds.npz"
FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class KindModel:
    """Linear scores per kind: ``bias + Σ token_weights[gram] + cues · cue_weights``."""

    kinds: tuple[str, ...]
    vocab: dict[str, int]
    # (V, K); as stored (float16) when loaded: a quarter of the memory (and of the cache lines
    # one decision's gather touches) of float64, summed in float64, every value exact
    token_weights: npt.NDArray[np.floating[Any]]
    cue_names: tuple[str, ...]  # names in features.DENSE_NAMES, read from Features.dense
    cue_weights: FloatArray  # (C, K), the standardisation already folded in
    bias: FloatArray  # (K,)
    meta: dict[str, object]
    _cue_index: tuple[int, ...] | None = None
    _cues: operator.itemgetter[Any] | None = None

    def bind(self, dense_names: Sequence[str]) -> tuple[int, ...]:
        """Where each cue sits in a ``Features.dense`` list laid out as ``dense_names``."""
        if self._cue_index is None:
            missing = [n for n in self.cue_names if n not in dense_names]
            if missing:
                raise ConfigError(
                    f"kind model reads features {missing} that features.py no longer computes; "
                    "rebuild it with 'make kinds'"
                )
            self._cue_index = tuple(dense_names.index(n) for n in self.cue_names)
        return self._cue_index

    def probabilities(
        self, tokens: set[str], dense: Sequence[float], dense_names: Sequence[str]
    ) -> FloatArray:
        """Probability of each kind (order of ``self.kinds``) for one prompt's features."""
        return self.best_and_probabilities(tokens, dense, dense_names)[1]

    def best_and_probabilities(
        self, tokens: set[str], dense: Sequence[float], dense_names: Sequence[str]
    ) -> tuple[int, FloatArray]:
        """The most likely kind's index (the first on a tie, like ``argmax``) and every kind's
        probability."""
        vocab = self.vocab
        cues = self._cues
        if cues is None:
            cues = self._cues = operator.itemgetter(*self.bind(dense_names))
        z = np.array(cues(dense)) @ self.cue_weights
        z += self.bias
        hits = list(map(vocab.__getitem__, vocab.keys() & tokens))  # C-speed intersection
        if hits:
            # take: 3x fancy indexing; the ufunc's reduce: no ndarray.sum Python wrapper
            z += np.add.reduce(self.token_weights.take(hits, 0), 0, dtype=np.float64)
        # The softmax of eleven numbers in plain floats: numpy's max, exp and sum cost ~1 µs
        # each here (call overhead), the Python ones a fraction of that.
        scores = z.tolist()
        top = max(scores)
        exp = math.exp
        weights = [exp(v - top) for v in scores]
        total = sum(weights)
        probs = [w / total for w in weights]
        return probs.index(max(probs)), np.array(probs)

    def save(self, path: str | Path) -> None:
        words = sorted(self.vocab, key=self.vocab.__getitem__)
        meta = dict(self.meta)
        meta.update(
            format_version=FORMAT_VERSION, kinds=list(self.kinds), cue_names=list(self.cue_names)
        )
        with open(path, "wb") as fh:  # numpy >= 2 writes fixed zip timestamps: byte-reproducible
            np.savez_compressed(
                fh,
                vocab=np.asarray(words, dtype=np.str_),
                # float16 keeps weights to ~0.1% and halves the file
                token_weights=self.token_weights.astype(np.float16),
                cue_weights=self.cue_weights,
                bias=self.bias,
                meta=np.asarray(json.dumps(meta, sort_keys=True)),
            )

    @classmethod
    def load(cls, path: str | Path) -> KindModel:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                words = data["vocab"].tolist()
                model = cls(
                    kinds=tuple(meta["kinds"]),
                    vocab={w: i for i, w in enumerate(words)},
                    token_weights=data["token_weights"],
                    cue_names=tuple(meta["cue_names"]),
                    cue_weights=data["cue_weights"].astype(np.float64),
                    bias=data["bias"].astype(np.float64),
                    meta=meta,
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot load kind model {path}: {exc}") from None
        k = len(model.kinds)
        if (
            meta.get("format_version") != FORMAT_VERSION
            or model.token_weights.shape != (len(model.vocab), k)
            or model.cue_weights.shape != (len(model.cue_names), k)
            or model.bias.shape != (k,)
        ):
            raise ConfigError(f"kind model {path} is not a format-{FORMAT_VERSION} kind model")
        return model


@cache
def kind_model() -> KindModel:
    """The bundled kind model, loaded once on first use (a few milliseconds)."""
    with resources.as_file(resources.files("gearshift.routing") / "data" / MODEL_FILE) as path:
        model = KindModel.load(path)
    if model.kinds != KINDS:
        raise ConfigError(f"bundled kind model has kinds {model.kinds}; expected {KINDS}")
    return model


def kind_probabilities(text: str) -> FloatArray:
    """Probability of each of ``KINDS`` for a prompt given as its user text."""
    # features.py scores the kind while it extracts a request's features; importing it here,
    # not at the top, keeps that dependency one-way.
    from gearshift.routing.features import extract_text

    return np.asarray(extract_text(text).kind_probs, dtype=np.float64)


def detect_kind(text: str) -> str:
    """The most likely of ``KINDS`` for a prompt given as its user text."""
    from gearshift.routing.features import extract_text

    return extract_text(text).kind
