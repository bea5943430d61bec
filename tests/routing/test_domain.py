"""The default router's domain prior: learns domains from labels, reads only text at run time."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.routing import prompt_request
from gearshift.routing.domain import OTHER, fit_domain_prior
from gearshift.routing.features import Features, extract

CHEMISTRY = [
    "Which reagent oxidises a primary alcohol to an aldehyde without going on to the acid?",
    "What is the hybridisation of the carbon atoms in an alkyne?",
    "Balance the redox reaction of permanganate with oxalate in acid solution.",
    "Which functional group does an ester hydrolysis produce besides an alcohol?",
]
GREETINGS = [
    "Say hello to our new colleague from the sales team.",
    "Write a short friendly hello for the front desk sign.",
    "Greet the visitors and say welcome to the office.",
    "Say good morning to everyone on the team channel.",
]


def _feats(texts: list[str]) -> list[Features]:
    return [extract(prompt_request(t)) for t in texts]


def test_prior_learns_each_domains_gain_and_pools_rare_domains() -> None:
    texts = CHEMISTRY * 5 + GREETINGS * 5 + ["A lone question about sailing knots."]
    domains = ["chemistry"] * 20 + ["greetings"] * 20 + ["sailing"]
    target = np.asarray([0.9] * 20 + [0.1] * 20 + [0.5])
    prior = fit_domain_prior(_feats(texts), domains, target)
    assert prior.domains == [OTHER, "chemistry", "greetings"]  # "sailing" had one row
    assert prior.gains.tolist() == pytest.approx([0.5, 0.9, 0.1])
    unseen_chemistry = extract(prompt_request("Which reagent reduces an ester to an alcohol?"))
    unseen_greeting = extract(prompt_request("Say hello and welcome to the new team."))
    assert prior.expected_gain(unseen_chemistry.tokens) > 0.8
    assert prior.expected_gain(unseen_greeting.tokens) < 0.2
    # no known gram: the class prior alone, the row-weighted mean of the gains
    assert prior.expected_gain({"zzz"}) == pytest.approx((20 * 0.9 + 20 * 0.1 + 0.5) / 41)


def test_zero_weight_rows_are_left_out_of_the_prior() -> None:
    texts = CHEMISTRY * 5 + GREETINGS * 5
    domains = ["chemistry"] * 20 + ["greetings"] * 20
    target = np.asarray([0.9] * 20 + [0.1] * 20)
    weights = np.asarray([1.0] * 20 + [0.0] * 20)
    prior = fit_domain_prior(_feats(texts), domains, target, weights)
    assert prior.domains == ["chemistry"]
    assert "hello" not in prior.vocab  # a greetings-only gram: its rows were not counted
