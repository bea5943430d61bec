"""The OpenAI dialect's surface: tools, response_format, multi-turn, /v1/models, /healthz, tags,
and bad input answered with OpenAI-shaped errors (400, 404, 405, 413)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import LARGE_KEY, Running, issue_config

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_tool_call_round_trip(gateway: Running, upstream: FakeOpenAIServer) -> None:
    client = gateway.client()
    first = client.chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="auto",
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    history: list[Any] = [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
    ]
    second = client.chat.completions.create(model="small", messages=history, tools=[WEATHER_TOOL])  # type: ignore[list-item]
    assert second.choices[0].message.content == "Hello from the fake OpenAI provider."
    # The upstream got the conversation exactly as the client sent it.
    assert upstream.received[-1].body["messages"] == json.loads(json.dumps(history))
    assert upstream.received[-1].body["tools"] == [WEATHER_TOOL]


def test_streamed_tool_call(gateway: Running, upstream: FakeOpenAIServer) -> None:
    stream = gateway.client().chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
    )
    name, args, finish = "", "", None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                name += delta.function.name or "" if delta.function else ""
                args += delta.function.arguments or "" if delta.function else ""
            finish = choice.finish_reason or finish
    assert (name, json.loads(args), finish) == ("get_weather", {"city": "Paris"}, "tool_calls")


def test_response_format_and_unknown_params_pass_through(
    gateway: Running, upstream: FakeOpenAIServer
) -> None:
    gateway.client().chat.completions.create(
        model="large",
        messages=[{"role": "user", "content": "JSON please"}],
        response_format={"type": "json_object"},
        seed=7,
        logprobs=True,
        max_completion_tokens=50,
    )
    body = upstream.received[-1].body
    assert body["response_format"] == {"type": "json_object"}
    assert (body["seed"], body["logprobs"], body["max_completion_tokens"]) == (7, True, 50)


def test_stream_asks_upstream_for_usage(gateway: Running, upstream: FakeOpenAIServer) -> None:
    for _ in gateway.client().chat.completions.create(
        model="small", messages=[{"role": "user", "content": "x"}], stream=True
    ):
        pass
    assert upstream.received[-1].body["stream_options"] == {"include_usage": True}
    [record] = gateway.wait_records(1)
    assert (record.prompt_tokens, record.completion_tokens) == (30, 12)
    assert record.cost_usd > 0


def test_cached_and_reasoning_tokens_recorded(gateway: Running, upstream: FakeOpenAIServer) -> None:
    upstream.okn.cached_tokens = 20
    upstream.okn.reasoning_tokens = 5
    gateway.client().chat.completions.create(
        model="small", messages=[{"role": "user", "content": "x"}]
    )
    [record] = gateway.wait_records(1)
    assert (record.cached_tokens, record.reasoning_tokens) == (20, 5)


def test_models_and_health(gateway: Running) -> None:
    client = gateway.client()
    ids = [m.id for m in client.models.list()]
    assert ids == ["auto", "small", "large"]
    assert client.models.retrieve("auto").owned_by == "gearshift-router"
    assert client.models.retrieve("large").owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9")
    health = httpx.get(f"{gateway.url}/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["ledger"] == "ok"


def test_tags_from_header_metadata_and_user(gateway: Running) -> None:
    gateway.client().chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "x"}],
        metadata={"feature": "from-body", "env": "prod"},
        user="u-42",
        extra_headers={"x-gearshift-tags": "feature=helpdesk, team=support"},
    )
    [record] = gateway.wait_records(1)
    assert record.tags == {"feature": "helpdesk", "env": "prod", "user": "u-42", "team": "support"}


@pytest.fixture
def http(gateway: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url) as client:
        yield client


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert response.headers["x-request-id"]
    error: dict[str, Any] = body["error"]
    return error


def test_malformed_json_is_400(http: httpx.Client, gateway: Running) -> None:
    response = http.post(
        "/v1/chat/completions",
        content=b'{"model": "auto", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert "not valid JSON" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "auto", "messages": []}, "messages"),
        ({"model": "auto", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "auto", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1},
            "max_tokens",
        ),
    ],
)
def test_invalid_bodies_name_the_field(http: httpx.Client, body: Any, param: str) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert _error(response)["param"] == param


def test_unknown_model_is_404(gateway: Running) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.client().chat.completions.create(
            model="gpt-9", messages=[{"role": "user", "content": "x"}]
        )
    body: Any = caught.value.body
    assert body["code"] == "model_not_found" and body["param"] == "model"
    assert "routers: auto; models: small, large" in body["message"]


def test_bad_tolerance_header_is_400(gateway: Running) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client().chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-gearshift-quality-tolerance": "lots"},
        )
    assert "x-gearshift-quality-tolerance" in str(caught.value)


def test_unknown_path_and_method(http: httpx.Client) -> None:
    assert http.get("/v1/nothing").status_code == 404
    response = http.get("/v1/chat/completions")
    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"


@pytest.fixture
def small_body_gateway(
    start_gateway: Callable[..., Running], upstream: FakeOpenAIServer
) -> Running:
    return start_gateway(issue_config(upstream.base_url, server={"max_body_bytes": 2000}))


def test_oversize_body_is_413(small_body_gateway: Running, upstream: FakeOpenAIServer) -> None:
    big = {"model": "small", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = httpx.post(f"{small_body_gateway.url}/v1/chat/completions", json=big)
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"
    assert "server.max_body_bytes" in _error(response)["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        payload = json.dumps(big).encode()
        for i in range(0, len(payload), 500):
            yield payload[i : i + 500]

    chunked = httpx.post(f"{small_body_gateway.url}/v1/chat/completions", content=chunks())
    assert chunked.status_code == 413
    assert upstream.received == []
    # A body within the limit still works on the same gateway.
    ok = httpx.post(
        f"{small_body_gateway.url}/v1/chat/completions",
        json={"model": "small", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert ok.status_code == 200


def test_stream_without_upstream_usage_is_estimated_not_free(
    gateway: Running, upstream: FakeOpenAIServer
) -> None:
    upstream.okn.omit_usage = True
    chunks = gateway.client().chat.completions.create(
        model="small", messages=[{"role": "user", "content": "Say hello to the team"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    [record] = gateway.wait_records(1)
    assert record.prompt_tokens > 0 and record.completion_tokens > 0
    assert record.cost_usd > 0


def test_provider_keys_never_reach_the_client_or_other_upstreams(
    gateway: Running, upstream: FakeOpenAIServer
) -> None:
    client = gateway.client()
    client.chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}])
    # The caller's own key is not forwarded; small has no api_key_env, so nothing is sent.
    assert "Authorization" not in upstream.received[-1].headers
    upstream.okn.required_key = "something-else"  # the upstream now rejects LARGE_API_KEY
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="large", messages=[{"role": "user", "content": "x"}])
    message = str(caught.value)
    assert "LARGE_API_KEY" in message and "rejected gearshift's credentials" in message
    assert LARGE_KEY not in message
    [_, record] = gateway.wait_records(2)
    assert record.error is not None and LARGE_KEY not in record.error


class _BrokenProvider:
    """Fault injection: a provider with a bug (raises something that is not an UpstreamError)."""

    kind = "openai"

    async def complete(self, request: Any, model: Any) -> Any:
        raise RuntimeError("bug in a provider")

    async def stream(self, request: Any, model: Any) -> Any:
        raise RuntimeError("bug in a provider")
        yield  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("stream", [False, True])
def test_a_bug_is_a_500_in_openai_shape_and_recorded_once(gateway: Running, stream: bool) -> None:
    deployment = gateway.app.gateway.snapshot.pools["small"].deployments[0]
    deployment.provider = _BrokenProvider()  # type: ignore[assignment]
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "small", "messages": [{"role": "user", "content": "x"}], "stream": stream},
    )
    assert response.status_code == 500
    assert "internal error" in _error(response)["message"]
    [record] = gateway.wait_records(1)
    assert (record.outcome, record.status) == ("error", 500)
    assert record.error == "internal error: RuntimeError: bug in a provider"


@pytest.mark.parametrize("tags", ["feature", "=x", ",".join(f"k{i}=v" for i in range(40))])
def test_bad_tags_header_is_400(http: httpx.Client, tags: str) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={"model": "small", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-gearshift-tags": tags},
    )
    assert response.status_code == 400
    assert _error(response)["param"] == "x-gearshift-tags"
