"""Every inbound dialect (real openai, anthropic and boto3 clients) against every provider kind
(fake OpenAI, Anthropic and Bedrock upstreams on loopback), streaming and not, with and without
tools; and upstream failures that fall back to a provider of another kind. Costs are asserted
exactly from the configured prices, cache and reasoning tokens included."""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from tests.dialects.conftest import (
    GENAI_PRICED,
    PRICES,
    TEXTS,
    UPSTREAM_IDS,
    Gearshift,
    wait_for,
)
from tests.dialects.sdk_calls import DIALECTS, ask

from gearshift.chat import Usage

KINDS = ("oa", "an", "br")
CHEAPEST = {"x-gearshift-quality-tolerance": "1"}
BEST = {"x-gearshift-quality-tolerance": "0"}
# What each fake reports when the cache knobs below are set, as chat.Usage (all input tokens).
USAGE = {
    "oa": Usage(30, 12, cache_read_tokens=10, reasoning_tokens=4),
    "an": Usage(21 + 100 + 50, 9, cache_read_tokens=100, cache_write_tokens=50),
    "br": Usage(21 + 200 + 40, 9, cache_read_tokens=200, cache_write_tokens=40),
}


def set_cache_usage(upstreams: dict[str, Any]) -> None:
    upstreams["oa"].okn.cached_tokens = 10
    upstreams["oa"].okn.reasoning_tokens = 4
    upstreams["an"].knobs.cache_read_tokens = 100
    upstreams["an"].knobs.cache_write_tokens = 50
    upstreams["br"].knobs.cache_read_tokens = 200
    upstreams["br"].knobs.cache_write_tokens = 40


def expected_cost(kind: str, usage: Usage) -> Decimal:
    price = {k: Decimal(str(v)) for k, v in PRICES[kind].items()}
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    total = (
        uncached * price["input_per_mtok"]
        + usage.cache_read_tokens * price.get("cache_read_per_mtok", price["input_per_mtok"])
        + usage.cache_write_tokens * price.get("cache_write_per_mtok", price["input_per_mtok"])
        + usage.output_tokens * price["output_per_mtok"]
    )
    return total / Decimal(1_000_000)


def upstream_saw_tool(kind: str, upstream: Any) -> bool:
    body = upstream.received[-1].body
    if kind == "oa":
        return bool(body["tools"][0]["function"]["name"] == "get_weather")
    if kind == "an":
        return bool(body["tools"][0]["name"] == "get_weather")
    return bool(body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather")


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tools"])
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_dialect_reaches_provider(
    gearshift: Gearshift,
    upstreams: dict[str, Any],
    dialect: str,
    kind: str,
    stream: bool,
    tools: bool,
) -> None:
    set_cache_usage(upstreams)
    answer = ask(dialect, gearshift.url, kind, stream=stream, tools=tools)

    if tools:
        assert answer.tool_calls == [("get_weather", {"city": "Paris"})]
        assert answer.stop in ("tool_calls", "tool_use")
        assert upstream_saw_tool(kind, upstreams[kind])
    else:
        assert answer.text == TEXTS[kind]
        assert answer.tool_calls == []
        assert answer.stop in ("stop", "end_turn")
    assert answer.headers["x-gearshift-model"] == kind
    usage = USAGE[kind]
    # The client sees the upstream's usage, converted to its own dialect's convention.
    assert answer.usage == (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens)
    if kind != "oa":
        assert upstreams["oa"].received == []
    assert len(upstreams[kind].received) == 1
    if stream and kind != "oa":
        # The provider read the body to its end (so the pooled connection can be reused). The
        # fake records that on its own thread, possibly just after the client got its answer.
        assert wait_for(lambda: upstreams[kind].stream_outcomes), "the upstream stream never ended"
        assert upstreams[kind].stream_outcomes == ["complete"]

    (record,) = gearshift.wait_records(1)
    assert record.dialect == dialect
    assert record.outcome == "ok" and record.status == 200
    assert record.served_model == kind and record.stream is stream
    assert (record.prompt_tokens, record.completion_tokens) == (
        usage.input_tokens,
        usage.output_tokens,
    )
    assert (record.cached_tokens, record.cache_write_tokens, record.reasoning_tokens) == (
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )
    assert record.cost_usd == expected_cost(kind, usage)
    assert record.cost_usd > 0  # a stream is never priced as $0
    assert record.price_source == "config"
    if not stream:
        assert Decimal(answer.headers["x-gearshift-cost-usd"]) == record.cost_usd


FALLBACKS = [
    # router, preference, first choice (fails), expected fallback of another kind
    ("oa-an", CHEAPEST, "oa", "an"),
    ("an-br", CHEAPEST, "an", "br"),
    ("br-oa", BEST, "br", "oa"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize(("router", "preference", "failing", "fallback"), FALLBACKS)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_upstream_failure_falls_back_to_another_kind(
    gearshift: Gearshift,
    upstreams: dict[str, Any],
    dialect: str,
    router: str,
    preference: dict[str, str],
    failing: str,
    fallback: str,
    stream: bool,
) -> None:
    upstreams[failing].fail_next(500)
    answer = ask(dialect, gearshift.url, router, stream=stream, headers=preference)
    assert answer.text == TEXTS[fallback]
    assert answer.headers["x-gearshift-model"] == fallback
    assert answer.headers["x-gearshift-router"] == router
    assert answer.headers["x-gearshift-fallbacks"] == failing
    assert len(upstreams[failing].received) == 1  # max_retries 0: straight to the fallback
    (record,) = gearshift.wait_records(1)
    assert record.chosen_model == failing and record.served_model == fallback
    assert record.fallbacks == [failing]
    assert record.cost_usd == expected_cost(fallback, USAGE_PLAIN[fallback]) > 0


USAGE_PLAIN = {"oa": Usage(30, 12), "an": Usage(21, 9), "br": Usage(21, 9)}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_upstream_model_ids_reach_the_right_provider(
    gearshift: Gearshift, upstreams: dict[str, Any], dialect: str
) -> None:
    ask(dialect, gearshift.url, "an")
    ask(dialect, gearshift.url, "br")
    assert upstreams["an"].received[-1].body["model"] == UPSTREAM_IDS["an"]
    assert upstreams["br"].received[-1].path == "/model/amazon.nova-fake-v1%3A0/converse"


GENAI_KINDS = {"haiku-an": "an", "haiku-br": "br", "o4-oa": "oa"}


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("model", sorted(GENAI_KINDS))
@pytest.mark.parametrize("dialect", DIALECTS)
def test_genai_prices_cost_cached_and_reasoning_tokens_exactly(
    gearshift: Gearshift, upstreams: dict[str, Any], dialect: str, model: str, stream: bool
) -> None:
    """Without a price block, the ledger cost equals genai-prices' own calculation for the
    upstream model, with cache reads/writes and reasoning tokens as the provider reported them."""
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    set_cache_usage(upstreams)
    ask(dialect, gearshift.url, model, stream=stream)
    (record,) = gearshift.wait_records(1)
    usage = USAGE[GENAI_KINDS[model]]
    upstream_id, provider_id = GENAI_PRICED[model]
    expected = calc_price(
        PriceUsage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
        ),
        upstream_id,
        provider_id=provider_id,
    ).total_price
    assert record.price_source == "genai-prices"
    assert record.reasoning_tokens == usage.reasoning_tokens
    assert record.cost_usd == expected > 0


@pytest.mark.parametrize("kind", ["an", "br"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_stream_without_usage_is_estimated_not_free(
    gearshift: Gearshift, upstreams: dict[str, Any], dialect: str, kind: str
) -> None:
    upstreams[kind].knobs.omit_usage = True
    answer = ask(dialect, gearshift.url, kind, stream=True)
    assert answer.text == TEXTS[kind]
    (record,) = gearshift.wait_records(1)
    # Estimated from the text: about a quarter of the characters each way, never zero.
    assert record.prompt_tokens > 0
    assert record.completion_tokens == (len(TEXTS[kind]) + 3) // 4
    assert record.cost_usd > 0


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("kind", ["an", "br"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_reasoning_blocks_stay_out_of_answers_but_are_paid_for(
    gearshift: Gearshift, upstreams: dict[str, Any], dialect: str, kind: str, stream: bool
) -> None:
    """Anthropic thinking / Bedrock reasoningContent: not shown as answer text in another
    dialect, and priced through the output tokens the provider reports (which include them)."""
    upstreams[kind].knobs.thinking = "The user wants the weather; no tool is offered."
    upstreams[kind].knobs.output_tokens = 250
    answer = ask(dialect, gearshift.url, kind, stream=stream)
    assert answer.text == TEXTS[kind]
    (record,) = gearshift.wait_records(1)
    assert record.completion_tokens == 250
    assert record.cost_usd == expected_cost(kind, Usage(21, 250))


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_persisted_ledger_rows_are_exact(
    start_gearshift: Callable[..., Gearshift], upstreams: dict[str, Any], backend: str
) -> None:
    """What reaches the ledger database (flushed at shutdown) is exactly what the providers
    reported, priced exactly: one streamed and one plain request per dialect and kind."""
    from gearshift.ledger import open_store

    storage = None
    if backend == "postgres":
        storage = os.environ.get("GEARSHIFT_TEST_POSTGRES_URL")
        if not storage:
            pytest.skip("GEARSHIFT_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)")
    gearshift = start_gearshift(storage=storage)
    set_cache_usage(upstreams)
    calls = [(d, k, s) for d in DIALECTS for k in KINDS for s in (False, True)]
    for dialect, kind, stream in calls:
        ask(dialect, gearshift.url, kind, stream=stream)
    ours = {r.id for r in gearshift.wait_records(len(calls))}
    gearshift.server.stop()  # lifespan shutdown drains and flushes the ledger writer
    with open_store(gearshift.storage) as store:
        # A shared PostgreSQL database may hold other tests' rows: keep this run's.
        rows = sorted((r for r in store.fetch() if r.id in ours), key=lambda r: r.ts)
    assert len(rows) == len(calls) == len(ours)
    for row, (dialect, kind, stream) in zip(rows, calls, strict=True):
        usage = USAGE[kind]
        assert (row.dialect, row.served_model, row.stream) == (dialect, kind, stream)
        assert (row.prompt_tokens, row.completion_tokens) == (
            usage.input_tokens,
            usage.output_tokens,
        )
        assert (row.cached_tokens, row.cache_write_tokens, row.reasoning_tokens) == (
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            usage.reasoning_tokens,
        )
        assert row.cost_usd == expected_cost(kind, usage) > 0


@pytest.mark.parametrize("failure", ["break", "stream_error"])
@pytest.mark.parametrize("kind", ["an", "br"])
def test_openai_client_sees_anthropic_and_bedrock_mid_stream_failures(
    gearshift: Gearshift, upstreams: dict[str, Any], kind: str, failure: str
) -> None:
    """The OpenAI dialect over the Anthropic and Bedrock providers: a stream that breaks after
    text flowed ends with an error the SDK raises, and is recorded once as an error."""
    import openai

    upstreams[kind].fail_next(failure)
    client = openai.OpenAI(base_url=f"{gearshift.url}/v1", api_key="sk-client", max_retries=0)
    text = ""
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model=kind, messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    assert text and TEXTS[kind].startswith(text)
    (record,) = gearshift.wait_records(1)
    assert record.outcome == "error" and record.served_model == kind
