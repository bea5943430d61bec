"""Anthropic Messages API provider (``POST /v1/messages``), complete and streaming.

Requests that arrived in the Anthropic dialect are passed through untouched (only ``model`` and
``stream`` set), so features gearshift does not model (thinking, cache_control, citations) still
reach the upstream. Others are translated from ``ChatRequest``. Usage follows the chat.py
convention: ``input_tokens`` counts cache reads and writes too.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

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
    ToolCall,
    ToolCallDelta,
    Usage,
)
from gearshift.config import ModelConfig
from gearshift.errors import UpstreamError
from gearshift.providers.http1 import Http1Pool
from gearshift.providers.shaping import ShapingCache
from gearshift.providers.upstream_http import (
    SHAPE_ERRORS,
    UpstreamPools,
    drain_for_reuse,
    is_retryable_status,
    iter_chunks,
    json_instruction,
    json_or_none,
    malformed,
    post,
    priced_stream,
    read_all,
    shape_checked,
    tool_input,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
# The Messages API requires max_tokens; OpenAI and Bedrock clients may leave it out.
DEFAULT_MAX_TOKENS = 4096
# Key in ChatRequest.extra for the client's ``anthropic-beta`` header (Anthropic dialect only).
ANTHROPIC_BETA = "anthropic-beta"

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# What /v1/messages/count_tokens accepts (it refuses generation parameters like max_tokens).
COUNT_TOKENS_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"}
)
# Anthropic error types that mean "try again or elsewhere" even when sent inside a stream.
RETRYABLE_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


def messages_endpoint(base_url: str | None) -> tuple[str, str]:
    """(origin and prefix, path) of the Messages endpoint for a configured base URL."""
    base = (base_url or DEFAULT_BASE_URL).split("?", 1)[0].rstrip("/")  # query: shaping.py
    # Accept both the SDK's base (".../") and an OpenAI-style base (".../v1").
    return (base, "/messages") if base.endswith("/v1") else (base, "/v1/messages")


def usage_from_anthropic(block: dict[str, Any] | None) -> Usage:
    block = block or {}
    cache_read = int(block.get("cache_read_input_tokens") or 0)
    cache_write = int(block.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(block.get("input_tokens") or 0) + cache_read + cache_write,
        output_tokens=int(block.get("output_tokens") or 0),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


# ---- ChatRequest -> Messages body ----------------------------------------------------------


def _image_block(part: ImagePart) -> dict[str, Any]:
    if part.data is not None:
        data = base64.b64encode(part.data).decode("ascii")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": part.media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": part.url or ""}}


def _content_blocks(parts: list[ContentPart]) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": p.text} if isinstance(p, TextPart) else _image_block(p)
        for p in parts
    ]


def _message_blocks(message: Message) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id or "",
            "content": _content_blocks(message.content),
        }
        if message.is_error:
            block["is_error"] = True
        return "user", [block]
    blocks = _content_blocks(message.content)
    for call in message.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": tool_input(call.arguments),
            }
        )
    return ("assistant" if message.role == "assistant" else "user"), blocks


def tool_choice_to_anthropic(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict):
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        if name:
            return {"type": "tool", "name": name}
    return None


def to_anthropic_body(request: ChatRequest, model: ModelConfig, *, stream: bool) -> dict[str, Any]:
    if request.dialect == "anthropic" and request.raw is not None:
        passthrough = dict(request.raw)
        passthrough["model"] = model.upstream_model
        passthrough["stream"] = stream
        return passthrough
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role, blocks = _message_blocks(message)
        # The API wants alternating roles: fold tool results and repeated turns together.
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    body: dict[str, Any] = {
        "model": model.upstream_model,
        "messages": messages,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
    }
    system = "\n\n".join(
        part for part in (request.system_text(), json_instruction(request.response_format)) if part
    )
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
        choice = tool_choice_to_anthropic(request.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if stream:
        body["stream"] = True
    return body


# ---- Messages response -> ChatResponse ---------------------------------------------------------


def from_anthropic_response(data: dict[str, Any], model: ModelConfig) -> ChatResponse:
    content: list[ContentPart] = []
    calls: list[ToolCall] = []
    for block in data.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            content.append(TextPart(block.get("text", "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(ToolCall(block.get("id", ""), block.get("name", ""), arguments))
    return ChatResponse(
        id=data.get("id") or f"msg_{uuid.uuid4().hex}",
        model=data.get("model") or model.upstream_model,
        content=content,
        tool_calls=calls,
        finish_reason=STOP_REASONS.get(data.get("stop_reason") or "", "stop"),
        usage=usage_from_anthropic(data.get("usage")),
        raw=data,
    )


def upstream_error(status: int, raw: bytes, model: ModelConfig) -> UpstreamError:
    data = json_or_none(raw)
    detail = raw[:300].decode("utf-8", "replace")
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        detail = f"{err.get('type', 'error')}: {err.get('message', '')}"
    return UpstreamError(
        f"{model.name}: Anthropic API answered {status}: {detail}",
        upstream_status=status,
        retryable=is_retryable_status(status),
        model=model.name,
    )


# ---- SSE ------------------------------------------------------------------------------------


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, bytes]]:
    """(event name, data) pairs from a text/event-stream body; multi-line data is joined."""
    buffer = b""
    event = ""
    data: list[bytes] = []
    async for chunk in chunks:
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                break
            line = buffer[:newline].rstrip(b"\r")
            buffer = buffer[newline + 1 :]
            if not line:
                if data:
                    yield event, b"\n".join(data)
                event, data = "", []
            elif line.startswith(b"event:"):
                event = line[6:].strip().decode("utf-8", "replace")
            elif line.startswith(b"data:"):
                data.append(line[5:].lstrip(b" "))
    if data:
        yield event, b"\n".join(data)


class AnthropicProvider:
    kind = "anthropic"

    def __init__(self, *_: Any, **__: Any) -> None:
        # Accepts and ignores construction arguments (the pipeline passes base_url; each model
        # carries its own).
        self._pools = UpstreamPools()
        self._shaping = ShapingCache()

    def _endpoint(self, model: ModelConfig, operation: str = "") -> tuple[Http1Pool, str]:
        """The pool and the Messages path (with the model's query string) for a model."""
        base, path = messages_endpoint(model.base_url)
        return self._pools.get(base, model), path + operation + self._shaping.get(model).query

    def _headers(self, model: ModelConfig, request: ChatRequest | None = None) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "anthropic-version": API_VERSION,
            "accept": "application/json",
        }
        beta = request.extra.get(ANTHROPIC_BETA) if request is not None else None
        if isinstance(beta, str) and request is not None and request.dialect == "anthropic":
            headers["anthropic-beta"] = beta
        if model.api_key_env:
            key = os.environ.get(model.api_key_env)
            if key:
                headers["x-api-key"] = key
        extra = self._shaping.get(model).headers
        if extra:
            headers.update(extra)
        return headers

    async def complete(self, request: ChatRequest, model: ModelConfig) -> ChatResponse:
        body = orjson.dumps(to_anthropic_body(request, model, stream=False))
        pool, path = self._endpoint(model)
        headers = self._headers(model, request)
        response = await post(pool, path, body, headers, model)
        raw = await read_all(response, model)
        if response.status != 200:
            raise upstream_error(response.status, raw, model)
        data = json_or_none(raw)
        if not isinstance(data, dict):
            raise UpstreamError(
                f"{model.name}: Anthropic API returned a body that is not JSON", model=model.name
            )
        if not isinstance(data.get("content"), list):
            raise malformed(model, "has no content list (HTTP 200)")
        try:
            return from_anthropic_response(data, model)
        except SHAPE_ERRORS as exc:
            raise malformed(model, f"does not decode: {exc}") from None

    async def stream(self, request: ChatRequest, model: ModelConfig) -> AsyncIterator[StreamEvent]:
        body = orjson.dumps(to_anthropic_body(request, model, stream=True))
        headers = self._headers(model, request)
        headers["accept"] = "text/event-stream"
        pool, path = self._endpoint(model)
        response = await post(pool, path, body, headers, model)
        try:
            if response.status != 200:
                raise upstream_error(response.status, await read_all(response, model), model)
            events = shape_checked(_translate_stream(iter_chunks(response, model), model), model)
            async for event in priced_stream(events, request, model):
                if isinstance(event, StreamEnd):
                    await drain_for_reuse(response)
                yield event
        finally:
            response.close()

    async def count_tokens(self, request: ChatRequest, model: ModelConfig) -> int:
        """Exact prompt tokens from the upstream's ``/v1/messages/count_tokens``."""
        full = to_anthropic_body(request, model, stream=False)
        body = {k: v for k, v in full.items() if k in COUNT_TOKENS_FIELDS}
        pool, path = self._endpoint(model, "/count_tokens")
        response = await post(
            pool,
            path,
            orjson.dumps(body),
            self._headers(model, request),
            model,
        )
        raw = await read_all(response, model)
        if response.status != 200:
            raise upstream_error(response.status, raw, model)
        data = json_or_none(raw)
        if not isinstance(data, dict) or not isinstance(data.get("input_tokens"), int):
            raise UpstreamError(
                f"{model.name}: count_tokens answered without input_tokens", model=model.name
            )
        return int(data["input_tokens"])

    async def aclose(self) -> None:
        await self._pools.aclose()


async def _translate_stream(
    chunks: AsyncIterator[bytes], model: ModelConfig
) -> AsyncIterator[StreamEvent]:
    usage = Usage()
    finish: FinishReason = "stop"
    tool_index: dict[int, int] = {}  # Anthropic content block index -> tool call index
    async for name, data in sse_events(chunks):
        payload = json_or_none(data)
        if not isinstance(payload, dict):
            raise malformed(model, f"has a stream event that is not JSON: {data[:80]!r}")
        kind = payload.get("type") or name
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            delta_type = delta.get("type")
            if delta_type == "text_delta":
                yield TextDelta(delta.get("text", ""))
            elif delta_type == "input_json_delta":
                index = tool_index.get(int(payload.get("index", 0)))
                if index is not None:
                    yield ToolCallDelta(index, arguments=delta.get("partial_json", ""))
        elif kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(tool_index)
                tool_index[int(payload.get("index", 0))] = index
                yield ToolCallDelta(index, id=block.get("id"), name=block.get("name"))
                initial = block.get("input")
                if initial:  # the API sends {} here and the arguments as deltas; keep any other
                    yield ToolCallDelta(index, arguments=orjson.dumps(initial).decode())
            elif block.get("type") == "text" and block.get("text"):
                yield TextDelta(block["text"])
        elif kind == "message_start":
            usage = usage_from_anthropic((payload.get("message") or {}).get("usage"))
        elif kind == "message_delta":
            finish = STOP_REASONS.get((payload.get("delta") or {}).get("stop_reason") or "", finish)
            usage = _merge_delta_usage(usage, payload.get("usage"))
        elif kind == "message_stop":
            yield StreamEnd(finish, usage)
            return
        elif kind == "error":
            err = payload.get("error") or {}
            raise UpstreamError(
                f"{model.name}: Anthropic stream error {err.get('type', '')}: "
                f"{err.get('message', '')}",
                retryable=err.get("type") in RETRYABLE_ERROR_TYPES,
                model=model.name,
            )
    raise UpstreamError(
        f"{model.name}: the Anthropic stream ended before message_stop", model=model.name
    )


def _merge_delta_usage(usage: Usage, block: dict[str, Any] | None) -> Usage:
    """message_delta carries cumulative counts: output always, input/cache on newer APIs."""
    if not block:
        return usage
    present = {k: v for k, v in block.items() if v is not None}
    return usage_from_anthropic({**_usage_as_anthropic(usage), **present})


def _usage_as_anthropic(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }
