"""A linear text model stored as a small ``.npz``: logistic heads over n-grams plus dense features.

Each head is a logistic regression ``sigmoid(bias + Σ w[gram] + Σ v·(dense − mean)/std)`` over the
*distinct* grams of a prompt that are in the vocabulary, followed by a monotone calibration
(isotonic knots, applied with linear interpolation). The default router has one head
(``difficulty``: probability a strong model is needed); a trained router has one head per model
(probability of a good answer). Scoring is a few dictionary look-ups and one small matrix sum:
no ML framework, no network.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gearshift.errors import ConfigError
from gearshift.routing.domain import DomainPrior, blend_logit, gain_logit
from gearshift.routing.features import DENSE_NAMES, Features
from gearshift.routing.numeric import sigmoid

__all__ = ["FORMAT_VERSION", "TextModel"]

FORMAT_VERSION = 1
# Isotonic calibration is flat between and beyond its knots; mixing in a little of the raw
# probability keeps the output strictly increasing in it, so prompts stay ranked (APGR needs
# the order, and ties would merge its thresholds) while the values stay calibrated.
RAW_SHARE = 1e-3
FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class TextModel:
    heads: list[str]  # head names: ["difficulty"] or model names
    vocab: dict[str, int]
    token_weights: FloatArray  # (V, H)
    dense_mean: FloatArray  # (D,)
    dense_scale: FloatArray  # (D,)
    dense_weights: FloatArray  # (D, H)
    bias: FloatArray  # (H,)
    calib_x: list[list[float]] = field(default_factory=list)  # per head, increasing knots
    calib_y: list[list[float]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    # Default router only: a domain prior whose logit is blended with the head's before
    # calibration, z = blend[0]·z_head + blend[1]·logit(expected gain) + blend[2].
    domain: DomainPrior | None = None
    blend: list[float] = field(default_factory=list)
    # Trained (per-model) routers: a prompt's token sum is divided by the L2 norm of its grams'
    # idf weights (tf-idf with L2 rows; ``token_weights`` already carry the idf), and the kind
    # detector's probabilities get weights of their own. Empty = not used (the default router).
    token_idf: FloatArray = field(default_factory=lambda: np.zeros(0))  # (V,)
    kind_weights: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # (K, H)
    _fast: _FastHead | None = field(default=None, repr=False, compare=False)

    # ---- scoring -------------------------------------------------------------------------

    def logits(self, features: Features) -> FloatArray:
        vocab = self.vocab
        idx = [vocab[g] for g in vocab.keys() & features.tokens]
        z = self.bias.copy()
        if idx:
            tokens = self.token_weights[idx].sum(axis=0)
            if len(self.token_idf):
                tokens /= math.sqrt(float((self.token_idf[idx] ** 2).sum()))
            z += tokens
        d = (np.asarray(features.dense, dtype=np.float64) - self.dense_mean) / self.dense_scale
        z += d @ self.dense_weights
        if self.kind_weights.size and len(features.kind_probs):
            z += features.kind_probs @ self.kind_weights
        if self.domain is not None:
            z = blend_logit(self.blend, z, self.domain.expected_gain(features.tokens))
        return z

    def predict(self, features: Features) -> list[float]:
        """Calibrated probability per head."""
        if len(self.heads) == 1:
            return [self._predict_one(features)]
        return self.calibrate(sigmoid(self.logits(features)))

    def _predict_one(self, features: Features) -> float:
        # One head (the default router): plain Python floats beat numpy's per-call overhead.
        fast = self._fast
        if fast is None:
            fast = self._fast = _FastHead.of(self)
        weights = fast.weights
        z = fast.bias + sum(map(weights.__getitem__, weights.keys() & features.tokens))
        z += sum(map(operator.mul, features.dense, fast.dense))
        if self.domain is not None:
            a, b, c = self.blend
            z = a * z + b * gain_logit(self.domain.expected_gain(features.tokens)) + c
        p = 1.0 / (1.0 + math.exp(-min(max(z, -30.0), 30.0)))
        if fast.calib_x:
            p = _interp(p, fast.calib_x, fast.calib_y) * (1 - RAW_SHARE) + RAW_SHARE * p
        return p

    def predict_many(self, batch: Sequence[Features]) -> FloatArray:
        """(N, H) calibrated probabilities; vectorised over the batch for ``gearshift score``."""
        n, h = len(batch), len(self.heads)
        if n == 0:
            return np.zeros((0, h))
        vocab = self.vocab
        rows: list[int] = []
        cols: list[int] = []
        for r, feats in enumerate(batch):
            hits = [vocab[g] for g in vocab.keys() & feats.tokens]
            rows.extend([r] * len(hits))
            cols.extend(hits)
        z = np.tile(self.bias, (n, 1))
        if rows:
            row_of, col_of = np.asarray(rows), np.asarray(cols)
            gram_w = self.token_weights[col_of]
            if len(self.token_idf):
                sq = np.bincount(row_of, weights=self.token_idf[col_of] ** 2, minlength=n)
                gram_w = gram_w / np.sqrt(sq)[row_of, None]
            np.add.at(z, row_of, gram_w)
        dense = np.asarray([f.dense for f in batch], dtype=np.float64)
        z += ((dense - self.dense_mean) / self.dense_scale) @ self.dense_weights
        if self.kind_weights.size and all(len(f.kind_probs) for f in batch):
            z += np.asarray([f.kind_probs for f in batch]) @ self.kind_weights
        if self.domain is not None:
            z = blend_logit(self.blend, z, self.domain.expected_gains(batch)[:, None])
        p = sigmoid(z)
        for j in range(h):
            if self.calib_x and self.calib_x[j]:
                raw = p[:, j].copy()
                p[:, j] = np.interp(raw, self.calib_x[j], self.calib_y[j]) * (1 - RAW_SHARE)
                p[:, j] += RAW_SHARE * raw
        return p

    def calibrate(self, raw: FloatArray) -> list[float]:
        out = [float(v) for v in raw]
        if self.calib_x:
            for j, v in enumerate(out):
                xs, ys = self.calib_x[j], self.calib_y[j]
                if xs:
                    out[j] = _interp(v, xs, ys) * (1 - RAW_SHARE) + RAW_SHARE * v
        return out

    # ---- persistence ---------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        words = sorted(self.vocab, key=self.vocab.__getitem__)
        meta = dict(self.meta)
        meta.update(
            format_version=FORMAT_VERSION,
            heads=self.heads,
            dense_names=list(DENSE_NAMES),
            calib_x=self.calib_x,
            calib_y=self.calib_y,
        )
        extra: dict[str, Any] = {}
        if len(self.token_idf):
            extra["token_idf"] = self.token_idf
        if self.kind_weights.size:
            extra["kind_weights"] = self.kind_weights
        if self.domain is not None:
            d = self.domain
            meta.update(blend=self.blend, domains=d.domains, domain_temperature=d.temperature)
            extra |= {
                "domain_vocab": np.asarray(sorted(d.vocab, key=d.vocab.__getitem__), dtype=np.str_),
                # float16 keeps log-likelihoods to ~0.01 nats and halves the file
                "domain_log_likelihood": d.log_likelihood.astype(np.float16),
                "domain_log_prior": d.log_prior,
                "domain_gains": d.gains,
            }
        with open(path, "wb") as fh:
            np.savez_compressed(
                fh,
                vocab=np.asarray(words, dtype=np.str_),
                token_weights=self.token_weights.astype(np.float32),
                dense_mean=self.dense_mean,
                dense_scale=self.dense_scale,
                dense_weights=self.dense_weights,
                bias=self.bias,
                meta=np.asarray(json.dumps(meta)),
                **extra,
            )

    @classmethod
    def load(cls, path: str | Path) -> TextModel:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                words = data["vocab"].tolist()
                model = cls(
                    heads=list(meta["heads"]),
                    vocab={w: i for i, w in enumerate(words)},
                    token_weights=data["token_weights"].astype(np.float64),
                    dense_mean=data["dense_mean"].astype(np.float64),
                    dense_scale=data["dense_scale"].astype(np.float64),
                    dense_weights=data["dense_weights"].astype(np.float64),
                    bias=data["bias"].astype(np.float64),
                    calib_x=meta.get("calib_x", []),
                    calib_y=meta.get("calib_y", []),
                    meta=meta,
                )
                if "token_idf" in data.files:
                    model.token_idf = data["token_idf"].astype(np.float64)
                    if model.token_idf.shape != (len(words),):
                        raise ValueError("token_idf does not match the vocabulary")
                if "kind_weights" in data.files:
                    model.kind_weights = data["kind_weights"].astype(np.float64)
                    if model.kind_weights.shape[1:] != (len(model.heads),):
                        raise ValueError("kind_weights do not match the heads")
                if "domain_vocab" in data.files:
                    model.domain = DomainPrior(
                        domains=list(meta["domains"]),
                        vocab={w: i for i, w in enumerate(data["domain_vocab"].tolist())},
                        log_likelihood=data["domain_log_likelihood"].astype(np.float32),
                        log_prior=data["domain_log_prior"].astype(np.float64),
                        gains=data["domain_gains"].astype(np.float64),
                        temperature=float(meta.get("domain_temperature", 1.0)),
                    )
                    model.blend = [float(v) for v in meta["blend"]]
                    d = model.domain
                    shape = (len(d.vocab), len(d.domains))
                    if (
                        len(model.blend) != 3
                        or d.log_likelihood.shape != shape
                        or d.log_prior.shape != shape[1:]
                        or d.gains.shape != shape[1:]
                    ):
                        raise ValueError("inconsistent domain prior arrays")
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot load router model {path}: {exc}") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"router model {path} has format {meta.get('format_version')}, "
                f"this gearshift reads {FORMAT_VERSION}; retrain it with 'gearshift train'"
            )
        if list(meta.get("dense_names", [])) != list(DENSE_NAMES):
            raise ConfigError(
                f"router model {path} was trained with other features; retrain it with "
                "'gearshift train' (or 'make router' for the default router)"
            )
        return model


@dataclass(slots=True)
class _FastHead:
    weights: dict[str, float]
    bias: float
    mean: list[float]
    scale: list[float]
    dense: list[float]
    calib_x: list[float]
    calib_y: list[float]

    @classmethod
    def of(cls, model: TextModel) -> _FastHead:
        words = sorted(model.vocab, key=model.vocab.__getitem__)
        column = model.token_weights[:, 0].tolist()
        # fold the standardisation into the weights: Σ (x − m)/s·w = Σ x·(w/s) − Σ m·w/s
        folded = model.dense_weights[:, 0] / model.dense_scale
        return cls(
            weights=dict(zip(words, column, strict=True)),
            bias=float(model.bias[0] - model.dense_mean @ folded),
            mean=model.dense_mean.tolist(),
            scale=model.dense_scale.tolist(),
            dense=folded.tolist(),
            calib_x=model.calib_x[0] if model.calib_x else [],
            calib_y=model.calib_y[0] if model.calib_y else [],
        )


def _interp(v: float, xs: list[float], ys: list[float]) -> float:
    if v <= xs[0]:
        return ys[0]
    if v >= xs[-1]:
        return ys[-1]
    lo, hi = 0, len(xs) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xs[mid] <= v:
            lo = mid
        else:
            hi = mid
    span = xs[hi] - xs[lo]
    t = (v - xs[lo]) / span if span > 0 else 0.0
    return ys[lo] + t * (ys[hi] - ys[lo])


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
