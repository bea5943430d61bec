"""Anthropic Messages wire format, client side: parse a ``/v1/messages`` body into a
``ChatRequest``, render a ``ChatResponse`` as a Messages response, and turn stream events into the
named SSE events the Anthropic SDKs read (the provider direction is in providers/anthropic.py).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from gearshift.api import sse
from gearshift.api.fields import check_model_name, optional_flag, short_repr, string_list
from gearshift.chat import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    FinishReason,
    ImagePart,
    Message,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from gearshift.errors import GearshiftError, InvalidRequest

STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}
# Upstream statuses that mean the request itself is bad (another model would refuse it too).
CLIENT_FAULTS = frozenset({400, 413, 422})
_KNOWN = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "metadata",
    }
)
# Blocks gearshift does not model; they still reach an Anthropic upstream through the raw body.
_SKIPPED_BLOCKS = frozenset(
    {"thinking", "redacted_thinking", "document", "search_result", "server_tool_use"}
)


# ---- client body -> ChatRequest ----------------------------------------------------------------


def parse_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = check_model_name(body.get("model"), "model: a router or model name")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest("max_tokens: a positive integer is required", param="max_tokens")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest("messages: a non-empty list is required", param="messages")
    messages = _parse_system(body.get("system"))
    for index, raw in enumerate(raw_messages):
        messages.extend(_parse_message(raw, index))
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest("metadata: must be an object", param="metadata")
    user = (metadata or {}).get("user_id")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("metadata.user_id: must be a string", param="metadata.user_id")
    stop = body.get("stop_sequences")
    stop_list = [] if stop is None else string_list(stop)
    if stop_list is None:
        raise InvalidRequest("stop_sequences: must be a list of strings", param="stop_sequences")
    return ChatRequest(
        model=model,
        messages=messages,
        dialect="anthropic",
        tools=_parse_tools(body.get("tools")),
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        max_tokens=max_tokens,
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        stop=stop_list,
        stream=optional_flag(body, "stream", "stream:"),
        user=user,
        extra={k: v for k, v in body.items() if k not in _KNOWN},
        raw=body,
    )


def _parse_system(system: Any) -> list[Message]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [Message("system", [TextPart(system)])]
    if isinstance(system, list):
        texts: list[str] = []
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise InvalidRequest(
                    f"system.{i}: must be a text block ({{'type': 'text', 'text': ...}})",
                    param=f"system.{i}",
                )
            texts.append(_text(block, f"system.{i}"))
        text = "\n".join(texts)
        return [Message("system", [TextPart(text)])] if text else []
    raise InvalidRequest("system: must be a string or a list of text blocks", param="system")


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text: must be a string", param=f"{where}.text")
    return text


def _parse_message(raw: Any, index: int) -> list[Message]:
    where = f"messages.{index}"
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where}: must be an object", param=where)
    role = raw.get("role")
    if role not in ("user", "assistant"):
        raise InvalidRequest(
            f"{where}.role: must be 'user' or 'assistant', got {short_repr(role)}",
            param=f"{where}.role",
        )
    content = raw.get("content")
    if isinstance(content, str):
        return [Message(role, [TextPart(content)])]
    if not isinstance(content, list):
        raise InvalidRequest(
            f"{where}.content: must be a string or a list of blocks", param=f"{where}.content"
        )
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for n, block in enumerate(content):
        if not isinstance(block, dict):
            raise InvalidRequest(f"{where}.content.{n}: must be an object")
        kind = block.get("type")
        at = f"{where}.content.{n}"
        if not isinstance(kind, str):
            raise InvalidRequest(f"{at}.type: must be a string", param=f"{at}.type")
        if kind == "text":
            parts.append(TextPart(_text(block, at)))
        elif kind == "image":
            parts.append(_parse_image(block, f"{where}.content.{n}"))
        elif kind == "tool_use":
            calls.append(_parse_tool_use(block, at))
        elif kind == "tool_result":
            results.append(_parse_tool_result(block, f"{where}.content.{n}"))
        elif kind not in _SKIPPED_BLOCKS:
            raise InvalidRequest(
                f"{at}.type: unsupported block type {short_repr(kind)}", param=f"{at}.type"
            )
    if role == "assistant":
        return [Message("assistant", parts, tool_calls=calls)]
    # Tool results answer the previous assistant turn, so they come before any new user text.
    return results + ([Message("user", parts)] if parts or not results else [])


def _parse_tool_use(block: dict[str, Any], where: str) -> ToolCall:
    call_id, name, arguments = block.get("id", ""), block.get("name"), block.get("input")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise InvalidRequest(f"{where}: a tool_use block needs string 'id' and 'name'", param=where)
    if arguments is not None and not isinstance(arguments, dict):
        raise InvalidRequest(f"{where}.input: must be an object", param=f"{where}.input")
    return ToolCall(call_id, name, dumps_json(arguments or {}, f"{where}.input"))


def dumps_json(value: Any, where: str) -> str:
    """A client's JSON value as text again; a number orjson cannot write (past 64 bits) is the
    client's error."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        raise InvalidRequest(f"{where}: holds a number out of range", param=where) from None


def _parse_tool_result(block: dict[str, Any], where: str) -> Message:
    content = block.get("content")
    parts: list[ContentPart]
    if content is None:
        parts = []
    elif isinstance(content, str):
        parts = [TextPart(content)]
    elif isinstance(content, list):
        parts = []
        for i, inner in enumerate(content):
            kind = inner.get("type") if isinstance(inner, dict) else None
            if kind == "text":
                parts.append(TextPart(_text(inner, f"{where}.content.{i}")))
            elif kind == "image":
                parts.append(_parse_image(inner, f"{where}.content.{i}"))
            elif not isinstance(kind, str):
                raise InvalidRequest(
                    f"{where}.content.{i}: must be a block with a 'type'",
                    param=f"{where}.content.{i}",
                )
    else:
        raise InvalidRequest(
            f"{where}.content: must be a string or a list of blocks", param=f"{where}.content"
        )
    tool_use_id = block.get("tool_use_id", "")
    if not isinstance(tool_use_id, str):
        raise InvalidRequest(f"{where}.tool_use_id: must be a string", param=f"{where}.tool_use_id")
    return Message(
        "tool",
        parts,
        tool_call_id=tool_use_id,
        is_error=block.get("is_error") is True,
    )


def _parse_image(block: dict[str, Any], where: str) -> ImagePart:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source: required for an image block")
    if source.get("type") == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise InvalidRequest(f"{where}.source.url: must be a string")
        return ImagePart(url=url)
    data, media_type = source.get("data"), source.get("media_type", "image/png")
    if not isinstance(data, str) or not isinstance(media_type, str):
        raise InvalidRequest(f"{where}.source: 'data' and 'media_type' must be strings")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}.source.data: not valid base64") from None
    return ImagePart(media_type=media_type, data=decoded)


def _parse_tools(tools: Any) -> list[Tool]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("tools: must be a list", param="tools")
    parsed: list[Tool] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise InvalidRequest(f"tools.{i}.name: Field required", param=f"tools.{i}")
        schema = tool.get("input_schema")
        if schema is None and tool.get("type") not in (None, "custom"):
            continue  # a server tool (web search...): only an Anthropic upstream can run it
        description = tool.get("description") or ""
        schema = {"type": "object"} if schema is None else schema
        if not isinstance(schema, dict) or not isinstance(description, str):
            raise InvalidRequest(
                f"tools.{i}: input_schema must be an object and description a string",
                param=f"tools.{i}",
            )
        parsed.append(Tool(tool["name"], description, schema))
    return parsed


def _parse_tool_choice(choice: Any) -> Any:
    """Anthropic's ``tool_choice`` as gearshift's own form (``"auto"``, ``"required"``,
    ``"none"`` or ``{"name": ...}``)."""
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    name = choice.get("name") if isinstance(choice, dict) else None
    if kind == "tool" and isinstance(name, str):
        return {"name": name}
    parsed = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
    if parsed is None:
        raise InvalidRequest(
            "tool_choice: must be {'type': 'auto' | 'any' | 'none'} or "
            "{'type': 'tool', 'name': ...}",
            param="tool_choice",
        )
    return parsed


def _number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{key}: must be a number", param=key)
    return float(value)


# ---- ChatResponse -> client body ---------------------------------------------------------------


def usage_body(usage: Usage) -> dict[str, int]:
    """Anthropic counts cache reads and writes apart from ``input_tokens``."""
    return {
        "input_tokens": max(
            0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
        ),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }


def tool_input(arguments: str) -> Any:
    """A client's tool-call arguments (JSON text) as the object this API carries as input."""
    try:
        parsed = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def render_response(response: ChatResponse, message_id: str, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = [
        {"type": "text", "text": p.text} for p in response.content if isinstance(p, TextPart)
    ]
    content += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(c.arguments)}
        for c in response.tool_calls
    ]
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS[response.finish_reason],
        "stop_sequence": None,
        "usage": usage_body(response.usage),
    }


# ---- errors ---------------------------------------------------------------------------------


def error_status_and_type(exc: GearshiftError) -> tuple[int, str]:
    """The status and ``error.type`` Anthropic would use for this failure."""
    status = exc.status
    upstream_status = getattr(exc, "upstream_status", None)
    if status == 502 and upstream_status in CLIENT_FAULTS:
        return 400, "invalid_request_error"  # the upstream refused the request itself
    upstream_busy = getattr(exc, "retryable", False) or upstream_status in (429, 503, 529)
    if status == 503 or (status == 502 and upstream_busy):
        # Upstreams exhausted or unavailable: "overloaded" is what Anthropic SDKs retry on.
        return 529, "overloaded_error"
    if status == 504:
        return 504, "timeout_error"
    if status == 429:
        return 429, "rate_limit_error"
    if status >= 500:
        return 500, "api_error"
    kinds = {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
    }
    return status, kinds.get(status, "invalid_request_error")


def error_body(exc: GearshiftError) -> dict[str, Any]:
    _, kind = error_status_and_type(exc)
    return {"type": "error", "error": {"type": kind, "message": exc.message}}


# ---- stream events -> SSE ----------------------------------------------------------------------


# A Messages stream event: the payload's "type" is also the SSE event name.
Event = dict[str, Any]


def sse_bytes(events: list[Event]) -> bytes:
    return b"".join(sse.event(e["type"], e) for e in events)


class StreamEncoder:
    """Stateful: opens and closes content blocks as text and tool calls arrive. ``*_events``
    give the Messages stream events (Bedrock's InvokeModel stream wraps these); ``start``,
    ``encode`` and ``error`` give them as SSE bytes."""

    __slots__ = ("_block", "_block_kind", "_message_id", "_model", "_tool_blocks")

    def __init__(self, message_id: str, model: str) -> None:
        self._message_id = message_id
        self._model = model
        self._block = -1  # index of the open content block, -1 before the first
        self._block_kind = ""  # "text" | "tool_use" | "" (none open)
        self._tool_blocks: dict[int, int] = {}  # tool call index -> block index

    def start_events(self) -> list[Event]:
        # Input usage is not known until the end (OpenAI-style upstreams report it last); the
        # final message_delta carries the full usage, which the SDKs read.
        message: dict[str, Any] = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_body(Usage()),
        }
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def _close_block(self) -> list[Event]:
        if not self._block_kind:
            return []
        self._block_kind = ""
        return [{"type": "content_block_stop", "index": self._block}]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[Event]:
        out = self._close_block()
        self._block += 1
        self._block_kind = kind
        out.append({"type": "content_block_start", "index": self._block, "content_block": block})
        return out

    def events(self, event: StreamEvent) -> list[Event]:
        if isinstance(event, TextDelta):
            out: list[Event] = []
            if self._block_kind != "text":
                out = self._open_block("text", {"type": "text", "text": ""})
            delta = {"type": "text_delta", "text": event.text}
            out.append({"type": "content_block_delta", "index": self._block, "delta": delta})
            return out
        if isinstance(event, ToolCallDelta):
            out = []
            if event.index not in self._tool_blocks:
                block = {
                    "type": "tool_use",
                    "id": event.id or "",
                    "name": event.name or "",
                    "input": {},
                }
                out = self._open_block("tool_use", block)
                self._tool_blocks[event.index] = self._block
            if event.arguments:
                delta = {"type": "input_json_delta", "partial_json": event.arguments}
                index = self._tool_blocks[event.index]
                out.append({"type": "content_block_delta", "index": index, "delta": delta})
            return out
        end: dict[str, Any] = {
            "stop_reason": STOP_REASONS[event.finish_reason],
            "stop_sequence": None,
        }
        return [
            *self._close_block(),
            {"type": "message_delta", "delta": end, "usage": usage_body(event.usage)},
            {"type": "message_stop"},
        ]

    def start(self) -> bytes:
        return sse_bytes(self.start_events())

    def encode(self, event: StreamEvent) -> bytes:
        return sse_bytes(self.events(event))

    def error(self, exc: GearshiftError) -> bytes:
        return sse.event("error", error_body(exc))
