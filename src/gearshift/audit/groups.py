"""Sums per group (a tag value, a prompt kind, a difficulty band), grown as new groups appear."""

from __future__ import annotations

import numpy as np

from gearshift.audit.costs import FloatArray, IntArray

MAX_GROUPS = 200  # per dimension; rarer values are summed under "(other)"
OTHER = "(other)"


class GroupTable:
    def __init__(self, n_models: int) -> None:
        self.n_models = n_models
        self.labels: list[str] = []
        self._index: dict[str, int] = {}
        self.requests = np.zeros(0, np.int64)
        self.actual = np.zeros(0)
        self.routed = np.zeros(0)
        self.moved = np.zeros(0, np.int64)
        self.quality = np.zeros(0)
        self.model_requests = np.zeros((0, n_models), np.int64)

    def code(self, label: str) -> int:
        found = self._index.get(label)
        if found is not None:
            return found
        if len(self.labels) >= MAX_GROUPS:
            label = OTHER
            found = self._index.get(label)
            if found is not None:
                return found
        index = len(self.labels)
        self._index[label] = index
        self.labels.append(label)
        return index

    def add(
        self,
        codes: IntArray,
        chosen: IntArray,
        actual: FloatArray,
        routed: FloatArray,
        moved: np.ndarray,
        quality: FloatArray,
    ) -> None:
        g = len(self.labels)
        grow = g - len(self.requests)
        if grow > 0:
            self.requests = np.concatenate([self.requests, np.zeros(grow, np.int64)])
            self.actual = np.concatenate([self.actual, np.zeros(grow)])
            self.routed = np.concatenate([self.routed, np.zeros(grow)])
            self.moved = np.concatenate([self.moved, np.zeros(grow, np.int64)])
            self.quality = np.concatenate([self.quality, np.zeros(grow)])
            self.model_requests = np.vstack(
                [self.model_requests, np.zeros((grow, self.n_models), np.int64)]
            )
        self.requests += np.bincount(codes, minlength=g)
        self.actual += np.bincount(codes, weights=actual, minlength=g)
        self.routed += np.bincount(codes, weights=routed, minlength=g)
        self.moved += np.bincount(codes, weights=moved.astype(np.float64), minlength=g).astype(
            np.int64
        )
        self.quality += np.bincount(codes, weights=quality, minlength=g)
        pair = codes * self.n_models + chosen
        self.model_requests += np.bincount(pair, minlength=g * self.n_models).reshape(
            g, self.n_models
        )
