"""A new model's parameters in the default router from a handful of labelled rows.

A model the training data never names gets its offset and loadings from its profile (a line in
catalogue ability, ``QualityModel.params_for_ability``). With a few of its outcomes — 20 to 50
prompts scored for it — the shared prompt representation stays frozen and only the model's own
``1 + K + own_inputs`` numbers are fitted: a logistic regression of the scores on the prompts'
embeddings, with an L2 pull towards the profile (maximum a posteriori with the profile as
prior), so five rows move the model a little and fifty a lot. Newton steps in numpy; no
framework, no retraining of the router.

    from gearshift.routing.irt_fewshot import params_from_rows
    params = params_from_rows(model, [extract(req) for req in requests], scores, ability=0.6)
    q = model.qualities(model.embed_many(new_features), params[None])[:, 0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gearshift.routing.features import Features
from gearshift.routing.irt import QualityModel, sigmoid

__all__ = ["PRIOR_STRENGTH", "params_from_rows"]

FloatArray = npt.NDArray[np.float64]
# pull towards the profile, in units of labelled rows: with 5 rows the profile dominates, with
# 50 the rows do (chosen a priori, not tuned on any held-out figure)
PRIOR_STRENGTH = 5.0


def params_from_rows(
    model: QualityModel,
    features: Sequence[Features],
    scores: Sequence[float],
    ability: float,
    prior_strength: float = PRIOR_STRENGTH,
    steps: int = 25,
) -> FloatArray:
    """(1 + K + own_inputs,) offset and loadings for a model scored on these prompts
    (scores in [0, 1], soft labels allowed), starting from and pulled towards its profile."""
    if len(features) != len(scores):
        raise ValueError("one score per prompt")
    prior = model.params_for_ability(ability)
    if not features:
        return prior
    h = model.embed_many(features)
    x = np.concatenate([np.ones((len(h), 1)), h], axis=1)
    y = np.asarray(scores, dtype=np.float64)
    params = prior.copy()
    for _ in range(steps):
        q = sigmoid(x @ params)
        grad = x.T @ (q - y) + 2 * prior_strength * (params - prior)
        hess = (x * (q * (1 - q))[:, None]).T @ x + 2 * prior_strength * np.eye(len(params))
        step = np.linalg.solve(hess, grad)
        params = params - step
        if float(np.abs(step).max()) < 1e-8:
            break
    return params
