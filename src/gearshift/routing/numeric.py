"""Numeric helpers shared by the routing models and their training code."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["sigmoid"]

FloatArray = npt.NDArray[np.float64]


def sigmoid(z: FloatArray) -> FloatArray:
    """The logistic function, with the argument clipped to ±30 so ``exp`` never overflows."""
    out: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))
    return out
