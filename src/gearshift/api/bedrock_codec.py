"""Bedrock Converse wire format, client side: parse a Converse body into a ``ChatRequest``, render
a ``ChatResponse`` as a Converse response, and turn stream events into the event-stream frames
``boto3``'s ``converse_stream`` reads (the provider direction is in providers/bedrock.py).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from gearshift.api.anthropic_codec import CLIENT_FAULTS, dumps_json, tool_input
from gearshift.api.eventstream import encode_event, encode_exception
from gearshift.api.fields import check_model_name, short_repr, string_list
from gearshift.chat import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    FinishReason,
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
from gearshift.errors import GearshiftError, InvalidRequest

STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
    "error": "end_turn",
}
_KNOWN = frozenset(
    {"messages", "system", "inferenceConfig", "toolConfig", "requestMetadata", "modelId"}
)
# Blocks gearshift does not model; a Bedrock upstream still gets them through the raw body.
_SKIPPED_SYSTEM = frozenset({"cachePoint", "guardContent"})
_SKIPPED_BLOCKS = frozenset(
    {"cachePoint", "reasoningContent", "document", "video", "guardContent", "citationsContent"}
)


# ---- client body -> ChatRequest ----------------------------------------------------------------


def parse_request(body: Any, model_id: str) -> ChatRequest:
    check_model_name(model_id, "modelId")
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest("messages: a non-empty list of messages is required")
    messages = _parse_system(body.get("system"))
    for index, raw in enumerate(raw_messages):
        messages.extend(_parse_message(raw, index))
    inference = body.get("inferenceConfig")
    if inference is None:
        inference = {}
    if not isinstance(inference, dict):
        raise InvalidRequest("inferenceConfig: must be an object")
    tools, choice = _parse_tool_config(body.get("toolConfig"))
    stop = inference.get("stopSequences")
    stop_list = [] if stop is None else string_list(stop)
    if stop_list is None:
        raise InvalidRequest("inferenceConfig.stopSequences: must be a list of strings")
    metadata = body.get("requestMetadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest("requestMetadata: must be a map of strings")
    return ChatRequest(
        model=model_id,
        messages=messages,
        dialect="bedrock",
        tools=tools,
        tool_choice=choice,
        max_tokens=_positive_int(inference, "maxTokens"),
        temperature=_number(inference, "temperature"),
        top_p=_number(inference, "topP"),
        stop=stop_list,
        metadata={str(k): str(v) for k, v in metadata.items()} if metadata else {},
        extra={k: v for k, v in body.items() if k not in _KNOWN},
        raw=body,
    )


def _parse_system(system: Any) -> list[Message]:
    if system is None:
        return []
    if not isinstance(system, list):
        raise InvalidRequest("system: must be a list of content blocks")
    texts: list[str] = []
    for i, block in enumerate(system):
        if not isinstance(block, dict):
            raise InvalidRequest(f"system.{i}: must be a content block object")
        if "text" in block:
            texts.append(_text(block["text"], f"system.{i}"))
        elif not _SKIPPED_SYSTEM.intersection(block):
            raise InvalidRequest(f"system.{i}: a system block holds text (or a cachePoint)")
    text = "\n".join(texts)
    return [Message("system", [TextPart(text)])] if text else []


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.text: must be a string")
    return value


def _parse_message(raw: Any, index: int) -> list[Message]:
    where = f"messages.{index}"
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where}: must be an object")
    role = raw.get("role")
    if role not in ("user", "assistant"):
        raise InvalidRequest(f"{where}.role: must be 'user' or 'assistant', got {short_repr(role)}")
    content = raw.get("content")
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content: must be a list of content blocks")
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for n, block in enumerate(content):
        at = f"{where}.content.{n}"
        if not isinstance(block, dict) or not block:
            raise InvalidRequest(f"{at}: must be a content block object")
        if "text" in block:
            parts.append(TextPart(_text(block["text"], at)))
        elif "image" in block:
            parts.append(_parse_image(block["image"], at))
        elif "toolUse" in block:
            calls.append(_parse_tool_use(block["toolUse"], f"{at}.toolUse"))
        elif "toolResult" in block:
            results.append(_parse_tool_result(block["toolResult"], at))
        elif not _SKIPPED_BLOCKS.intersection(block):
            raise InvalidRequest(f"{at}: unsupported content block {short_repr(next(iter(block)))}")
    if role == "assistant":
        return [Message("assistant", parts, tool_calls=calls)]
    return results + ([Message("user", parts)] if parts or not results else [])


def _parse_tool_use(use: Any, where: str) -> ToolCall:
    if not isinstance(use, dict):
        raise InvalidRequest(f"{where}: must be an object")
    call_id, name, arguments = use.get("toolUseId", ""), use.get("name", ""), use.get("input")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise InvalidRequest(f"{where}: toolUseId and name must be strings")
    return ToolCall(call_id, name, dumps_json(arguments or {}, f"{where}.input"))


def _parse_tool_result(result: Any, where: str) -> Message:
    if not isinstance(result, dict):
        raise InvalidRequest(f"{where}.toolResult: must be an object")
    content = result.get("content")
    if content is not None and not isinstance(content, list):
        raise InvalidRequest(f"{where}.toolResult.content: must be a list of content blocks")
    parts: list[ContentPart] = []
    for i, inner in enumerate(content or []):
        at = f"{where}.toolResult.content.{i}"
        if not isinstance(inner, dict):
            raise InvalidRequest(f"{at}: must be a content block object")
        if "text" in inner:
            parts.append(TextPart(_text(inner["text"], at)))
        elif "json" in inner:
            parts.append(TextPart(dumps_json(inner["json"], f"{at}.json")))
        elif "image" in inner:
            parts.append(_parse_image(inner["image"], at))
    call_id = result.get("toolUseId", "")
    if not isinstance(call_id, str):
        raise InvalidRequest(f"{where}.toolResult.toolUseId: must be a string")
    return Message(
        "tool",
        parts,
        tool_call_id=call_id,
        is_error=result.get("status") == "error",
    )


def _parse_image(image: Any, where: str) -> ImagePart:
    source = image.get("source") if isinstance(image, dict) else None
    if not isinstance(source, dict) or "bytes" not in source:
        raise InvalidRequest(f"{where}.image.source.bytes: required (inline images only)")
    assert isinstance(image, dict)
    raw, fmt = source["bytes"], image.get("format", "png")
    if not isinstance(raw, str) or not isinstance(fmt, str):
        raise InvalidRequest(f"{where}.image: source.bytes and format must be strings")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}.image.source.bytes: not valid base64") from None
    return ImagePart(media_type=f"image/{fmt}", data=data)


def _parse_tool_config(config: Any) -> tuple[list[Tool], Any]:
    if config is None:
        return [], None
    if not isinstance(config, dict):
        raise InvalidRequest("toolConfig: must be an object")
    entries = config.get("tools")
    if entries is not None and not isinstance(entries, list):
        raise InvalidRequest("toolConfig.tools: must be a list of tools")
    tools: list[Tool] = []
    for i, entry in enumerate(entries or []):
        if not isinstance(entry, dict):
            raise InvalidRequest(f"toolConfig.tools.{i}: must be an object")
        spec = entry.get("toolSpec")
        if spec is None:
            continue  # a cachePoint between tools
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidRequest(f"toolConfig.tools.{i}.toolSpec.name: required")
        input_schema = spec.get("inputSchema") or {"json": {"type": "object"}}
        schema = input_schema.get("json") if isinstance(input_schema, dict) else None
        description = spec.get("description") or ""
        if not isinstance(schema, dict) or not isinstance(description, str):
            raise InvalidRequest(
                f"toolConfig.tools.{i}.toolSpec: inputSchema.json must be an object and "
                "description a string"
            )
        tools.append(Tool(spec["name"], description, schema))
    return tools, _parse_tool_choice(config.get("toolChoice"))


def _parse_tool_choice(choice: Any) -> Any:
    """Converse's ``toolChoice`` as gearshift's own form (``"auto"``, ``"required"`` or
    ``{"name": ...}``)."""
    if choice is None:
        return None
    if isinstance(choice, dict) and len(choice) == 1:
        if "any" in choice:
            return "required"
        if "auto" in choice:
            return "auto"
        tool = choice.get("tool")
        name = tool.get("name") if isinstance(tool, dict) else None
        if isinstance(name, str) and name:
            return {"name": name}
    raise InvalidRequest(
        "toolConfig.toolChoice: must be one of {'auto': {}}, {'any': {}} or {'tool': {'name': ...}}"
    )


def _positive_int(block: dict[str, Any], key: str) -> int | None:
    value = block.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"inferenceConfig.{key}: must be a positive integer")
    return value


def _number(block: dict[str, Any], key: str) -> float | None:
    value = block.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"inferenceConfig.{key}: must be a number")
    return float(value)


# ---- ChatResponse -> client body ---------------------------------------------------------------


def usage_body(usage: Usage) -> dict[str, int]:
    """Bedrock, like Anthropic, counts cache reads and writes apart from ``inputTokens``."""
    uncached = max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
    return {
        "inputTokens": uncached,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.input_tokens + usage.output_tokens,
        "cacheReadInputTokens": usage.cache_read_tokens,
        "cacheWriteInputTokens": usage.cache_write_tokens,
    }


def router_trace(invoked_model: str | None) -> dict[str, Any]:
    """What Bedrock prompt routers add: which model the router invoked."""
    return {"promptRouter": {"invokedModelId": invoked_model}} if invoked_model else {}


def render_response(
    response: ChatResponse, latency_ms: float, invoked_model: str | None
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [
        {"text": p.text} for p in response.content if isinstance(p, TextPart)
    ]
    content += [
        {"toolUse": {"toolUseId": c.id, "name": c.name, "input": tool_input(c.arguments)}}
        for c in response.tool_calls
    ]
    body: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": STOP_REASONS[response.finish_reason],
        "usage": usage_body(response.usage),
        "metrics": {"latencyMs": round(latency_ms)},
    }
    trace = router_trace(invoked_model)
    if trace:
        body["trace"] = trace
    return body


# ---- errors ---------------------------------------------------------------------------------

ERROR_TYPES: dict[int, str] = {
    400: "ValidationException",
    401: "AccessDeniedException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    405: "ValidationException",
    408: "ModelTimeoutException",
    413: "ValidationException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def error_status_and_type(exc: GearshiftError) -> tuple[int, str]:
    status = exc.status
    if status == 504:
        return 408, "ModelTimeoutException"
    if status == 502:
        upstream = getattr(exc, "upstream_status", None)
        if upstream in CLIENT_FAULTS:
            return 400, "ValidationException"  # the upstream refused the request itself
        if getattr(exc, "retryable", False) or upstream in (429, 503, 529):
            return 503, "ServiceUnavailableException"
        return 500, "InternalServerException"
    if status == 401:
        status = 403  # Bedrock refuses bad credentials with 403
    if status not in ERROR_TYPES:
        status = 500 if status >= 500 else 400
    return status, ERROR_TYPES[status]


# ---- stream events -> event-stream frames ----------------------------------------------------


def _frame(event: str, payload: dict[str, Any]) -> bytes:
    return encode_event(event, orjson.dumps(payload))


class StreamEncoder:
    """Stateful: Bedrock numbers content blocks, starts tool blocks explicitly (text blocks begin
    with their first delta) and stops each one."""

    __slots__ = ("_block", "_block_kind", "_tool_blocks")

    def __init__(self) -> None:
        self._block = -1
        self._block_kind = ""
        self._tool_blocks: dict[int, int] = {}

    def start(self) -> bytes:
        return _frame("messageStart", {"role": "assistant"})

    def _close_block(self) -> bytes:
        if not self._block_kind:
            return b""
        self._block_kind = ""
        return _frame("contentBlockStop", {"contentBlockIndex": self._block})

    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, TextDelta):
            out = b""
            if self._block_kind != "text":
                out = self._close_block()
                self._block += 1
                self._block_kind = "text"
            delta = {"contentBlockIndex": self._block, "delta": {"text": event.text}}
            return out + _frame("contentBlockDelta", delta)
        if isinstance(event, ToolCallDelta):
            out = b""
            if event.index not in self._tool_blocks:
                out = self._close_block()
                self._block += 1
                self._block_kind = "tool"
                self._tool_blocks[event.index] = self._block
                use = {"toolUseId": event.id or "", "name": event.name or ""}
                start = {"contentBlockIndex": self._block, "start": {"toolUse": use}}
                out += _frame("contentBlockStart", start)
            if not event.arguments:
                return out
            delta = {
                "contentBlockIndex": self._tool_blocks[event.index],
                "delta": {"toolUse": {"input": event.arguments}},
            }
            return out + _frame("contentBlockDelta", delta)
        raise TypeError("StreamEnd goes to finish()")

    def finish(self, end: StreamEnd, latency_ms: float, invoked_model: str | None) -> bytes:
        metadata: dict[str, Any] = {
            "usage": usage_body(end.usage),
            "metrics": {"latencyMs": round(latency_ms)},
        }
        trace = router_trace(invoked_model)
        if trace:
            metadata["trace"] = trace
        return (
            self._close_block()
            + _frame("messageStop", {"stopReason": STOP_REASONS[end.finish_reason]})
            + _frame("metadata", metadata)
        )

    @staticmethod
    def error(exc: GearshiftError) -> bytes:
        """A modelled stream exception; boto3 raises it as ``EventStreamError`` with this code."""
        status, kind = error_status_and_type(exc)
        if exc.status >= 500 and kind != "ServiceUnavailableException":
            kind = "ModelStreamErrorException"
        member = kind[:1].lower() + kind[1:]  # the union member name, as Bedrock sends it
        payload: dict[str, Any] = {"message": exc.message}
        if member == "modelStreamErrorException":
            upstream = getattr(exc, "upstream_status", None)
            payload["originalStatusCode"] = upstream or status
            payload["originalMessage"] = exc.message
        return encode_exception(member, orjson.dumps(payload))
