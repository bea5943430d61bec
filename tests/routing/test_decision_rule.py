"""The decision rule on real predictors: tolerance, constraints, ties, fallback, unknown models."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np
import pytest

from gearshift.chat import ChatRequest, ImagePart, Message, TextPart, Tool
from gearshift.config import parse_settings
from gearshift.errors import ConfigError, InvalidRequest
from gearshift.routing import decide_prompt, prompt_request, router_for_models
from gearshift.routing.metrics import route_by_tolerance

HARD = (
    "Prove rigorously, step by step, that every finite integral domain is a field, then derive "
    "the consequence for Z/pZ and explain why the argument fails for infinite domains."
)


def test_tolerance_zero_picks_best(three_models: list[dict[str, Any]], make_router: Any) -> None:
    engine = make_router(three_models, quality_tolerance=0.0)
    for prompt in ("hi", HARD, "What is 2+2?"):
        d = decide_prompt(engine, prompt)
        assert d.chosen == "large"
        assert d.predicted["large"] == max(d.predicted.values())
        assert d.ranked[0] == "large"


def test_large_tolerance_picks_cheapest(
    three_models: list[dict[str, Any]], make_router: Any
) -> None:
    engine = make_router(three_models, quality_tolerance=1.0)
    d = decide_prompt(engine, HARD)
    assert d.chosen == "small"
    assert d.est_cost_usd["small"] < d.est_cost_usd["medium"] < d.est_cost_usd["large"]


def test_per_request_tolerance_override(
    three_models: list[dict[str, Any]], make_router: Any
) -> None:
    engine = make_router(three_models, quality_tolerance=1.0)
    assert decide_prompt(engine, HARD, tolerance=0.0).chosen == "large"
    assert decide_prompt(engine, HARD).tolerance == 1.0


def test_chosen_is_cheapest_within_tolerance(
    three_models: list[dict[str, Any]], make_router: Any
) -> None:
    engine = make_router(three_models, quality_tolerance=0.1)
    for prompt in ("hi", HARD, "Summarise this sentence briefly: the cat sat on the mat."):
        d = decide_prompt(engine, prompt)
        best = max(d.predicted.values())
        ok = [m for m, q in d.predicted.items() if q >= best - 0.1 - 1e-4]
        assert d.chosen in ok
        assert d.est_cost_usd[d.chosen] == min(d.est_cost_usd[m] for m in ok)
        # fallback order: the rest by predicted quality, best first
        rest = list(d.ranked[1:])
        assert rest == sorted(rest, key=lambda m: -d.predicted[m])
        assert d.most_capable == "large"
        assert d.reason


def test_a_decision_replays_exactly_from_what_it_records(
    three_models: list[dict[str, Any]], make_router: Any
) -> None:
    # The targets controller, the rollups and the audit replay the rule on the ledger's recorded
    # predictions. At a tolerance equal to a recorded gap, the rule must keep that model: the
    # router decides on the recorded (rounded) numbers, not on numbers the row does not hold.
    engine = make_router(three_models)
    data = resources.files("gearshift.routing") / "data" / "kinds_labelled.jsonl"
    prompts = [json.loads(line)["text"] for line in data.read_text("utf-8").splitlines()[:150]]
    names = ["small", "medium", "large"]
    checked = 0
    for prompt in prompts:
        first = decide_prompt(engine, prompt)
        best = max(first.predicted.values())
        for m in names:
            tol = best - first.predicted[m]
            d = decide_prompt(engine, prompt, tolerance=tol)
            predicted = np.array([[d.predicted[n] for n in names]])
            costs = np.array([[d.est_cost_usd[n] for n in names]])
            replayed = names[int(route_by_tolerance(predicted, costs, d.tolerance)[0])]
            assert d.chosen == replayed, (prompt, m, tol, d.predicted)
            checked += 1
    assert checked == 3 * len(prompts)


def test_fallback_model_goes_last(three_models: list[dict[str, Any]], make_router: Any) -> None:
    engine = make_router(three_models, quality_tolerance=1.0, fallback="large")
    d = decide_prompt(engine, HARD)
    assert d.ranked == ("small", "medium", "large")
    extra = [*three_models, {"name": "backup", "ability": 0.6}]
    engine = make_router(extra, quality_tolerance=1.0, models=["small", "large"], fallback="backup")
    assert decide_prompt(engine, HARD).ranked[-1] == "backup"


def test_context_window_is_never_exceeded(
    three_models: list[dict[str, Any]], make_router: Any
) -> None:
    three_models[0]["context_window"] = 1000
    engine = make_router(three_models, quality_tolerance=1.0)
    long_prompt = "word " * 3000  # ~3,750 estimated tokens
    d = decide_prompt(engine, long_prompt)
    assert d.chosen == "medium"
    assert "small" in d.excluded and "context window is 1000" in d.excluded["small"]
    assert "small" not in d.ranked
    # max_tokens counts too
    req = prompt_request("short question")
    req.max_tokens = 2000
    d = engine.decide(req)
    assert d.chosen == "medium"


def test_nothing_fits_is_a_clear_error(
    three_models: list[dict[str, Any]], make_router: Any
) -> None:
    for m in three_models:
        m["context_window"] = 100
    engine = make_router(three_models)
    with pytest.raises(InvalidRequest, match="no model of router 'auto' can serve"):
        decide_prompt(engine, "x " * 1000)


def test_capabilities(three_models: list[dict[str, Any]], make_router: Any) -> None:
    three_models[0]["capabilities"] = {"tools": False, "vision": True, "json_mode": False}
    three_models[1]["capabilities"] = {"tools": True, "vision": False, "json_mode": True}
    three_models[2]["capabilities"] = {"tools": True, "vision": True, "json_mode": True}
    engine = make_router(three_models, quality_tolerance=1.0)
    tools_req = prompt_request("what's the weather in Paris?")
    tools_req.tools = [Tool(name="weather")]
    d = engine.decide(tools_req)
    assert d.chosen == "medium" and "tool" in d.excluded["small"]
    image_req = ChatRequest(
        model="auto",
        messages=[Message(role="user", content=[TextPart("what is this?"), ImagePart(url="x")])],
    )
    d = engine.decide(image_req)
    assert d.chosen == "small" and "vision" in d.excluded["medium"]
    json_req = prompt_request("list three colours")
    json_req.response_format = {"type": "json_object"}
    d = engine.decide(json_req)
    assert d.chosen == "medium" and "JSON" in d.excluded["small"]


def test_allowed_narrows(three_models: list[dict[str, Any]], make_router: Any) -> None:
    engine = make_router(three_models, quality_tolerance=0.0)
    d = engine.decide(prompt_request(HARD), allowed={"small", "medium"})
    assert d.chosen == "medium"
    assert d.excluded["large"].startswith("not allowed")
    with pytest.raises(InvalidRequest):
        engine.decide(prompt_request(HARD), allowed=set())


def test_ties_are_deterministic(make_router: Any) -> None:
    same = {"ability": 0.7, "price": {"input_per_mtok": 1, "output_per_mtok": 1}}
    models = [
        {"name": "zeta", "tier": 2, **same},
        {"name": "alpha", "tier": 2, **same},
        {"name": "beta", "tier": 1, **same},
    ]
    engine = make_router(models, quality_tolerance=0.0)
    d = decide_prompt(engine, HARD)
    assert d.chosen == "beta"  # same quality and cost: lower tier wins
    assert d.ranked == ("beta", "alpha", "zeta")  # then by name
    models[2]["tier"] = 2
    assert decide_prompt(make_router(models, quality_tolerance=0.0), HARD).chosen == "alpha"


def test_ability_sources(make_router: Any) -> None:
    # tier only, no price: tier order decides; catalogue names resolve abilities
    models = [{"name": "light", "tier": 1}, {"name": "heavy", "tier": 3}]
    engine = make_router(models, quality_tolerance=0.0)
    assert decide_prompt(engine, HARD).chosen == "heavy"
    engine = make_router(models, quality_tolerance=1.0)
    assert decide_prompt(engine, HARD).chosen == "light"  # unpriced: lower tier is "cheaper"
    cat = router_for_models(["gpt-4o-mini", "gpt-4o"], tolerance=0.0)
    assert decide_prompt(cat, "hello").chosen == "gpt-4o"
    assert cat.profiles[0].ability_source == "catalogue"


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        parse_settings(
            {"models": [{"name": "a"}], "routers": [{"name": "r", "models": ["a", "nope"]}]}
        )
    with pytest.raises(ConfigError, match="cannot load router model"):
        router_for_models(["a", "b"], predictor=__file__)  # not a router file
    with pytest.raises(ConfigError, match="not found"):
        router_for_models(["a", "b"], predictor="/nonexistent/router")


def test_sticky_conversation(three_models: list[dict[str, Any]], make_router: Any) -> None:
    engine = make_router(three_models, quality_tolerance=0.1)
    first = prompt_request("hello, can you help me?")
    first.metadata = {"conversation_id": "c1"}
    d1 = engine.decide(first)
    follow = ChatRequest(
        model="auto",
        messages=[
            Message(role="user", content=[TextPart("hello, can you help me?")]),
            Message(role="assistant", content=[TextPart("Sure.")]),
            Message(role="user", content=[TextPart(HARD)]),
        ],
        metadata={"conversation_id": "c1"},
    )
    d2 = engine.decide(follow)
    assert d2.chosen == d1.chosen
    follow.metadata = {"conversation_id": "c2"}
    engine_not_sticky = make_router(three_models, quality_tolerance=0.1, sticky=False)
    assert engine_not_sticky.decide(follow).reason.startswith("best predicted")


def test_estimate_tokens() -> None:
    from gearshift.routing import estimate_tokens

    assert estimate_tokens("") == 0
    assert estimate_tokens("a" * 400) == 101  # ~4 characters per token, rounded up
    assert estimate_tokens("日本語のテキスト") == 9  # about one token per non-ASCII character
    long_mixed = "word " * 4000 + "日本" * 3000  # long: non-ASCII share estimated from head+tail
    assert 9000 <= estimate_tokens(long_mixed) <= 12000
