"""A model no training row names, fitted from a handful of its labelled rows (irt_fewshot)."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.routing import default_predictor, prompt_request
from gearshift.routing.features import extract
from gearshift.routing.irt import QualityModel
from gearshift.routing.irt_fewshot import params_from_rows

HARD = "Prove that there are infinitely many primes p with p = 4k + 3, step by step, case {i}."
EASY = "hi there, can you say good morning to my colleague number {i}?"


def _model() -> QualityModel:
    predictor = default_predictor()
    model = getattr(predictor, "model", None)
    if not isinstance(model, QualityModel):
        pytest.skip("bundled default router missing")
    return model


def test_few_rows_move_a_new_model_towards_its_outcomes() -> None:
    model = _model()
    train = [extract(prompt_request(HARD.format(i=i))) for i in range(20)]
    train += [extract(prompt_request(EASY.format(i=i))) for i in range(20)]
    scores = [0.0] * 20 + [1.0] * 20  # fails every proof, fine at small talk
    params = params_from_rows(model, train, scores, ability=0.6)
    prior = model.params_for_ability(0.6)
    test = [extract(prompt_request(HARD.format(i=99))), extract(prompt_request(EASY.format(i=99)))]
    h = model.embed_many(test)
    q_fit = model.qualities(h, params[None])[:, 0]
    q_prior = model.qualities(h, prior[None])[:, 0]
    # the fitted model is predicted worse on an unseen proof than its profile says, and the gap
    # between a proof and a greeting widens
    assert q_fit[0] < q_prior[0]
    assert q_fit[1] - q_fit[0] > q_prior[1] - q_prior[0] + 0.05, (q_fit, q_prior)


def test_no_rows_is_the_profile_and_lengths_must_match() -> None:
    model = _model()
    assert np.array_equal(
        params_from_rows(model, [], [], ability=0.7), model.params_for_ability(0.7)
    )
    with pytest.raises(ValueError):
        params_from_rows(model, [extract(prompt_request("hello"))], [], ability=0.7)
