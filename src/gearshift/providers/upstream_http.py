"""HTTP plumbing the upstream providers share, on the lean keep-alive client in ``http1.py``:
one connection pool per origin, per-model timeouts, and the mapping of transport failures and
statuses to ``UpstreamError`` so the pipeline can retry or fall back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gearshift.chat import ChatRequest, StreamEnd, StreamEvent, TextDelta, ToolCallDelta, Usage
from gearshift.config import ModelConfig
from gearshift.errors import UpstreamError, UpstreamTimeout
from gearshift.providers.http1 import Http1Pool, Http1Response
from gearshift.providers.proxy import ProxyRefused
from gearshift.telemetry import TRACEPARENT

log = logging.getLogger("gearshift.providers")

# 408 (request timeout), 409 (conflict, used for "model not ready"), 425, 429 and every 5xx
# (Anthropic's 529 "overloaded" included) are worth another try or another model.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
# How long to wait for the end of a body after a stream's final event (normally it is there).
DRAIN_TIMEOUT_S = 0.05


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status in RETRYABLE_STATUSES


# What a malformed answer's decoder may raise when a field has the wrong type or is missing.
SHAPE_ERRORS = (AttributeError, TypeError, ValueError, KeyError, IndexError)


def malformed(model: ModelConfig, what: str) -> UpstreamError:
    """An upstream answer of the wrong shape (a 200 without choices or content, a stream frame
    that does not parse) is the upstream failing, not an empty success: retried, then the next
    model, and recorded as an error."""
    return UpstreamError(f"{model.name}: the upstream's answer {what}", model=model.name)


class UpstreamPools:
    """One ``Http1Pool`` per origin (and proxy and connection cap), created on first use (inside
    the running loop, never at import or construction); the proxy is chosen then, once."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str | None, int], Http1Pool] = {}

    def get(self, base_url: str, model: ModelConfig) -> Http1Pool:
        key = (base_url, model.proxy, model.max_connections)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = self._new_pool(base_url, model)
        return pool

    @staticmethod
    def _new_pool(base_url: str, model: ModelConfig) -> Http1Pool:
        from gearshift.providers.proxy import proxy_for

        proxy = proxy_for(base_url, model.proxy)
        if proxy is not None:
            log.info("upstream %s goes through proxy %s", base_url.split("?")[0], proxy.display)
        return Http1Pool(base_url, proxy=proxy, max_connections=model.max_connections)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()


async def post(
    pool: Http1Pool, path: str, body: bytes, headers: dict[str, str], model: ModelConfig
) -> Http1Response:
    """POST and return once the status line and headers are in. Transport failures become
    ``UpstreamTimeout``/``UpstreamError(retryable=True)``; statuses are left to the caller, which
    knows the provider's error shape."""
    traceparent = TRACEPARENT.get()
    if traceparent is not None:  # W3C trace context for the upstream (telemetry/)
        headers = {**headers, "traceparent": traceparent}
    try:
        return await pool.post(
            path,
            body,
            headers,
            connect_timeout=model.connect_timeout_s,
            read_timeout=model.read_timeout_s,
        )
    except TimeoutError:
        via = f" (through proxy {pool.proxy.display})" if pool.proxy is not None else ""
        raise UpstreamTimeout(
            f"{model.name}: no answer from {pool.host_header} within the timeout{via}",
            model=model.name,
        ) from None
    except ProxyRefused as exc:
        # The proxy said no (407 credentials, 403 policy): asking it again will not help.
        raise UpstreamError(
            f"{model.name}: {exc}", upstream_status=502, retryable=False, model=model.name
        ) from None
    except OSError as exc:
        raise UpstreamError(
            f"{model.name}: cannot reach {pool.host_header}: {exc}", model=model.name
        ) from None


async def read_all(response: Http1Response, model: ModelConfig) -> bytes:
    try:
        return await response.read()
    except TimeoutError:
        raise UpstreamTimeout(
            f"{model.name}: the upstream stopped sending mid-response (read timeout)",
            model=model.name,
        ) from None
    except OSError as exc:
        raise UpstreamError(
            f"{model.name}: the upstream connection broke mid-response: {exc}", model=model.name
        ) from None


async def iter_chunks(response: Http1Response, model: ModelConfig) -> AsyncIterator[bytes]:
    """The body as it arrives; a broken or stalled connection becomes ``UpstreamError``."""
    try:
        async for chunk in response.iter_chunks():
            yield chunk
    except TimeoutError:
        raise UpstreamTimeout(
            f"{model.name}: the upstream stream stalled (no bytes within the read timeout)",
            model=model.name,
        ) from None
    except OSError as exc:
        raise UpstreamError(
            f"{model.name}: the upstream stream broke: {exc}", model=model.name
        ) from None


async def drain_for_reuse(response: Http1Response) -> None:
    """After a stream's last event, read the (normally empty) rest of the body so the pooled
    connection is kept for the next call instead of being closed; give up quickly if the
    upstream keeps it open."""

    async def rest() -> None:
        async for _ in response.iter_chunks():
            pass

    with contextlib.suppress(TimeoutError, OSError):
        await asyncio.wait_for(rest(), DRAIN_TIMEOUT_S)


async def shape_checked(
    events: AsyncIterator[StreamEvent], model: ModelConfig
) -> AsyncIterator[StreamEvent]:
    """Pass events through; a decoder tripping over an event of the wrong shape (a field of the
    wrong type) means the upstream's stream is malformed, not that gearshift has a bug."""
    try:
        async for event in events:
            yield event
    except SHAPE_ERRORS as exc:
        raise malformed(model, f"has a stream event of the wrong shape: {exc!r}") from None


async def priced_stream(
    events: AsyncIterator[StreamEvent], request: ChatRequest, model: ModelConfig
) -> AsyncIterator[StreamEvent]:
    """Pass events through; if the upstream ended without any usage (a proxy that strips it, a
    Bedrock stream without its metadata event), estimate it from the text so the stream is
    priced roughly instead of being logged as $0."""
    produced = 0
    async for event in events:
        if isinstance(event, TextDelta):
            produced += len(event.text)
        elif isinstance(event, ToolCallDelta):
            produced += len(event.arguments) + len(event.name or "")
        elif isinstance(event, StreamEnd) and not (
            event.usage.input_tokens or event.usage.output_tokens
        ):
            from gearshift.routing.tokens import estimate_request_tokens

            log.warning("%s: upstream stream reported no usage; tokens estimated", model.name)
            estimate = Usage(estimate_request_tokens(request), max(1, (produced + 3) // 4))
            event = StreamEnd(event.finish_reason, estimate)
        yield event


def json_instruction(response_format: dict[str, Any] | None) -> str:
    """A system-prompt instruction standing in for OpenAI's ``response_format`` on upstreams
    without a JSON mode (Anthropic, Bedrock Converse); '' when no JSON was asked for."""
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return "Respond with a single valid JSON object and nothing else."
    if kind == "json_schema":
        spec = (response_format or {}).get("json_schema") or {}
        schema = orjson.dumps(spec.get("schema") or {}).decode()
        return (
            "Respond with a single valid JSON object and nothing else. "
            f"It must conform to this JSON Schema: {schema}"
        )
    return ""


def tool_input(arguments: str) -> Any:
    """A tool call's JSON arguments as the object Anthropic and Bedrock expect as its input."""
    if not arguments.strip():
        return {}
    parsed = json_or_none(arguments.encode("utf-8"))
    # A model can emit invalid JSON arguments; keep them rather than lose the turn.
    return parsed if isinstance(parsed, dict) else {"_raw_arguments": arguments}


def json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
