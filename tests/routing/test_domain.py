"""The default router's domain prior: learns domains from labels, reads only text at run time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gearshift.routing import prompt_request
from gearshift.routing.domain import OTHER, fit_domain_prior
from gearshift.routing.features import Features, extract
from gearshift.routing.textmodel import TextModel

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


def test_model_with_domain_prior_round_trips(tmp_path: Path) -> None:
    from gearshift.routing.build_default import build
    from gearshift.routing.predictors import DEFAULT_MODEL_FILE

    rows = []
    for i in range(80):
        chem = i % 2 == 0
        text = CHEMISTRY[i % 4] if chem else GREETINGS[i % 4]
        weak = float(i % 4 != 0) if chem else 1.0  # chemistry often needs the strong model
        rows.append(
            {
                "id": f"crafted/{i}",
                "category": "chemistry" if chem else "greetings",
                "messages": [{"role": "user", "content": f"{text} (case {i})"}],
                "scores": {"weak": weak, "strong": 1.0},
            }
        )
    data = tmp_path / "crafted.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = build([data], tmp_path / "router", folds=3, log=lambda _m: None)
    assert summary["domains"] == 2
    assert len(summary["blend"]) == 3
    assert summary["cv"]["crafted"]["apgr"] > 0.6
    model = TextModel.load(tmp_path / "router" / DEFAULT_MODEL_FILE)
    assert model.domain is not None and model.domain.domains == ["chemistry", "greetings"]
    feats = _feats(["Balance this redox reaction.", "Say hello.", "Something else entirely."])
    batch = model.predict_many(feats)[:, 0]
    for f, b in zip(feats, batch, strict=True):
        assert model.predict(f)[0] == pytest.approx(float(b), abs=1e-9)
    assert batch[0] > batch[1]  # the chemistry prompt is the harder one


def test_implausible_domains_are_not_trained_on() -> None:
    from gearshift.routing.build_default import implausible_domains

    # "broken": the stronger model is far below the weaker one over 60 rows (a grading fault);
    # "hard" and "small" are plausible (a small gap, or too few rows to judge)
    domains = ["broken"] * 60 + ["hard"] * 60 + ["small"] * 10
    weak = np.asarray([1.0] * 30 + [0.0] * 30 + [0.0] * 60 + [1.0] * 10)
    strong = np.asarray([0.0] * 60 + [1.0] * 60 + [0.0] * 10)
    assert implausible_domains(domains, weak, strong) == {"broken"}


def test_zero_weight_rows_are_left_out_of_the_prior() -> None:
    texts = CHEMISTRY * 5 + GREETINGS * 5
    domains = ["chemistry"] * 20 + ["greetings"] * 20
    target = np.asarray([0.9] * 20 + [0.1] * 20)
    weights = np.asarray([1.0] * 20 + [0.0] * 20)
    prior = fit_domain_prior(_feats(texts), domains, target, weights)
    assert prior.domains == ["chemistry"]
    assert "hello" not in prior.vocab  # a greetings-only gram: its rows were not counted


def test_inconsistent_domain_arrays_are_a_clear_error(tmp_path: Path) -> None:
    from gearshift.errors import ConfigError
    from gearshift.routing.build_default import build
    from gearshift.routing.predictors import DEFAULT_MODEL_FILE

    rows = [
        {
            "id": f"crafted/{i}",
            "category": "chemistry" if i % 2 else "greetings",
            "messages": [{"role": "user", "content": (CHEMISTRY + GREETINGS)[i % 8]}],
            "scores": {"weak": float(i % 3 == 0), "strong": 1.0},
        }
        for i in range(40)
    ]
    data = tmp_path / "crafted.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build([data], tmp_path / "router", folds=3, log=lambda _m: None)
    path = tmp_path / "router" / DEFAULT_MODEL_FILE
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    arrays["domain_gains"] = arrays["domain_gains"][:1]  # one gain for two domains
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    with pytest.raises(ConfigError, match="inconsistent domain prior"):
        TextModel.load(path)
