"""OpenAI-compatible Chat Completions provider: OpenAI, Azure-style proxies, vLLM, Ollama, Groq,
Together and anything else that speaks ``POST {base_url}/chat/completions``.

Connections are pooled per base URL (``providers/http1.py``). Requests that arrived in the OpenAI
dialect are forwarded as the client wrote them (only ``model`` replaced, and usage requested on
streams so a stream is never priced as $0).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from gearshift.api.openai_codec import decode_response, encode_request, finish_reason, parse_usage
from gearshift.chat import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from gearshift.config import ModelConfig
from gearshift.errors import UpstreamError
from gearshift.providers.http1 import Http1Response
from gearshift.providers.shaping import ShapingCache, build_shaping
from gearshift.providers.upstream_http import (
    SHAPE_ERRORS,
    UpstreamPools,
    is_retryable_status,
    iter_chunks,
    json_or_none,
    malformed,
    post,
    read_all,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
log = logging.getLogger("gearshift.providers.openai")


class OpenAIProvider:
    kind = "openai"

    def __init__(self, base_url: str | None = None, **_: Any) -> None:
        self._default_base = base_url or DEFAULT_BASE_URL
        self._pools = UpstreamPools()
        self._shaping = ShapingCache()

    def _headers(self, model: ModelConfig, *, stream: bool) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        if model.api_key_env:
            key = os.environ.get(model.api_key_env)
            if key:
                headers["Authorization"] = f"Bearer {key}"
        extra = self._shaping.get(model).headers
        if extra:
            headers.update(extra)
        return headers

    async def _post(
        self, model: ModelConfig, body: bytes, *, stream: bool, path: str = "/chat/completions"
    ) -> Http1Response:
        pool = self._pools.get(model.base_url or self._default_base, model)
        path += self._shaping.get(model).query
        return await post(pool, path, body, self._headers(model, stream=stream), model)

    async def complete(self, request: ChatRequest, model: ModelConfig) -> ChatResponse:
        if request.dialect == "responses" and model.responses_api and request.raw is not None:
            return await self._responses(request.raw, model)
        body = orjson.dumps(encode_request(request, model.upstream_model, stream=False))
        response = await self._post(model, body, stream=False)
        raw = await read_all(response, model)
        if response.status != 200:
            raise upstream_error(response.status, raw, model, response.headers)
        data = json_or_none(raw)
        if not isinstance(data, dict):
            raise UpstreamError(
                f"{model.name}: the upstream answered 200 with a body that is not a JSON object",
                upstream_status=response.status,
                model=model.name,
            )
        if isinstance(data.get("error"), dict):
            raise upstream_error(500, raw, model)
        choices = data.get("choices")
        if (
            not isinstance(choices, list)
            or not choices
            or not isinstance(choices[0], dict)
            or not isinstance(choices[0].get("message"), dict)
        ):
            raise malformed(model, "has no choices[0].message (HTTP 200)")
        try:
            decoded = decode_response(data)
        except SHAPE_ERRORS as exc:
            raise malformed(model, f"does not decode: {exc}") from None
        decoded.raw = data
        return decoded

    async def _responses(self, raw: dict[str, Any], model: ModelConfig) -> ChatResponse:
        """A Responses body passed through to ``{base_url}/responses``, only ``model`` replaced;
        the upstream keeps the conversation state ``previous_response_id`` refers to."""
        from gearshift.api.responses_codec import decode_response

        payload = orjson.dumps({**raw, "model": model.upstream_model, "stream": False})
        response = await self._post(model, payload, stream=False, path="/responses")
        answer = await read_all(response, model)
        if response.status != 200:
            raise upstream_error(response.status, answer, model, response.headers)
        data = json_or_none(answer)
        if not isinstance(data, dict) or data.get("object") != "response":
            raise upstream_error(502, answer, model)
        return decode_response(data)

    async def embed(self, body: dict[str, Any], model: ModelConfig) -> dict[str, Any]:
        """``POST {base_url}/embeddings`` with the client's body, only ``model`` replaced."""
        payload = orjson.dumps({**body, "model": model.upstream_model})
        response = await self._post(model, payload, stream=False, path="/embeddings")
        raw = await read_all(response, model)
        if response.status != 200:
            raise upstream_error(response.status, raw, model, response.headers)
        data = json_or_none(raw)
        if not isinstance(data, dict) or isinstance(data.get("error"), dict):
            raise upstream_error(502, raw, model)
        return data

    async def stream(self, request: ChatRequest, model: ModelConfig) -> AsyncIterator[StreamEvent]:
        body = orjson.dumps(encode_request(request, model.upstream_model, stream=True))
        response = await self._post(model, body, stream=True)
        try:
            if response.status != 200:
                raw = await read_all(response, model)
                raise upstream_error(response.status, raw, model, response.headers)
            async for event in _events(iter_chunks(response, model), model, request):
                yield event
        finally:
            # Dropping an unfinished response closes its connection, which is what cancels
            # generation upstream when our client goes away.
            response.close()

    async def aclose(self) -> None:
        await self._pools.aclose()


async def _events(
    chunks: AsyncIterator[bytes], model: ModelConfig, request: ChatRequest
) -> AsyncIterator[StreamEvent]:
    """Server-sent events -> stream events. Ends with ``StreamEnd`` at ``[DONE]``; a stream that
    stops before it is broken, and says so."""
    buffer = b""
    finish: FinishReason = "stop"
    usage: Usage | None = None
    produced = 0  # characters of text and tool arguments, for an estimate if usage never comes
    async for chunk in chunks:
        buffer += chunk
        while True:
            line, sep, rest = buffer.partition(b"\n")
            if not sep:
                break
            buffer = rest
            line = line.rstrip(b"\r")
            if not line.startswith(b"data:"):
                continue  # comments, event names, blank separators
            payload = line[5:].strip()
            if payload == b"[DONE]":
                yield StreamEnd(finish, usage or _estimated_usage(request, produced))
                return
            if not payload:
                continue  # an empty keep-alive
            data = json_or_none(payload)
            if not isinstance(data, dict):
                raise malformed(model, f"has a stream frame that is not JSON: {payload[:80]!r}")
            if isinstance(data.get("error"), dict):
                raise upstream_error(500, payload, model)
            try:
                if data.get("usage"):
                    usage = parse_usage(data["usage"])
                events, frame_finish = _frame_events(data)
            except SHAPE_ERRORS as exc:
                raise malformed(model, f"has a stream frame of the wrong shape: {exc}") from None
            for event in events:
                produced += len(event.text if isinstance(event, TextDelta) else event.arguments)
                yield event
            finish = frame_finish or finish
    raise UpstreamError(
        f"{model.name}: the upstream stream ended before [DONE]", model=model.name, retryable=True
    )


def _frame_events(
    data: dict[str, Any],
) -> tuple[list[TextDelta | ToolCallDelta], FinishReason | None]:
    """One chunk's events and finish reason (the first choice only: with n > 1 the internal
    stream carries choice 0). Raises one of ``SHAPE_ERRORS`` on a chunk of the wrong shape."""
    events: list[TextDelta | ToolCallDelta] = []
    finish: FinishReason | None = None
    for choice in data.get("choices") or ():
        if choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if text:
            events.append(TextDelta(str(text)))
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") or {}
            events.append(
                ToolCallDelta(
                    index=int(call.get("index", 0)),
                    id=call.get("id"),
                    name=fn.get("name"),
                    arguments=str(fn.get("arguments") or ""),
                )
            )
        if choice.get("finish_reason"):
            finish = finish_reason(choice["finish_reason"])
    return events, finish


def _estimated_usage(request: ChatRequest, produced_chars: int) -> Usage:
    """For upstreams that ignore ``stream_options.include_usage`` (older vLLM, some proxies): an
    estimate from the text, so the stream is priced roughly rather than logged as $0."""
    from gearshift.routing.tokens import estimate_request_tokens

    log.warning("upstream sent no usage on a stream; tokens estimated from text length")
    return Usage(
        input_tokens=estimate_request_tokens(request),
        output_tokens=max(1, (produced_chars + 3) // 4),
    )


def upstream_error(
    status: int,
    raw: bytes,
    model: ModelConfig,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> UpstreamError:
    data = json_or_none(raw)
    detail = ""
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            detail = str(err.get("message") or "")
        elif isinstance(err, str):
            detail = err
    if not detail:
        detail = raw[:300].decode("utf-8", "replace").strip() or "(empty body)"
    if status in (401, 403):
        # Upstreams quote (part of) the rejected key; the caller must never see ours.
        if model.api_key_env:
            where = f"environment variable {model.api_key_env}"
        else:
            where = f"headers {', '.join(model.headers)}" if model.headers else "no key set"
        detail = f"the upstream rejected gearshift's credentials for this model ({where})"
    else:
        if model.api_key_env and (key := os.environ.get(model.api_key_env)):
            detail = detail.replace(key, "[redacted]")
        if model.headers or model.query:  # keys sent as headers/query (Azure's api-key)
            for secret in build_shaping(model).secrets:
                detail = detail.replace(secret, "[redacted]")
    error = UpstreamError(
        f"{model.name}: upstream answered {status}: {detail}",
        upstream_status=status,
        retryable=is_retryable_status(status),
        model=model.name,
    )
    for name, value in headers:
        if name == b"retry-after":
            # An HTTP date (rare from model APIs) is ignored: the default backoff applies.
            with contextlib.suppress(ValueError):
                error.retry_after_s = max(0.0, float(value))
    return error
