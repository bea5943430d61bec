"""The Anthropic provider against the fake Messages API on loopback."""

from __future__ import annotations

import orjson
import pytest
from tests.fakes.anthropic_server import FakeAnthropic

from gearshift.chat import (
    ChatRequest,
    ImagePart,
    Message,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from gearshift.config import ModelConfig
from gearshift.errors import UpstreamError, UpstreamTimeout
from gearshift.providers.anthropic import AnthropicProvider

pytestmark = pytest.mark.usefixtures("aws_env")

WEATHER = Tool(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def model_for(server: FakeAnthropic, **over: object) -> ModelConfig:
    fields: dict[str, object] = {
        "name": "claude",
        "provider": "anthropic",
        "model": "claude-haiku-4-5",
        "base_url": server.url,
        "api_key_env": "ANTHROPIC_TEST_KEY",
        "max_retries": 0,
    }
    fields.update(over)
    return ModelConfig.model_validate(fields)


def ask(text: str = "Hi there", **kw: object) -> ChatRequest:
    messages = [Message("system", [TextPart("Be brief.")]), Message("user", [TextPart(text)])]
    return ChatRequest(model="claude", messages=messages, **kw)  # type: ignore[arg-type]


async def collect(
    provider: AnthropicProvider, request: ChatRequest, model: ModelConfig
) -> list[StreamEvent]:
    return [event async for event in provider.stream(request, model)]


async def test_complete_translates_request_and_response(fake_anthropic: FakeAnthropic) -> None:
    provider = AnthropicProvider()
    try:
        response = await provider.complete(
            ask(max_tokens=50, temperature=0.2), model_for(fake_anthropic)
        )
    finally:
        await provider.aclose()
    assert response.text() == fake_anthropic.knobs.text
    assert response.finish_reason == "stop"
    assert response.usage == Usage(input_tokens=21, output_tokens=9)
    sent = fake_anthropic.received[-1]
    assert sent.headers["x-api-key"] == "sk-ant-fake"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body == {
        "model": "claude-haiku-4-5",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}],
        "max_tokens": 50,
        "system": "Be brief.",
        "temperature": 0.2,
    }


async def test_cache_tokens_are_counted_in_input(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.knobs.cache_read_tokens = 1000
    fake_anthropic.knobs.cache_write_tokens = 300
    provider = AnthropicProvider()
    try:
        response = await provider.complete(ask(), model_for(fake_anthropic))
        events = await collect(provider, ask(), model_for(fake_anthropic))
    finally:
        await provider.aclose()
    expected = Usage(1321, 9, cache_read_tokens=1000, cache_write_tokens=300)
    assert response.usage == expected
    assert events[-1] == StreamEnd("stop", expected)


async def test_tool_round_trip_and_tool_results(fake_anthropic: FakeAnthropic) -> None:
    provider = AnthropicProvider()
    model = model_for(fake_anthropic)
    try:
        first = await provider.complete(
            ask("Weather in Paris?", tools=[WEATHER], tool_choice="required"), model
        )
        assert first.finish_reason == "tool_calls"
        (call,) = first.tool_calls
        assert call.name == "get_weather"
        assert orjson.loads(call.arguments) == {"city": "Paris", "unit": "c"}
        follow_up = ask("Weather in Paris?", tools=[WEATHER])
        follow_up.messages += [
            Message("assistant", [], tool_calls=[call]),
            Message("tool", [TextPart("18C, sunny")], tool_call_id=call.id),
        ]
        second = await provider.complete(follow_up, model)
    finally:
        await provider.aclose()
    assert second.text() == fake_anthropic.knobs.text
    first_body = fake_anthropic.received[0].body
    assert first_body["tool_choice"] == {"type": "any"}
    assert first_body["tools"][0]["input_schema"] == WEATHER.parameters
    turns = fake_anthropic.received[1].body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {
            "type": "tool_use",
            "id": call.id,
            "name": "get_weather",
            "input": {"city": "Paris", "unit": "c"},
        }
    ]
    assert turns[2]["content"][0]["type"] == "tool_result"
    assert turns[2]["content"][0]["tool_use_id"] == call.id


async def test_images_are_sent_as_base64_blocks(fake_anthropic: FakeAnthropic) -> None:
    provider = AnthropicProvider()
    request = ask()
    request.messages[-1].content.append(ImagePart("image/png", data=b"\x89PNG fake"))
    try:
        await provider.complete(request, model_for(fake_anthropic))
    finally:
        await provider.aclose()
    block = fake_anthropic.received[-1].body["messages"][0]["content"][1]
    assert block == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORyBmYWtl"},
    }


async def test_stream_text_and_usage(fake_anthropic: FakeAnthropic) -> None:
    provider = AnthropicProvider()
    try:
        events = await collect(provider, ask(), model_for(fake_anthropic))
    finally:
        await provider.aclose()
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == fake_anthropic.knobs.text
    assert len([e for e in events if isinstance(e, TextDelta)]) > 1
    assert events[-1] == StreamEnd("stop", Usage(21, 9))
    assert fake_anthropic.received[-1].body["stream"] is True


async def test_stream_tool_call_assembles_arguments(fake_anthropic: FakeAnthropic) -> None:
    provider = AnthropicProvider()
    try:
        events = await collect(provider, ask(tools=[WEATHER]), model_for(fake_anthropic))
    finally:
        await provider.aclose()
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas[0].name == "get_weather" and deltas[0].id and deltas[0].index == 0
    assert orjson.loads("".join(d.arguments for d in deltas)) == {"city": "Paris", "unit": "c"}
    assert events[-1] == StreamEnd("tool_calls", Usage(21, 9))


@pytest.mark.parametrize(
    ("status", "retryable"), [(529, True), (500, True), (429, True), (400, False), (404, False)]
)
async def test_error_statuses_map_to_upstream_errors(
    fake_anthropic: FakeAnthropic, status: int, retryable: bool
) -> None:
    fake_anthropic.fail_next(status, times=2)
    provider = AnthropicProvider()
    try:
        with pytest.raises(UpstreamError) as complete_error:
            await provider.complete(ask(), model_for(fake_anthropic))
        with pytest.raises(UpstreamError) as stream_error:
            await collect(provider, ask(), model_for(fake_anthropic))
    finally:
        await provider.aclose()
    for exc in (complete_error.value, stream_error.value):
        assert exc.upstream_status == status
        assert exc.retryable is retryable
        assert exc.model == "claude"
        assert f"scripted failure {status}" in exc.message


async def test_wrong_key_is_not_retryable(
    fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_TEST_KEY", "sk-ant-wrong")
    provider = AnthropicProvider()
    try:
        with pytest.raises(UpstreamError) as error:
            await provider.complete(ask(), model_for(fake_anthropic))
    finally:
        await provider.aclose()
    assert error.value.upstream_status == 401
    assert not error.value.retryable
    assert "authentication_error" in error.value.message


async def test_timeout_is_retryable(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.knobs.hang_s = 2.0
    fake_anthropic.fail_next("timeout")
    provider = AnthropicProvider()
    try:
        with pytest.raises(UpstreamTimeout) as error:
            await provider.complete(ask(), model_for(fake_anthropic, read_timeout_s=0.2))
    finally:
        await provider.aclose()
    assert error.value.retryable


@pytest.mark.parametrize("failure", ["break", "stream_error"])
async def test_mid_stream_failure_raises_after_first_events(
    fake_anthropic: FakeAnthropic, failure: str
) -> None:
    fake_anthropic.fail_next(failure)
    provider = AnthropicProvider()
    seen: list[StreamEvent] = []
    try:
        with pytest.raises(UpstreamError) as error:
            async for event in provider.stream(ask(), model_for(fake_anthropic)):
                seen.append(event)
    finally:
        await provider.aclose()
    assert any(isinstance(e, TextDelta) for e in seen)
    assert not any(isinstance(e, StreamEnd) for e in seen)
    if failure == "stream_error":
        assert "overloaded_error" in error.value.message and error.value.retryable


async def test_anthropic_dialect_body_is_passed_through(fake_anthropic: FakeAnthropic) -> None:
    raw = {
        "model": "auto",
        "max_tokens": 64,
        "thinking": {"type": "enabled", "budget_tokens": 32},
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            }
        ],
    }
    request = ChatRequest(
        model="auto", messages=[Message("user", [TextPart("hi")])], dialect="anthropic", raw=raw
    )
    provider = AnthropicProvider()
    try:
        await provider.complete(request, model_for(fake_anthropic))
    finally:
        await provider.aclose()
    assert fake_anthropic.received[-1].body == {**raw, "model": "claude-haiku-4-5", "stream": False}


async def test_assistant_history_with_tool_calls_becomes_tool_use(
    fake_anthropic: FakeAnthropic,
) -> None:
    request = ask()
    request.messages += [
        Message(
            "assistant", [TextPart("Let me check.")], tool_calls=[ToolCall("c1", "get_weather", "")]
        ),
        Message("tool", [TextPart("boom")], tool_call_id="c1", is_error=True),
    ]
    provider = AnthropicProvider()
    try:
        await provider.complete(request, model_for(fake_anthropic))
    finally:
        await provider.aclose()
    turns = fake_anthropic.received[-1].body["messages"]
    assert turns[1]["content"][1] == {
        "type": "tool_use",
        "id": "c1",
        "name": "get_weather",
        "input": {},
    }
    assert turns[2]["content"][0]["is_error"] is True


async def test_json_object_mode_becomes_a_system_instruction(
    fake_anthropic: FakeAnthropic,
) -> None:
    provider = AnthropicProvider()
    try:
        await provider.complete(
            ask(response_format={"type": "json_object"}), model_for(fake_anthropic)
        )
    finally:
        await provider.aclose()
    assert fake_anthropic.received[-1].body["system"] == (
        "Be brief.\n\nRespond with a single valid JSON object and nothing else."
    )
