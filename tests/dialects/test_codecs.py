"""Units of the Anthropic and Bedrock client-side codecs: parsing edge cases, error mapping,
stream encoders (block bookkeeping), usage conventions."""

from __future__ import annotations

import orjson
import pytest

from gearshift.api import anthropic_codec, bedrock_codec
from gearshift.api.eventstream import decode_all
from gearshift.chat import StreamEnd, TextDelta, ToolCallDelta, Usage
from gearshift.errors import (
    AuthenticationError,
    BudgetExceeded,
    GearshiftError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)

ERRORS: list[tuple[GearshiftError, tuple[int, str], tuple[int, str]]] = [
    # error, (Anthropic status, type), (Bedrock status, type)
    (InvalidRequest("x"), (400, "invalid_request_error"), (400, "ValidationException")),
    (AuthenticationError("x"), (401, "authentication_error"), (403, "AccessDeniedException")),
    (NotFound("x"), (404, "not_found_error"), (404, "ResourceNotFoundException")),
    (PayloadTooLarge("x"), (413, "request_too_large"), (413, "ValidationException")),
    (BudgetExceeded("x"), (429, "rate_limit_error"), (429, "ThrottlingException")),
    (UpstreamError("x"), (529, "overloaded_error"), (503, "ServiceUnavailableException")),
    (
        UpstreamError("x", retryable=False, upstream_status=401),
        (500, "api_error"),
        (500, "InternalServerException"),
    ),
    (
        UpstreamError("x", retryable=False, upstream_status=400),
        (400, "invalid_request_error"),
        (400, "ValidationException"),
    ),
    (UpstreamTimeout("x"), (504, "timeout_error"), (408, "ModelTimeoutException")),
    (ServiceUnavailable("x"), (529, "overloaded_error"), (503, "ServiceUnavailableException")),
    (GearshiftError("x"), (500, "api_error"), (500, "InternalServerException")),
]


@pytest.mark.parametrize(("error", "anthropic", "bedrock"), ERRORS)
def test_error_mapping(
    error: GearshiftError, anthropic: tuple[int, str], bedrock: tuple[int, str]
) -> None:
    assert anthropic_codec.error_status_and_type(error) == anthropic
    assert bedrock_codec.error_status_and_type(error) == bedrock


def test_anthropic_tool_results_come_before_new_user_text() -> None:
    request = anthropic_codec.parse_request(
        {
            "model": "auto",
            "max_tokens": 10,
            "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
            "messages": [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "and?"},
                        {"type": "tool_result", "tool_use_id": "t1", "is_error": True},
                    ],
                },
            ],
            "tools": [
                {"name": "f", "input_schema": {"type": "object"}},
                {"type": "web_search_20250305", "name": "web_search"},
            ],
            "tool_choice": {"type": "any"},
        }
    )
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool", "user"]
    assert request.system_text() == "A\nB"
    assert request.messages[2].tool_calls[0].arguments == '{"a":1}'
    assert request.messages[3].is_error and request.messages[3].tool_call_id == "t1"
    assert [t.name for t in request.tools] == ["f"]  # the server tool only runs on Anthropic
    assert request.tool_choice == "required"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"type": "image", "source": {"type": "base64", "data": "@@@"}}], "base64"),
        ([{"type": "hologram"}], "unsupported block type 'hologram'"),
        (42, "must be a string or a list"),
    ],
)
def test_anthropic_bad_content_is_invalid_request(content: object, message: str) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": content}]}
    with pytest.raises(InvalidRequest, match=message):
        anthropic_codec.parse_request(body)


def test_bedrock_parse_json_tool_results_and_skipped_blocks() -> None:
    request = bedrock_codec.parse_request(
        {
            "system": [{"text": "S"}, {"cachePoint": {"type": "default"}}],
            "messages": [
                {"role": "user", "content": [{"text": "q"}, {"cachePoint": {"type": "default"}}]},
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "u1", "name": "f", "input": {}}}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "toolResult": {
                                "toolUseId": "u1",
                                "content": [{"json": {"ok": True}}],
                                "status": "error",
                            }
                        }
                    ],
                },
            ],
            "inferenceConfig": {"maxTokens": 7, "stopSequences": ["x"]},
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "f"}}],
                "toolChoice": {"tool": {"name": "f"}},
            },
            "requestMetadata": {"team": "search"},
        },
        "auto",
    )
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool"]
    assert request.messages[3].text() == '{"ok":true}' and request.messages[3].is_error
    assert request.max_tokens == 7 and request.stop == ["x"]
    assert request.tool_choice == {"name": "f"}
    assert request.metadata == {"team": "search"}


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"image": {"format": "png", "source": {"bytes": "!!"}}}, "not valid base64"),
        ({"image": {"format": "png", "source": {"s3Location": {}}}}, "inline images only"),
        ({"hologram": {}}, "unsupported content block 'hologram'"),
    ],
)
def test_bedrock_bad_blocks_are_invalid_request(block: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        bedrock_codec.parse_request({"messages": [{"role": "user", "content": [block]}]}, "m")


def test_anthropic_stream_encoder_numbers_blocks() -> None:
    encoder = anthropic_codec.StreamEncoder("msg_1", "m")
    out = encoder.start()
    for event in [
        TextDelta("Let me look."),
        ToolCallDelta(0, id="c0", name="f"),
        ToolCallDelta(0, arguments='{"a":'),
        ToolCallDelta(0, arguments="1}"),
        ToolCallDelta(1, id="c1", name="g", arguments="{}"),
    ]:
        out += encoder.encode(event)
    out += encoder.encode(StreamEnd("tool_calls", Usage(100, 5, cache_read_tokens=60)))
    events = [
        (frame.split(b"\n")[0][7:].decode(), orjson.loads(frame.split(b"\n")[1][6:]))
        for frame in out.strip().split(b"\n\n")
    ]
    starts = [e for name, e in events if name == "content_block_start"]
    stops = [e["index"] for name, e in events if name == "content_block_stop"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [
        (0, "text"),
        (1, "tool_use"),
        (2, "tool_use"),
    ]
    assert stops == [0, 1, 2]
    (delta,) = [e for name, e in events if name == "message_delta"]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {
        "input_tokens": 40,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 60,
        "output_tokens": 5,
    }
    assert events[-1][0] == "message_stop"


def test_bedrock_stream_encoder_frames() -> None:
    encoder = bedrock_codec.StreamEncoder()
    out = encoder.start() + encoder.encode(TextDelta("hi"))
    out += encoder.encode(ToolCallDelta(0, id="u1", name="f", arguments='{"a":1}'))
    out += encoder.finish(StreamEnd("tool_calls", Usage(10, 2, cache_write_tokens=4)), 12.4, "oa")
    frames = [(m.event_type, orjson.loads(m.payload)) for m in decode_all(out)]
    assert [name for name, _ in frames] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockStop",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert frames[3][1] == {
        "contentBlockIndex": 1,
        "start": {"toolUse": {"toolUseId": "u1", "name": "f"}},
    }
    assert frames[-1][1] == {
        "usage": {
            "inputTokens": 6,
            "outputTokens": 2,
            "totalTokens": 12,
            "cacheReadInputTokens": 0,
            "cacheWriteInputTokens": 4,
        },
        "metrics": {"latencyMs": 12},
        "trace": {"promptRouter": {"invokedModelId": "oa"}},
    }
