"""Bedrock InvokeModel and InvokeModelWithResponseStream, for bodies in the Anthropic Messages
format (``anthropic_version``, as Claude on Bedrock takes them; what LangChain's ChatBedrock and
many boto3 scripts send). Other model families' native bodies are refused with a pointer to
Converse, which gearshift speaks for every model.

The request is parsed as an Anthropic Messages request, so it can be routed to any provider kind
(an Anthropic upstream gets the body as is); the answer is an Anthropic message, and the stream is
Anthropic's stream events, each wrapped in an event-stream ``chunk`` (base64 JSON), the last one
carrying ``amazon-bedrock-invocationMetrics`` as Bedrock's do.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gearshift.api import anthropic_codec
from gearshift.api.bedrock_codec import StreamEncoder as ConverseEncoder
from gearshift.api.context import request_context, served_headers
from gearshift.api.eventstream import encode_event
from gearshift.api.gateway_stream import GatewayStream
from gearshift.api.http import Headers, Request, Response, StreamResponse, json_response
from gearshift.api.pipeline import Gateway
from gearshift.chat import ChatRequest, StreamEnd, Usage
from gearshift.errors import GearshiftError, InvalidRequest

VERSION_FIELD = "anthropic_version"
EVENTSTREAM_CONTENT = (b"content-type", b"application/vnd.amazon.eventstream")


def parse_invoke_body(body: Any, model: str) -> ChatRequest:
    if not isinstance(body, dict) or VERSION_FIELD not in body:
        raise InvalidRequest(
            "gearshift serves InvokeModel for bodies in the Anthropic Messages format (with "
            "anthropic_version, as Claude on Bedrock takes them); for other model families "
            "use Converse, which gearshift speaks for every model"
        )
    messages_body = {k: v for k, v in body.items() if k != VERSION_FIELD}
    messages_body["model"] = model
    return anthropic_codec.parse_request(messages_body)


def metrics(usage: Usage, latency_ms: float, first_byte_ms: float) -> dict[str, int]:
    return {
        "inputTokenCount": anthropic_codec.usage_body(usage)["input_tokens"],
        "outputTokenCount": usage.output_tokens,
        "invocationLatency": round(latency_ms),
        "firstByteLatency": round(first_byte_ms),
    }


def _chunk(event: dict[str, Any]) -> bytes:
    payload = {"bytes": base64.b64encode(orjson.dumps(event)).decode("ascii")}
    return encode_event("chunk", orjson.dumps(payload))


class InvokeDialect:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def invoke(self, request: Request, model: str) -> Response:
        chat = parse_invoke_body(request.json(), model)
        ctx = request_context(request, "bedrock", {"user": chat.user} if chat.user else None)
        response, served = await self.gateway.complete(chat, ctx)
        latency = (time.perf_counter() - request.started) * 1000.0
        upstream = served.config or self.gateway.models[served.model]
        if upstream.provider == "anthropic" and response.raw is not None:
            body = response.raw  # an Anthropic answer, as Claude on Bedrock gives it
        else:
            message_id = f"msg_bdrk_{request.request_id.replace('-', '')}"
            body = anthropic_codec.render_response(response, message_id, served.upstream_model)
        usage = anthropic_codec.usage_body(response.usage)
        headers: Headers = [
            (b"x-amzn-requestid", request.request_id.encode()),
            (b"x-amzn-bedrock-input-token-count", str(usage["input_tokens"]).encode()),
            (b"x-amzn-bedrock-output-token-count", str(usage["output_tokens"]).encode()),
            (b"x-amzn-bedrock-invocation-latency", str(round(latency)).encode()),
            *served_headers(served, with_cost=True),
        ]
        return json_response(200, body, headers)

    async def invoke_stream(self, request: Request, model: str) -> StreamResponse:
        chat = parse_invoke_body(request.json(), model)
        chat.stream = True
        ctx = request_context(request, "bedrock", {"user": chat.user} if chat.user else None)
        stream = await self.gateway.open_stream(chat, ctx)
        return eventstream_response(request, stream, _chunks(stream, request.started))


def eventstream_response(
    request: Request, stream: GatewayStream, frames: AsyncIterator[bytes]
) -> StreamResponse:
    """A Bedrock streaming answer (InvokeModel or Converse): AWS event-stream frames, the request
    id and the served-model headers (no cost: it is known only at the end of the stream)."""
    headers = [
        EVENTSTREAM_CONTENT,
        (b"x-amzn-requestid", request.request_id.encode()),
        *served_headers(stream.served, with_cost=False),
    ]
    return StreamResponse(frames, 200, headers)


async def _chunks(stream: GatewayStream, started: float) -> AsyncIterator[bytes]:
    message_id = f"msg_bdrk_{stream.served.request_id.replace('-', '')}"
    encoder = anthropic_codec.StreamEncoder(message_id, stream.served.upstream_model)
    first_byte_ms = (time.perf_counter() - started) * 1000.0
    # The opening events go out with the first answer event (already in hand): one write.
    pending = b"".join(_chunk(e) for e in encoder.start_events())
    try:
        async for event in stream:
            events = encoder.events(event)
            if isinstance(event, StreamEnd):
                latency = (time.perf_counter() - started) * 1000.0
                events[-1]["amazon-bedrock-invocationMetrics"] = metrics(
                    event.usage, latency, first_byte_ms
                )
            yield pending + b"".join(_chunk(e) for e in events)
            pending = b""
            if isinstance(event, StreamEnd):
                return
    except GearshiftError as exc:
        yield pending + ConverseEncoder.error(exc)
    finally:
        await stream.aclose()
