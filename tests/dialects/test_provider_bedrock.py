"""The Bedrock Converse provider against the fake Bedrock runtime, which verifies SigV4."""

from __future__ import annotations

import orjson
import pytest
from tests.fakes.bedrock_server import FakeBedrock

from gearshift.chat import (
    ChatRequest,
    ImagePart,
    Message,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCallDelta,
    Usage,
)
from gearshift.config import ModelConfig
from gearshift.errors import InvalidRequest, UpstreamError, UpstreamTimeout
from gearshift.providers.bedrock import BedrockProvider

pytestmark = pytest.mark.usefixtures("aws_env")

WEATHER = Tool(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
NOVA = "amazon.nova-lite-v1:0"


def model_for(server: FakeBedrock, **over: object) -> ModelConfig:
    fields: dict[str, object] = {
        "name": "nova",
        "provider": "bedrock",
        "model": NOVA,
        "base_url": server.url,
        "max_retries": 0,
    }
    fields.update(over)
    return ModelConfig.model_validate(fields)


def ask(text: str = "Hi there", **kw: object) -> ChatRequest:
    messages = [Message("system", [TextPart("Be brief.")]), Message("user", [TextPart(text)])]
    return ChatRequest(model="nova", messages=messages, **kw)  # type: ignore[arg-type]


async def run_complete(server: FakeBedrock, request: ChatRequest, **over: object):  # type: ignore[no-untyped-def]
    provider = BedrockProvider()
    try:
        return await provider.complete(request, model_for(server, **over))
    finally:
        await provider.aclose()


async def run_stream(
    server: FakeBedrock, request: ChatRequest, **over: object
) -> list[StreamEvent]:
    provider = BedrockProvider()
    try:
        return [e async for e in provider.stream(request, model_for(server, **over))]
    finally:
        await provider.aclose()


async def test_converse_is_signed_and_translated(fake_bedrock: FakeBedrock) -> None:
    response = await run_complete(fake_bedrock, ask(max_tokens=40, temperature=0.5, stop=["END"]))
    assert response.text() == fake_bedrock.knobs.text
    assert response.usage == Usage(21, 9)
    assert response.finish_reason == "stop"
    sent = fake_bedrock.received[-1]
    # The fake recomputed the SigV4 signature with the secret and accepted it.
    assert sent.headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDFAKEGEARSHIFT/"
    )
    assert fake_bedrock.regions[-1] == "us-east-1"
    assert sent.path == "/model/amazon.nova-lite-v1%3A0/converse"
    assert sent.body == {
        "messages": [{"role": "user", "content": [{"text": "Hi there"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 40, "temperature": 0.5, "stopSequences": ["END"]},
    }


async def test_region_from_model_config_wins(fake_bedrock: FakeBedrock) -> None:
    await run_complete(fake_bedrock, ask(), region="eu-west-3")
    assert fake_bedrock.regions[-1] == "eu-west-3"


async def test_arn_model_id_is_one_encoded_segment(fake_bedrock: FakeBedrock) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0"
    await run_complete(fake_bedrock, ask(), model=arn)
    assert fake_bedrock.received[-1].path == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
        "%2Fus.amazon.nova-lite-v1%3A0/converse"
    )


async def test_wrong_secret_is_refused_and_not_retryable(
    fake_bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(UpstreamError) as error:
        await run_complete(fake_bedrock, ask())
    assert error.value.upstream_status == 403
    assert not error.value.retryable
    assert "InvalidSignatureException" in error.value.message


async def test_missing_credentials_say_how_to_fix(
    fake_bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(UpstreamError) as error:
        await run_complete(fake_bedrock, ask())
    assert "AWS_ACCESS_KEY_ID" in error.value.message
    assert fake_bedrock.received == []


async def test_bedrock_api_key_uses_bearer(
    fake_bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bedrock.api_key = "bedrock-api-key-1"
    monkeypatch.setenv("BEDROCK_KEY", "bedrock-api-key-1")
    try:
        await run_complete(fake_bedrock, ask(), api_key_env="BEDROCK_KEY")
    finally:
        fake_bedrock.api_key = None
    assert fake_bedrock.received[-1].headers["Authorization"] == "Bearer bedrock-api-key-1"


async def test_cache_usage_counts_in_input(fake_bedrock: FakeBedrock) -> None:
    fake_bedrock.knobs.cache_read_tokens = 500
    fake_bedrock.knobs.cache_write_tokens = 64
    expected = Usage(585, 9, cache_read_tokens=500, cache_write_tokens=64)
    assert (await run_complete(fake_bedrock, ask())).usage == expected
    assert (await run_stream(fake_bedrock, ask()))[-1] == StreamEnd("stop", expected)


async def test_tool_use_round_trip(fake_bedrock: FakeBedrock) -> None:
    first = await run_complete(
        fake_bedrock, ask(tools=[WEATHER], tool_choice={"name": "get_weather"})
    )
    (call,) = first.tool_calls
    assert first.finish_reason == "tool_calls"
    assert orjson.loads(call.arguments) == {"city": "Paris", "unit": "c"}
    body = fake_bedrock.received[-1].body
    assert body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "inputSchema": {"json": WEATHER.parameters},
                }
            }
        ],
        "toolChoice": {"tool": {"name": "get_weather"}},
    }
    follow = ask(tools=[WEATHER])
    follow.messages += [
        Message("assistant", [], tool_calls=[call]),
        Message("tool", [TextPart("18C")], tool_call_id=call.id),
    ]
    second = await run_complete(fake_bedrock, follow)
    assert second.text() == fake_bedrock.knobs.text
    turns = fake_bedrock.received[-1].body["messages"]
    assert turns[1]["content"] == [
        {
            "toolUse": {
                "toolUseId": call.id,
                "name": "get_weather",
                "input": {"city": "Paris", "unit": "c"},
            }
        }
    ]
    assert turns[2]["content"] == [
        {"toolResult": {"toolUseId": call.id, "content": [{"text": "18C"}]}}
    ]


async def test_images_inline_and_urls_refused(fake_bedrock: FakeBedrock) -> None:
    request = ask()
    request.messages[-1].content.append(ImagePart("image/jpeg", data=b"jpeg!"))
    await run_complete(fake_bedrock, request)
    image = fake_bedrock.received[-1].body["messages"][0]["content"][1]
    assert image == {"image": {"format": "jpeg", "source": {"bytes": "anBlZyE="}}}
    request.messages[-1].content[1] = ImagePart("image/png", url="https://example.com/a.png")
    with pytest.raises(InvalidRequest, match="inline"):
        await run_complete(fake_bedrock, request)


async def test_stream_text(fake_bedrock: FakeBedrock) -> None:
    events = await run_stream(fake_bedrock, ask())
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(texts) == fake_bedrock.knobs.text and len(texts) > 1
    assert events[-1] == StreamEnd("stop", Usage(21, 9))
    assert fake_bedrock.received[-1].path.endswith("/converse-stream")


async def test_stream_tool_call(fake_bedrock: FakeBedrock) -> None:
    events = await run_stream(fake_bedrock, ask(tools=[WEATHER]))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas[0].name == "get_weather" and deltas[0].id
    assert orjson.loads("".join(d.arguments for d in deltas)) == {"city": "Paris", "unit": "c"}
    assert events[-1] == StreamEnd("tool_calls", Usage(21, 9))


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (404, False)]
)
async def test_error_statuses(fake_bedrock: FakeBedrock, status: int, retryable: bool) -> None:
    fake_bedrock.fail_next(status, times=2)
    with pytest.raises(UpstreamError) as complete_error:
        await run_complete(fake_bedrock, ask())
    with pytest.raises(UpstreamError) as stream_error:
        await run_stream(fake_bedrock, ask())
    for exc in (complete_error.value, stream_error.value):
        assert exc.upstream_status == status and exc.retryable is retryable
        assert f"scripted failure {status}" in exc.message


async def test_timeout(fake_bedrock: FakeBedrock) -> None:
    fake_bedrock.knobs.hang_s = 2.0
    fake_bedrock.fail_next("timeout")
    with pytest.raises(UpstreamTimeout):
        await run_complete(fake_bedrock, ask(), read_timeout_s=0.2)


@pytest.mark.parametrize("failure", ["break", "stream_error"])
async def test_mid_stream_failures(fake_bedrock: FakeBedrock, failure: str) -> None:
    fake_bedrock.fail_next(failure)
    seen: list[StreamEvent] = []
    provider = BedrockProvider()
    try:
        with pytest.raises(UpstreamError) as error:
            async for event in provider.stream(ask(), model_for(fake_bedrock)):
                seen.append(event)
    finally:
        await provider.aclose()
    assert any(isinstance(e, TextDelta) for e in seen)
    if failure == "stream_error":
        assert "ThrottlingException" in error.value.message and error.value.retryable


async def test_bedrock_dialect_body_is_passed_through(fake_bedrock: FakeBedrock) -> None:
    raw = {
        "messages": [
            {"role": "user", "content": [{"text": "hi"}, {"cachePoint": {"type": "default"}}]}
        ],
        "additionalModelRequestFields": {"top_k": 5},
    }
    request = ChatRequest(
        model="auto", messages=[Message("user", [TextPart("hi")])], dialect="bedrock", raw=raw
    )
    await run_complete(fake_bedrock, request)
    assert fake_bedrock.received[-1].body == raw


async def test_expiring_credentials_are_refreshed_once_not_per_request(
    fake_bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporary credentials (a role, SSO) near expiry are refreshed by botocore's own logic,
    off the event loop; the chain itself is resolved once per provider, not per request."""
    from datetime import UTC, datetime, timedelta

    from botocore.credentials import RefreshableCredentials

    import gearshift.providers.sigv4 as sigv4

    refreshes: list[str] = []

    def refresh() -> dict[str, str]:
        refreshes.append("refreshed")
        expiry = datetime.now(UTC) + timedelta(hours=1)
        return {
            "access_key": "AKIDFAKEGEARSHIFT",
            "secret_key": "fake-secret-key",
            "token": "session-token-2",
            "expiry_time": expiry.isoformat(),
        }

    almost_expired = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    credentials = RefreshableCredentials.create_from_metadata(
        {
            "access_key": "AKIDFAKEGEARSHIFT",
            "secret_key": "stale-secret",
            "token": "session-token-1",
            "expiry_time": almost_expired,
        },
        refresh_using=refresh,
        method="test-role",
    )
    resolutions: list[str] = []

    def resolve_chain() -> tuple[object, str | None]:
        resolutions.append("resolved")
        return credentials, None

    monkeypatch.setattr(sigv4, "_resolve_chain", resolve_chain)
    provider = BedrockProvider()
    try:
        for _ in range(3):
            await provider.complete(ask(), model_for(fake_bedrock))
    finally:
        await provider.aclose()
    assert resolutions == ["resolved"]
    assert refreshes == ["refreshed"]  # once: the fresh credentials last an hour
    # Signed with the refreshed secret and token (the fake verified each signature).
    assert [r.headers["X-Amz-Security-Token"] for r in fake_bedrock.received] == [
        "session-token-2"
    ] * 3


async def test_missing_credentials_are_reported_at_startup(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider = BedrockProvider()  # built inside a running loop, as the gateway does at startup
    try:
        for _ in range(200):
            if provider._warming is not None and provider._warming.done():
                break
            await asyncio.sleep(0.01)
    finally:
        await provider.aclose()
    assert "no AWS credentials found for bedrock models" in caplog.text


async def test_json_mode_and_tool_choice_none_are_honoured(fake_bedrock: FakeBedrock) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "w", "schema": schema}}
    await run_complete(
        fake_bedrock, ask(tools=[WEATHER], tool_choice="none", response_format=response_format)
    )
    body = fake_bedrock.received[-1].body
    assert "toolConfig" not in body  # "none": no tools offered
    assert body["system"][0] == {"text": "Be brief."}
    assert body["system"][1]["text"].startswith("Respond with a single valid JSON object")
    assert '{"type":"object","properties":{"city":{"type":"string"}}}' in body["system"][1]["text"]
