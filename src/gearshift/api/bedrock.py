"""The Bedrock dialect: ``POST /model/{modelId}/converse`` and ``.../converse-stream`` (and
``invoke`` / ``invoke-with-response-stream`` for Anthropic-format bodies: bedrock_invoke.py).

Point ``boto3.client("bedrock-runtime", endpoint_url=...)`` at gearshift. ``modelId`` may name a
router, a configured model, a configured model's upstream id (``anthropic.claude-...``), or an
ARN (URL-encoded by boto3) whose last path segment is one of those — so a Bedrock prompt-router
ARN is swapped for a gearshift router by changing the endpoint alone; the ARN of one of Bedrock's
default prompt routers (``default-prompt-router/anthropic.claude:1``) names the matching default
router (``bedrock-anthropic-auto``, see quickstart.py). When a router answered, the
response carries ``trace.promptRouter.invokedModelId`` (on the stream's metadata event), as
Bedrock's prompt routers do.

gearshift does not verify the client's SigV4 signature (it holds no AWS secrets): any signature
is accepted. A virtual key can be sent as ``Authorization: Bearer <key>`` (boto3 does this when
``AWS_BEARER_TOKEN_BEDROCK`` is set) or in ``x-api-key``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from gearshift.api.bedrock_codec import (
    StreamEncoder,
    error_status_and_type,
    parse_request,
    render_response,
    router_trace,
)
from gearshift.api.bedrock_invoke import InvokeDialect, eventstream_response
from gearshift.api.context import request_context, served_headers
from gearshift.api.gateway_stream import GatewayStream
from gearshift.api.http import (
    Handler,
    LedgerSpec,
    Request,
    Response,
    Routes,
    StreamResponse,
    json_response,
)
from gearshift.api.pipeline import Gateway, Served
from gearshift.chat import StreamEnd
from gearshift.errors import GearshiftError
from gearshift.quickstart import bedrock_default_router

# An ARN arrives URL-decoded in the ASGI path, so its "/" splits the model id into segments;
# routes for up to three segments cover every Bedrock ARN form (they carry one or two "/").
_MAX_ID_SEGMENTS = 3


def register(routes: Routes, gateway: Gateway) -> None:
    dialect = BedrockDialect(gateway)
    operations: dict[str, Handler] = {
        "converse": dialect.converse,
        "converse-stream": dialect.converse_stream,
        "invoke": dialect.invoke,
        "invoke-with-response-stream": dialect.invoke_stream,
    }
    for segments in range(1, _MAX_ID_SEGMENTS + 1):
        template = "/".join(f"{{modelId{i}}}" for i in range(segments))
        for operation, handler in operations.items():
            routes.add(
                "POST",
                f"/model/{template}/{operation}",
                handler,
                errors=render_bedrock_error,
                ledger=LedgerSpec("bedrock", model_of=dialect.requested_model),
            )


def render_bedrock_error(exc: GearshiftError, request: Request | None = None) -> Response:
    status, kind = error_status_and_type(exc)
    headers = [(b"x-amzn-errortype", kind.encode())]
    if request is not None:
        headers.append((b"x-amzn-requestid", request.request_id.encode()))
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    return json_response(status, {"message": exc.message}, headers)


def model_id_of(request: Request) -> str:
    params = request.path_params
    return "/".join(params[f"modelId{i}"] for i in range(len(params)))


class BedrockDialect:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._invoke = InvokeDialect(gateway)
        # Upstream model id -> configured name; the first configured model wins a shared id.
        self._by_upstream_id: dict[str, str] = {}
        for model in gateway.models.values():
            self._by_upstream_id.setdefault(model.upstream_model, model.name)

    def resolve(self, model_id: str) -> str:
        """The router or model name a Bedrock model id or ARN stands for (unchanged when none:
        the pipeline then answers ResourceNotFoundException naming what is configured)."""
        gateway = self.gateway
        candidates = [model_id]
        if model_id.startswith("arn:"):
            candidates.append(model_id.rsplit("/", 1)[-1])
        for name in candidates:
            if name in gateway.router_configs or name in gateway.models:
                return name
        for name in candidates:
            if name in self._by_upstream_id:
                return self._by_upstream_id[name]
        # Bedrock's own default router of a family (``.../default-prompt-router/meta.llama:1``)
        # stands for the default router of that family (``bedrock-meta-auto``) when there is one.
        return bedrock_default_router(model_id, gateway.router_configs) or model_id

    def requested_model(self, request: Request) -> str:
        return self.resolve(model_id_of(request))

    async def invoke(self, request: Request) -> Response:
        return await self._invoke.invoke(request, self.resolve(model_id_of(request)))

    async def invoke_stream(self, request: Request) -> StreamResponse:
        return await self._invoke.invoke_stream(request, self.resolve(model_id_of(request)))

    async def converse(self, request: Request) -> Response:
        chat = parse_request(request.json(), self.resolve(model_id_of(request)))
        ctx = request_context(request, "bedrock", chat.metadata or None)
        response, served = await self.gateway.complete(chat, ctx)
        latency = (time.perf_counter() - request.started) * 1000.0
        model = served.config or self.gateway.models[served.model]
        invoked = served.model if served.router else None
        if model.provider == "bedrock" and response.raw is not None and "output" in response.raw:
            body = dict(response.raw)  # same API upstream: its body, with our trace
            if invoked:
                trace = {**(body.get("trace") or {}), **router_trace(invoked)}
                body["trace"] = trace
        else:
            body = render_response(response, latency, invoked)
        headers = [
            (b"x-amzn-requestid", request.request_id.encode()),
            *served_headers(served, with_cost=True),
        ]
        return json_response(200, body, headers)

    async def converse_stream(self, request: Request) -> StreamResponse:
        chat = parse_request(request.json(), self.resolve(model_id_of(request)))
        chat.stream = True
        ctx = request_context(request, "bedrock", chat.metadata or None)
        stream = await self.gateway.open_stream(chat, ctx)
        return eventstream_response(request, stream, _frames(stream, request.started))


async def _frames(stream: GatewayStream, started: float) -> AsyncIterator[bytes]:
    served: Served = stream.served
    encoder = StreamEncoder()
    invoked = served.model if served.router else None
    # messageStart goes out with the first answer event (already in hand): one write.
    pending = encoder.start()
    try:
        async for event in stream:
            if isinstance(event, StreamEnd):
                latency = (time.perf_counter() - started) * 1000.0
                yield pending + encoder.finish(event, latency, invoked)
                return
            yield pending + encoder.encode(event)
            pending = b""
    except GearshiftError as exc:
        yield pending + encoder.error(exc)
    finally:
        await stream.aclose()
