"""Anthropic Messages dialect specifics with the real anthropic client: error shapes and statuses,
mid-stream failures as ``error`` events, caller keys, multi-turn tool use across providers, the
SSE event sequence."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest
from tests.dialects.conftest import TEXTS, Gearshift
from tests.dialects.sdk_calls import QUESTION

from gearshift.policy.contract import Caller, OpenPolicy

CHEAPEST = {"x-gearshift-quality-tolerance": "1"}


def client(gearshift: Gearshift, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gearshift.url, api_key="sk-client", max_retries=0, **kw)


def hello(model: str) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": QUESTION}]}


def test_unknown_model_is_not_found_error(gearshift: Gearshift) -> None:
    with pytest.raises(anthropic.NotFoundError) as error:
        client(gearshift).messages.create(**hello("claude-nope"))
    assert error.value.status_code == 404
    body = error.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert "claude-nope" in body["error"]["message"]


def test_bad_bodies_are_invalid_request_errors(gearshift: Gearshift) -> None:
    url = f"{gearshift.url}/v1/messages"
    cases = {
        b"{oops": "not valid JSON",
        b'{"model": "auto", "messages": [{"role": "user", "content": "x"}]}': "max_tokens",
        b'{"model": "auto", "max_tokens": 5, "messages": []}': "messages",
        b'{"model": "auto", "max_tokens": 5, "messages": [{"role": "bot", "content": ""}]}': "role",
    }
    for body, mentions in cases.items():
        response = httpx.post(url, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, body
        error = response.json()
        assert error["type"] == "error"
        assert error["error"]["type"] == "invalid_request_error"
        assert mentions in error["error"]["message"]
    # Each body that parses is one row, refused as invalid; the one that is not JSON is none.
    records = gearshift.wait_records(3)
    time.sleep(0.2)
    assert [(r.outcome, r.status, r.dialect) for r in records] == [
        ("invalid", 400, "anthropic")
    ] * 3


def test_oversize_body_is_413_request_too_large(gearshift: Gearshift) -> None:
    big = json.dumps(hello("auto") | {"system": "x" * (9 * 1024 * 1024)}).encode()
    response = httpx.post(
        f"{gearshift.url}/v1/messages", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


def test_all_candidates_failing_is_overloaded(
    gearshift: Gearshift, upstreams: dict[str, Any]
) -> None:
    upstreams["oa"].fail_next(503)
    upstreams["an"].fail_next(529)
    with pytest.raises(anthropic.APIStatusError) as error:
        client(gearshift).messages.create(**hello("oa-an"), extra_headers=CHEAPEST)
    assert error.value.status_code == 529
    assert error.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert "every candidate model failed" in error.value.body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("kind", ["oa", "an", "br"])
def test_mid_stream_failure_is_an_error_event(
    gearshift: Gearshift, upstreams: dict[str, Any], kind: str
) -> None:
    upstreams[kind].fail_next("break")
    text = ""
    with (
        pytest.raises(anthropic.APIStatusError) as error,
        client(gearshift).messages.stream(**hello(kind)) as stream,
    ):
        for chunk in stream.text_stream:
            text += chunk
    assert text and TEXTS[kind].startswith(text)
    assert "overloaded_error" in str(error.value) or "api_error" in str(error.value)
    (record,) = gearshift.wait_records(1)
    assert record.outcome == "error" and record.stream and record.served_model == kind


def test_sse_event_sequence(gearshift: Gearshift) -> None:
    body = hello("oa") | {
        "stream": True,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    }
    with httpx.stream("POST", f"{gearshift.url}/v1/messages", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("event: ")]
    names = [line.removeprefix("event: ") for line in lines]
    assert names[:2] == ["message_start", "ping"]
    assert names[2] == "content_block_start"
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert "content_block_delta" in names


def test_tool_use_round_trip_through_bedrock(
    gearshift: Gearshift, upstreams: dict[str, Any]
) -> None:
    tools = [{"name": "get_weather", "description": "now", "input_schema": {"type": "object"}}]
    c = client(gearshift)
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    first = c.messages.create(model="br", max_tokens=64, messages=messages, tools=tools)  # type: ignore[arg-type]
    assert first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use"
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "18C"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    second = c.messages.create(model="br", max_tokens=64, messages=messages, tools=tools)  # type: ignore[arg-type]
    assert second.content[0].type == "text" and second.content[0].text == TEXTS["br"]
    turns = upstreams["br"].received[-1].body["messages"]
    assert turns[1]["content"] == [
        {"toolUse": {"toolUseId": use.id, "name": "get_weather", "input": {"city": "Paris"}}}
    ]
    assert turns[2]["content"] == [
        {"toolResult": {"toolUseId": use.id, "content": [{"text": "18C"}]}},
        {"text": "And tomorrow?"},
    ]


def test_anthropic_upstream_gets_the_body_untouched(
    gearshift: Gearshift, upstreams: dict[str, Any]
) -> None:
    extra = {"thinking": {"type": "enabled", "budget_tokens": 1024}, "top_k": 3}
    upstreams["an"].knobs.thinking = "Weather question; answer directly."
    answer = client(gearshift).messages.create(**hello("an"), extra_body=extra)
    # Same API both sides: the upstream's answer comes back whole, thinking block included.
    assert [block.type for block in answer.content] == ["thinking", "text"]
    sent = upstreams["an"].received[-1]
    assert sent.body["thinking"] == extra["thinking"] and sent.body["top_k"] == 3
    assert sent.body["model"] == "claude-fake-haiku"
    # The provider's key goes upstream, never the caller's.
    assert sent.headers["x-api-key"] == "sk-ant-fake"


class KeyRecordingPolicy(OpenPolicy):
    """The open policy, but it knows one key and remembers every key it was shown."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    async def authenticate(self, api_key: str | None) -> Caller:
        self.seen.append(api_key)
        if api_key == "gs-key-1":
            return Caller(key_id="key-1", tags={"team": "support"})
        return Caller()


def test_caller_key_from_either_header(start_gearshift: Callable[..., Gearshift]) -> None:
    policy = KeyRecordingPolicy()
    gearshift = start_gearshift(policy)
    for headers in ({"x-api-key": "gs-key-1"}, {"authorization": "Bearer gs-key-1"}):
        response = httpx.post(f"{gearshift.url}/v1/messages", json=hello("oa"), headers=headers)
        assert response.status_code == 200
        assert response.json()["content"] == [{"type": "text", "text": TEXTS["oa"]}]
    assert policy.seen == ["gs-key-1", "gs-key-1"]
    records = gearshift.wait_records(2)
    assert [(r.key_id, r.tags) for r in records] == [("key-1", {"team": "support"})] * 2


def test_count_tokens_exact_upstream_or_estimate(
    gearshift: Gearshift, upstreams: dict[str, Any]
) -> None:
    c = client(gearshift)
    kwargs: dict[str, Any] = {"messages": [{"role": "user", "content": QUESTION * 20}]}
    exact = c.messages.with_raw_response.count_tokens(model="an", system="Be brief.", **kwargs)
    assert exact.parse().input_tokens == 21
    assert exact.headers["x-gearshift-token-count"] == "upstream"
    sent = upstreams["an"].received[-1]
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.body["model"] == "claude-fake-haiku" and sent.body["system"] == "Be brief."
    for model in ("auto", "br"):
        estimate = c.messages.with_raw_response.count_tokens(model=model, **kwargs)
        assert estimate.headers["x-gearshift-token-count"] == "estimate"
        assert 20 * len(QUESTION) // 5 < estimate.parse().input_tokens < 20 * len(QUESTION)
    with pytest.raises(anthropic.NotFoundError):
        c.messages.count_tokens(model="nope", **kwargs)
    assert gearshift.records == []  # counting is not a request to a model


def test_attribution_tags_from_metadata_user_and_header(gearshift: Gearshift) -> None:
    client(gearshift).messages.create(
        **hello("oa"),
        metadata={"user_id": "u-42"},
        extra_headers={"x-gearshift-tags": "team=support"},
    )
    (record,) = gearshift.wait_records(1)
    assert record.tags == {"user": "u-42", "team": "support"}


def test_anthropic_beta_header_reaches_an_anthropic_upstream_only(
    gearshift: Gearshift, upstreams: dict[str, Any]
) -> None:
    beta = {"anthropic-beta": "context-1m-2025-08-07"}
    client(gearshift).messages.create(**hello("an"), extra_headers=beta)
    client(gearshift).messages.count_tokens(
        model="an", messages=hello("an")["messages"], extra_headers=beta
    )
    assert [r.headers.get("anthropic-beta") for r in upstreams["an"].received] == [
        "context-1m-2025-08-07"
    ] * 2
    client(gearshift).messages.create(**hello("br"), extra_headers=beta)
    assert "anthropic-beta" not in upstreams["br"].received[-1].headers
