"""Amazon Bedrock Converse / ConverseStream provider, over HTTP with SigV4 (no boto3 on the hot
path: botocore only signs). ``base_url`` overrides the regional endpoint (a VPC endpoint, a
proxy, or a fake server in tests). A model with ``api_key_env`` uses a Bedrock API key
(``Authorization: Bearer``) instead of SigV4.

Requests that arrived in the Bedrock dialect are passed through untouched; others are
translated from ``ChatRequest``. Usage follows chat.py: ``input_tokens`` includes
``cacheReadInputTokens`` and ``cacheWriteInputTokens``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson

from gearshift.api.eventstream import EventStreamDecoder, EventStreamError
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
from gearshift.errors import InvalidRequest, UpstreamError
from gearshift.providers.http1 import Http1Response
from gearshift.providers.shaping import ShapingCache
from gearshift.providers.sigv4 import AwsSigner
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

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
RETRYABLE_EXCEPTIONS = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelStreamErrorException",
        "ModelNotReadyException",
        "ModelTimeoutException",
    }
)
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


def usage_from_bedrock(block: dict[str, Any] | None) -> Usage:
    block = block or {}
    cache_read = int(block.get("cacheReadInputTokens") or 0)
    cache_write = int(block.get("cacheWriteInputTokens") or 0)
    return Usage(
        input_tokens=int(block.get("inputTokens") or 0) + cache_read + cache_write,
        output_tokens=int(block.get("outputTokens") or 0),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def endpoint(base_url: str | None, region: str) -> str:
    return (base_url or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")


def operation_path(model_id: str, operation: str) -> str:
    # A model id may be an ARN (":" and "/"), which must travel as one encoded path segment.
    return f"/model/{quote(model_id, safe='')}/{operation}"


# ---- ChatRequest -> Converse body ------------------------------------------------------------


def _image_block(part: ImagePart) -> dict[str, Any]:
    if part.data is None:
        raise InvalidRequest(
            "Bedrock models take images inline (base64 data), not by URL; send the image bytes"
        )
    fmt = IMAGE_FORMATS.get(part.media_type, part.media_type.rpartition("/")[2] or "png")
    return {"image": {"format": fmt, "source": {"bytes": base64.b64encode(part.data).decode()}}}


def _content_blocks(parts: list[ContentPart]) -> list[dict[str, Any]]:
    return [{"text": p.text} if isinstance(p, TextPart) else _image_block(p) for p in parts]


def _message(message: Message) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        result: dict[str, Any] = {
            "toolUseId": message.tool_call_id or "",
            "content": _content_blocks(message.content) or [{"text": ""}],
        }
        if message.is_error:
            result["status"] = "error"
        return "user", [{"toolResult": result}]
    blocks = _content_blocks(message.content)
    for call in message.tool_calls:
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": call.id,
                    "name": call.name,
                    "input": tool_input(call.arguments),
                }
            }
        )
    return ("assistant" if message.role == "assistant" else "user"), blocks


def tool_choice_to_bedrock(choice: Any) -> dict[str, Any] | None:
    if choice == "auto":
        return {"auto": {}}
    if choice == "required":
        return {"any": {}}
    if isinstance(choice, dict):
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        if name:
            return {"tool": {"name": name}}
    return None  # None and "none": Converse has no "none"; leaving it out means "auto"


def to_converse_body(request: ChatRequest) -> dict[str, Any]:
    if request.dialect == "bedrock" and request.raw is not None:
        return request.raw
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role, blocks = _message(message)
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    body: dict[str, Any] = {"messages": messages}
    system = [{"text": m.text()} for m in request.messages if m.role == "system" and m.text()]
    instruction = json_instruction(request.response_format)
    if instruction:
        system.append({"text": instruction})
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    if request.max_tokens is not None:
        inference["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if request.top_p is not None:
        inference["topP"] = request.top_p
    if request.stop:
        inference["stopSequences"] = list(request.stop)
    if inference:
        body["inferenceConfig"] = inference
    # Converse has no "none" tool choice; offering no tools is how to honour it, unless the
    # history holds tool blocks (then Converse insists on the tool configuration).
    no_tools = request.tool_choice == "none" and not any(
        m.role == "tool" or m.tool_calls for m in request.messages
    )
    if request.tools and not no_tools:
        tool_config: dict[str, Any] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": t.name,
                        "description": t.description or t.name,
                        "inputSchema": {"json": t.parameters},
                    }
                }
                for t in request.tools
            ]
        }
        choice = tool_choice_to_bedrock(request.tool_choice)
        if choice is not None:
            tool_config["toolChoice"] = choice
        body["toolConfig"] = tool_config
    return body


# ---- Converse response -> ChatResponse -------------------------------------------------------


def from_converse_response(data: dict[str, Any], model: ModelConfig) -> ChatResponse:
    content: list[ContentPart] = []
    calls: list[ToolCall] = []
    message = (data.get("output") or {}).get("message") or {}
    for block in message.get("content") or []:
        if "text" in block:
            content.append(TextPart(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            arguments = orjson.dumps(use.get("input") or {}).decode()
            calls.append(ToolCall(use.get("toolUseId", ""), use.get("name", ""), arguments))
    return ChatResponse(
        id=f"bedrock-{uuid.uuid4().hex}",
        model=model.upstream_model,
        content=content,
        tool_calls=calls,
        finish_reason=STOP_REASONS.get(data.get("stopReason") or "", "stop"),
        usage=usage_from_bedrock(data.get("usage")),
        raw=data,
    )


def upstream_error(status: int, error_type: str, raw: bytes, model: ModelConfig) -> UpstreamError:
    data = json_or_none(raw)
    message = raw[:300].decode("utf-8", "replace")
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("Message") or message)
    # x-amzn-ErrorType may carry a namespace suffix ("ValidationException:http://...").
    kind = error_type.split(":", 1)[0] or "error"
    return UpstreamError(
        f"{model.name}: Bedrock answered {status} {kind}: {message}",
        upstream_status=status,
        retryable=is_retryable_status(status) or kind in RETRYABLE_EXCEPTIONS,
        model=model.name,
    )


class BedrockProvider:
    kind = "bedrock"

    def __init__(self, *_: Any, **__: Any) -> None:
        self._pools = UpstreamPools()
        self._shaping = ShapingCache()
        self._signer = AwsSigner()
        # Built at gateway startup inside the server's loop: resolve the credential chain now,
        # in the background, so the first request does not pay for it.
        self._warming: asyncio.Task[None] | None = None
        # Without a running loop (built offline, e.g. by a test) it is resolved on first use.
        with contextlib.suppress(RuntimeError):
            self._warming = asyncio.get_running_loop().create_task(self._signer.warm())

    async def _send(
        self, request: ChatRequest, model: ModelConfig, operation: str, accept: str
    ) -> Http1Response:
        region = await self._signer.region_for(model.region)
        base = endpoint(model.base_url, region)
        pool = self._pools.get(base, model)
        shaping = self._shaping.get(model)
        path = operation_path(model.upstream_model, operation) + shaping.query
        body = orjson.dumps(to_converse_body(request))
        headers = {"Content-Type": "application/json", "Accept": accept, **shaping.headers}
        api_key = os.environ.get(model.api_key_env) if model.api_key_env else None
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        else:
            # Signed over exactly the URL the pool sends (same Host, same encoded path).
            headers = await self._signer.sign(f"{base}{path}", body, region, headers)
        response = await post(pool, path, body, headers, model)
        if response.status != 200:
            raw = await read_all(response, model)
            error_type = _header(response.headers, b"x-amzn-errortype")
            raise upstream_error(response.status, error_type, raw, model)
        return response

    async def complete(self, request: ChatRequest, model: ModelConfig) -> ChatResponse:
        response = await self._send(request, model, "converse", "application/json")
        data = json_or_none(await read_all(response, model))
        if not isinstance(data, dict):
            raise UpstreamError(
                f"{model.name}: Bedrock returned a body that is not JSON", model=model.name
            )
        output = data.get("output")
        message = output.get("message") if isinstance(output, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            raise malformed(model, "has no output.message.content (HTTP 200)")
        try:
            return from_converse_response(data, model)
        except SHAPE_ERRORS as exc:
            raise malformed(model, f"does not decode: {exc}") from None

    async def stream(self, request: ChatRequest, model: ModelConfig) -> AsyncIterator[StreamEvent]:
        response = await self._send(
            request, model, "converse-stream", "application/vnd.amazon.eventstream"
        )
        try:
            events = shape_checked(_translate_stream(iter_chunks(response, model), model), model)
            async for event in priced_stream(events, request, model):
                if isinstance(event, StreamEnd):
                    await drain_for_reuse(response)
                yield event
        finally:
            response.close()

    async def aclose(self) -> None:
        if self._warming is not None and not self._warming.done():
            self._warming.cancel()
        await self._pools.aclose()


async def _translate_stream(
    chunks: AsyncIterator[bytes], model: ModelConfig
) -> AsyncIterator[StreamEvent]:
    decoder = EventStreamDecoder()
    finish: FinishReason | None = None
    tool_index: dict[int, int] = {}  # contentBlockIndex -> tool call index
    async for chunk in chunks:
        try:
            messages = decoder.feed(chunk)
        except EventStreamError as exc:
            raise UpstreamError(f"{model.name}: {exc.message}", model=model.name) from None
        for message in messages:
            if message.message_type != "event":
                raise _stream_exception(message.headers, message.payload, model)
            payload = json_or_none(message.payload)
            if not isinstance(payload, dict):
                raise malformed(
                    model, f"has a stream event that is not JSON: {message.payload[:80]!r}"
                )
            kind = message.event_type
            if kind == "contentBlockDelta":
                delta = payload.get("delta") or {}
                if "text" in delta:
                    yield TextDelta(delta["text"])
                elif "toolUse" in delta:
                    index = tool_index.get(int(payload.get("contentBlockIndex", 0)))
                    if index is not None:
                        yield ToolCallDelta(index, arguments=delta["toolUse"].get("input", ""))
            elif kind == "contentBlockStart":
                use = (payload.get("start") or {}).get("toolUse")
                if use:
                    index = len(tool_index)
                    tool_index[int(payload.get("contentBlockIndex", 0))] = index
                    yield ToolCallDelta(index, id=use.get("toolUseId"), name=use.get("name"))
            elif kind == "messageStop":
                finish = STOP_REASONS.get(payload.get("stopReason") or "", "stop")
            elif kind == "metadata":
                yield StreamEnd(finish or "stop", usage_from_bedrock(payload.get("usage")))
                return
    if finish is not None:
        # messageStop without metadata: the answer is complete, usage unknown.
        yield StreamEnd(finish, Usage())
        return
    raise UpstreamError(
        f"{model.name}: the Bedrock stream ended before messageStop", model=model.name
    )


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    """A response header by lower-case name from the pool's raw header list."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _stream_exception(headers: dict[str, Any], payload: bytes, model: ModelConfig) -> UpstreamError:
    kind = str(headers.get(":exception-type") or headers.get(":error-code") or "error")
    # In the stream the type is the union member name ("throttlingException").
    kind = kind[:1].upper() + kind[1:]
    data = json_or_none(payload)
    message = str(headers.get(":error-message") or "")
    if isinstance(data, dict):
        message = str(data.get("message") or message)
    return UpstreamError(
        f"{model.name}: Bedrock stream {kind}: {message}",
        retryable=kind in RETRYABLE_EXCEPTIONS,
        model=model.name,
    )
