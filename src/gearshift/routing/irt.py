"""The default router's per-(prompt, model) quality model: a low-rank item-response model.

A prompt x is embedded into a few numbers ``h(x) = W·φ(x) + c`` (φ: the prompt's distinct n-grams,
hashed buckets for grams outside the vocabulary, its standardised structural features
(``features.py``) and its task-kind probabilities (``kinds.py``); ``rank`` dimensions). Each
model m has an offset ``a_m`` and loadings ``θ_m``, and its predicted quality is

    q(m, x) = sigmoid(a_m + θ_m · h(x) + u_m · kinds(x))

(``u_m``: the model's own weights on the prompt's task-kind probabilities, stored as extra
loadings on ``own_inputs`` fixed coordinates of the embedding: a cheap model may be fine at chat
and poor at code) — a two-parameter item-response model with a learned prompt side: one
direction of h is roughly "how hard", others say *which kind* of hard (a model good at maths and
weak at open writing gets loadings that say so). Scoring is a set intersection, a (hits × RANK)
sum and one small matrix product: numpy only, no framework.

The final quality blends that with per-model *encoder heads*: ridge regressions of each model's
scores on the prompt's static sentence embedding (``encoder.py``), which reads what a prompt
means rather than which words it uses — ``(1 − s) · q_irt + s · clip(w_m · e(x) + b_m, 0, 1)``
with ``s = head_share`` (0.5; less for prompts under ``head_full_words`` words).

Models the training data never names get ``(a, θ)`` from their *profile*: a linear map from
ability (catalogue, config ``ability`` or ``tier``) to offsets and loadings, fitted over the
trained models whose ability the catalogue knows (``profile_coef``). ``ModelProfile.quality_source``
records which one served each model. Their head half comes from the mean head and the ability
(``UNSEEN_SPREAD``).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zlib import crc32

import numpy as np
import numpy.typing as npt

from gearshift.errors import ConfigError
from gearshift.routing.encoder import DIMENSIONS, default_encoder
from gearshift.routing.features import DENSE_NAMES, Features
from gearshift.routing.kinds import KINDS
from gearshift.routing.numeric import sigmoid

__all__ = [
    "BUCKETS",
    "FORMAT",
    "INPUT_NAMES",
    "QualityModel",
    "bucket_of",
    "dense_inputs",
    "sigmoid",
]

FORMAT = "irt-1"
# Grams outside the vocabulary fall into hashed buckets (crc32, stable across processes), each
# with a learnt weight: rare words still move the score a little, so two prompts that differ only
# in them (a name, a ticket number) are not tied.
BUCKETS = 4096
# The prompt's structural numbers, then its task-kind probabilities (``kinds.py``)
INPUT_NAMES: tuple[str, ...] = (*DENSE_NAMES, *(f"kind:{k}" for k in KINDS))


# A model no head knows (unseen in training) fails ``UNSEEN_SPREAD · (1 − ability)`` times as
# often as the mean head predicts for the prompt's average model: q = 1 − 1.5(1 − a)(1 − mean).
# Leave-one-source-out (3 seeds), 1.5 against 2: the same mean pair APGR (0.5696), MMLU-Pro
# reaching 95% of the best model's quality at 73% of its cost instead of 79%.
UNSEEN_SPREAD = 1.5

# Standardised structural numbers are clipped to this many standard deviations: a prompt unlike
# every training prompt (a chat greeting among exam questions) must not extrapolate a linear
# weight to an absurd score.
DENSE_CLIP = 4.0


def dense_inputs(features: Features) -> list[float]:
    return [*features.dense, *features.kind_probs.tolist()]


FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class QualityModel:
    vocab: dict[str, int]
    token_weights: npt.NDArray[np.float32]  # (V, K)
    bucket_weights: npt.NDArray[np.float32]  # (BUCKETS, K): grams outside the vocabulary
    dense_mean: FloatArray  # (D,)
    dense_scale: FloatArray  # (D,)
    dense_weights: FloatArray  # (D, K) on standardised, clipped inputs
    embed_bias: FloatArray  # (K,)
    models: list[str]  # canonical names of the trained models
    offsets: FloatArray  # (M,)
    loadings: FloatArray  # (M, K)
    profile_coef: FloatArray  # (2, K + 1): [offset, loadings] = coef[0] + coef[1] · ability
    meta: dict[str, Any] = field(default_factory=dict)
    # the last ``own_inputs`` standardised inputs (the kind probabilities) are appended to the
    # embedding as fixed coordinates, so each model has its own weight on them: a cheap model
    # may be fine at chat and poor at code (loadings are (M, K + own_inputs))
    own_inputs: int = 0
    # Per-model linear heads on the prompt encoder's embedding (``encoder.py``): one per trained
    # model, then one for a row's mean score over its models. A model's quality is
    # ``(1 − head_share) · q_irt + head_share · clip(w_m · e(x) + b_m, 0, 1)``: the n-grams and
    # kinds of the item-response model and the encoder's sense of what a prompt *means* fail on
    # different prompts, and their average ranked held-out sources better than either alone.
    # ``head_share`` 0 (or no heads): the item-response model alone.
    head_weights: FloatArray = field(default_factory=lambda: np.zeros((0, DIMENSIONS)))
    head_bias: FloatArray = field(default_factory=lambda: np.zeros(0))
    head_share: float = 0.0
    # ... at full weight from this many focus words on, in proportion below it: the heads were
    # fitted on prompts of tens of words, and the mean vector of one or two words ("hi") is
    # unlike any they saw (0: always full; see ``IrtOptions.head_full_words``)
    head_full_words: int = 0
    index: dict[str, int] = field(default_factory=dict)
    # Derived once for ``embed`` (see ``_fast``): every gram weight in one table, vocabulary rows
    # first, then the hashed buckets; and the standardisation's bounds.
    _weights: npt.NDArray[np.float32] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.index = {m: i for i, m in enumerate(self.models)}

    @property
    def rank(self) -> int:
        return int(self.embed_bias.shape[0])

    # ---- scoring -------------------------------------------------------------------------

    def embed(self, features: Features) -> FloatArray:
        """``h(x)`` for one prompt (the request path: ~10 µs; ``embed_many`` for batches).

        The same sums as ``embed_many``, in another order (equal to ~1e-16): the vocabulary rows
        and the distinct buckets of the other grams are gathered from one table in a single
        ``take``, and the standardisation runs in place, with ufuncs rather than ``ndarray``
        methods (whose Python wrappers cost a microsecond each).
        """
        weights = self._weights
        if weights is None:
            weights = self._weights = np.concatenate([self.token_weights, self.bucket_weights])
        vocab = self.vocab
        tokens = features.tokens
        rows = list(map(vocab.__getitem__, vocab.keys() & tokens))
        # tokens.difference(vocab) looks each gram up in the dict (a dict_keys view instead
        # would make it walk all 20,000 keys); a bucket counts once however many grams hit it.
        first_bucket = len(vocab)
        mask = BUCKETS - 1
        rows += {
            first_bucket + (crc32(g) & mask) for g in map(str.encode, tokens.difference(vocab))
        }
        x = np.array(dense_inputs(features))
        np.subtract(x, self.dense_mean, out=x)
        np.divide(x, self.dense_scale, out=x)
        np.maximum(x, -DENSE_CLIP, out=x)  # np.clip, without its Python wrapper
        np.minimum(x, DENSE_CLIP, out=x)
        h: FloatArray = x @ self.dense_weights
        h += self.embed_bias
        if rows:
            h += np.add.reduce(weights.take(rows, 0), 0, dtype=np.float64)
        if self.own_inputs:  # the kind probabilities as fixed coordinates (per-model weights)
            h = np.concatenate((h, x[len(x) - self.own_inputs :]))
        return h

    def embed_many(self, batch: Sequence[Features]) -> FloatArray:
        n = len(batch)
        out = np.tile(self.embed_bias, (n, 1))
        if n == 0:
            return out
        vocab = self.vocab
        rows: list[int] = []
        cols: list[int] = []
        b_rows: list[int] = []
        b_cols: list[int] = []
        mask = BUCKETS - 1
        for r, f in enumerate(batch):
            hits = sorted(map(vocab.__getitem__, vocab.keys() & f.tokens))
            rows.extend([r] * len(hits))
            cols.extend(hits)
            # bucket_of, inlined as in ``embed``: one Python call per gram was a tenth of a batch
            misses = sorted({crc32(g) & mask for g in map(str.encode, f.tokens.difference(vocab))})
            b_rows.extend([r] * len(misses))
            b_cols.extend(misses)
        if rows:
            np.add.at(out, np.asarray(rows), self.token_weights[np.asarray(cols)])
        if b_rows:
            np.add.at(out, np.asarray(b_rows), self.bucket_weights[np.asarray(b_cols)])
        dense = np.asarray([dense_inputs(f) for f in batch], dtype=np.float64)
        d = ((dense - self.dense_mean) / self.dense_scale).clip(-DENSE_CLIP, DENSE_CLIP)
        out += d @ self.dense_weights
        if self.own_inputs:
            out = np.concatenate([out, d[:, d.shape[1] - self.own_inputs :]], axis=1)
        return out

    def params_for_ability(self, ability: float) -> FloatArray:
        """(K + 1,) offset and loadings of a model known only by its ability."""
        out: FloatArray = self.profile_coef[0] + self.profile_coef[1] * ability
        return out

    def params(self, name: str, ability: float) -> tuple[FloatArray, str]:
        """(offset and loadings, where they came from) for a configured model."""
        i = self.index.get(name)
        if i is not None:
            return np.concatenate([[self.offsets[i]], self.loadings[i]]), "trained"
        return self.params_for_ability(ability), "profile"

    @staticmethod
    def qualities(h: FloatArray, params: FloatArray) -> FloatArray:
        """q of the item-response part for embeddings h (N, K) or (K,) and (M, K + 1) params."""
        z = params[:, 0] + h @ params[:, 1:].T
        return sigmoid(z)

    # ---- encoder heads -------------------------------------------------------------------

    @property
    def has_heads(self) -> bool:
        return self.head_share > 0.0 and len(self.head_bias) > 0

    def head_row(self, name: str) -> int:
        """The head of a trained model, or -1 (unseen: from the mean head and its ability)."""
        return self.index.get(name, -1) if self.has_heads else -1

    def share_for(self, words: int) -> float:
        """The heads' share of the quality of a prompt with this many focus words."""
        if not self.has_heads:
            return 0.0
        full = self.head_full_words
        return self.head_share if words >= full else self.head_share * words / full

    def shares(self, batch: Sequence[Features]) -> FloatArray:
        return np.asarray([self.share_for(len(f.words)) for f in batch])

    @staticmethod
    def prompt_vectors(batch: Sequence[Features]) -> FloatArray:
        """(N, D) encoder embeddings of prompts' focus words."""
        return default_encoder().embed_many_words([f.words for f in batch])

    def head_columns(self, rows: Sequence[int]) -> tuple[list[int], list[int]]:
        """The heads these models need (their own, then the mean head, last) and each model's
        column among them (-1: unseen, from the mean head)."""
        used = sorted({r for r in rows if r >= 0} | {len(self.head_bias) - 1})
        at = {r: k for k, r in enumerate(used)}
        return used, [at[r] if r >= 0 else -1 for r in rows]

    def head_qualities(
        self, e: FloatArray, rows: Sequence[int], abilities: Sequence[float]
    ) -> FloatArray:
        """(N, M) head predictions for embeddings e (N, D): a trained model's own head (row ≥ 0),
        else the mean head moved by the model's ability (``UNSEEN_SPREAD``)."""
        used, at = self.head_columns(rows)
        # einsum, not BLAS: a threaded gemm here spins a second core for a few columns
        z = np.einsum("nd,md->nm", e, self.head_weights[used])
        raw = np.clip(z + self.head_bias[used], 0.0, 1.0)
        miss = 1.0 - raw[:, -1]
        cols = [
            raw[:, c] if c >= 0 else np.clip(1.0 - UNSEEN_SPREAD * (1.0 - a) * miss, 0.0, 1.0)
            for c, a in zip(at, abilities, strict=True)
        ]
        return np.stack(cols, axis=1) if cols else np.zeros((len(e), 0))

    def blend(
        self,
        q: FloatArray,
        e: FloatArray,
        rows: Sequence[int],
        abilities: Sequence[float],
        shares: FloatArray,
    ) -> FloatArray:
        """Final (N, M) qualities from item-response qualities q (N, M), embeddings e (N, D)
        and the heads' share of each prompt (``shares``)."""
        if not self.has_heads:
            return q
        s = shares[:, None]
        out: FloatArray = (1.0 - s) * q + s * self.head_qualities(e, rows, abilities)
        return out

    # ---- persistence ---------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        words = sorted(self.vocab, key=self.vocab.__getitem__)
        meta = dict(self.meta, format=FORMAT, dense_names=list(INPUT_NAMES), models=self.models)
        if self.own_inputs:
            meta["own_inputs"] = self.own_inputs
        arrays: dict[str, Any] = {}
        if self.has_heads:
            meta["head_share"] = self.head_share
            meta["head_full_words"] = self.head_full_words
            arrays = {"head_weights": self.head_weights, "head_bias": self.head_bias}
        with open(path, "wb") as fh:
            np.savez_compressed(
                fh,
                **arrays,
                vocab=np.asarray(words, dtype=np.str_),
                token_weights=self.token_weights.astype(np.float32),
                bucket_weights=self.bucket_weights.astype(np.float32),
                dense_mean=self.dense_mean,
                dense_scale=self.dense_scale,
                dense_weights=self.dense_weights,
                embed_bias=self.embed_bias,
                offsets=self.offsets,
                loadings=self.loadings,
                profile_coef=self.profile_coef,
                meta=np.asarray(json.dumps(meta, sort_keys=True)),
            )

    @classmethod
    def load(cls, path: str | Path) -> QualityModel:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                words = data["vocab"].tolist()
                model = cls(
                    vocab={w: i for i, w in enumerate(words)},
                    token_weights=data["token_weights"].astype(np.float32),
                    bucket_weights=data["bucket_weights"].astype(np.float32),
                    dense_mean=data["dense_mean"].astype(np.float64),
                    dense_scale=data["dense_scale"].astype(np.float64),
                    dense_weights=data["dense_weights"].astype(np.float64),
                    embed_bias=data["embed_bias"].astype(np.float64),
                    models=list(meta["models"]),
                    offsets=data["offsets"].astype(np.float64),
                    loadings=data["loadings"].astype(np.float64),
                    profile_coef=data["profile_coef"].astype(np.float64),
                    meta=meta,
                    own_inputs=int(meta.get("own_inputs", 0)),
                )
                if "head_share" in meta:
                    model.head_weights = data["head_weights"].astype(np.float64)
                    model.head_bias = data["head_bias"].astype(np.float64)
                    model.head_share = float(meta["head_share"])
                    model.head_full_words = int(meta.get("head_full_words", 0))
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot load router model {path}: {exc}") from None
        if meta.get("format") != FORMAT:
            raise ConfigError(f"router model {path} is not a {FORMAT} quality model")
        if list(meta.get("dense_names", [])) != list(INPUT_NAMES):
            raise ConfigError(
                f"router model {path} was trained with other features; rebuild it with "
                "'make router'"
            )
        k = model.rank
        j = k + model.own_inputs
        if (
            model.token_weights.shape != (len(words), k)
            or model.bucket_weights.shape != (BUCKETS, k)
            or model.dense_weights.shape != (len(INPUT_NAMES), k)
            or model.dense_mean.shape != (len(INPUT_NAMES),)
            or model.dense_scale.shape != (len(INPUT_NAMES),)
            or model.loadings.shape != (len(model.models), j)
            or model.profile_coef.shape != (2, j + 1)
            or (
                model.has_heads
                and (
                    model.head_weights.shape != (len(model.models) + 1, DIMENSIONS)
                    or model.head_bias.shape != (len(model.models) + 1,)
                    or not 0.0 < model.head_share <= 1.0
                    or model.head_full_words < 0
                )
            )
        ):
            raise ConfigError(f"router model {path} has inconsistent arrays")
        return model


def bucket_of(gram: str) -> int:
    return zlib.crc32(gram.encode()) & (BUCKETS - 1)


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
