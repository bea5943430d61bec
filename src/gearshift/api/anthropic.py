"""The Anthropic dialect: ``POST /v1/messages``, streaming (named SSE events) or not.

Point an Anthropic SDK's ``base_url`` at gearshift: ``model`` names a router or a configured
model of any provider kind. The caller's key is read from ``x-api-key`` or ``Authorization:
Bearer``. Errors use Anthropic's shape ``{"type": "error", "error": {"type", "message"}}`` and
statuses; a failure after the stream started arrives as an ``error`` event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from gearshift.api import sse
from gearshift.api.anthropic_codec import (
    StreamEncoder,
    error_body,
    error_status_and_type,
    parse_request,
    render_response,
)
from gearshift.api.context import request_context, served_headers, usd
from gearshift.api.gateway_stream import GatewayStream
from gearshift.api.http import (
    Headers,
    LedgerSpec,
    Request,
    Response,
    Routes,
    StreamResponse,
    json_response,
)
from gearshift.api.pipeline import Gateway
from gearshift.chat import ChatRequest, StreamEnd
from gearshift.errors import GearshiftError, NotFound
from gearshift.providers.anthropic import ANTHROPIC_BETA

COUNT_HEADER = b"x-gearshift-token-count"  # "upstream" (exact) or "estimate"


def register(routes: Routes, gateway: Gateway) -> None:
    dialect = AnthropicDialect(gateway)
    routes.add(
        "POST",
        "/v1/messages",
        dialect.messages,
        errors=render_anthropic_error,
        ledger=LedgerSpec("anthropic"),
    )
    routes.add(
        "POST", "/v1/messages/count_tokens", dialect.count_tokens, errors=render_anthropic_error
    )


def render_anthropic_error(exc: GearshiftError, request: Request | None = None) -> Response:
    status, _ = error_status_and_type(exc)
    headers: Headers = []
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    # Anthropic SDKs retry on 529 and 5xx unless told otherwise; a refusal by policy must not be.
    if status in (400, 401, 403, 404, 413) or exc.code == "budget_exceeded":
        headers.append((b"x-should-retry", b"false"))
    return json_response(status, error_body(exc), headers)


class AnthropicDialect:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def messages(self, request: Request) -> Response | StreamResponse:
        chat = _parse(request, request.json())
        tags = {"user": chat.user} if chat.user else None
        ctx = request_context(request, "anthropic", tags)
        message_id = f"msg_{request.request_id.replace('-', '')}"
        if chat.stream:
            stream = await self.gateway.open_stream(chat, ctx)
            headers = [*sse.SSE_HEADERS, *served_headers(stream.served, with_cost=False)]
            return StreamResponse(_events(stream, message_id), 200, headers)
        response, served = await self.gateway.complete(chat, ctx)
        model = served.config or self.gateway.models[served.model]
        if model.provider == "anthropic" and response.raw is not None:
            body = response.raw  # same API upstream: its body as is (thinking blocks and all)
        else:
            body = render_response(response, message_id, served.upstream_model)
        return json_response(200, body, served_headers(served, with_cost=True))

    async def count_tokens(self, request: Request) -> Response:
        """Exact from the upstream when ``model`` is an Anthropic model; otherwise (a router,
        or another provider kind) gearshift's own estimate, marked as such in a header."""
        await self.gateway.check_key(request.bearer_token())
        body = request.json()
        if isinstance(body, dict):
            body = {**body, "max_tokens": 1}  # not part of this API; parse_request wants it
        chat = _parse(request, body)
        model = self.gateway.models.get(chat.model)
        if model is None and chat.model not in self.gateway.router_configs:
            routers, models = self.gateway.known_names()
            raise NotFound(
                f"model {chat.model!r} is neither a router nor a model configured in this "
                f"gateway; routers: {', '.join(routers) or '(none)'}; "
                f"models: {', '.join(models) or '(none)'}",
                param="model",
            )
        if model is not None and model.provider == "anthropic":
            provider, upstream = self.gateway.upstream_for(model)
            count = getattr(provider, "count_tokens", None)
            if count is not None:
                tokens = await count(chat, upstream)
                return json_response(200, {"input_tokens": tokens}, [(COUNT_HEADER, b"upstream")])
        from gearshift.routing.tokens import estimate_request_tokens

        tokens = estimate_request_tokens(chat)
        return json_response(200, {"input_tokens": tokens}, [(COUNT_HEADER, b"estimate")])


def _parse(request: Request, body: object) -> ChatRequest:
    chat = parse_request(body)
    beta = request.header("anthropic-beta")
    if beta:
        # Beta features travel in a header; an Anthropic upstream needs it with the body.
        chat.extra[ANTHROPIC_BETA] = beta
    return chat


async def _events(stream: GatewayStream, message_id: str) -> AsyncIterator[bytes]:
    served = stream.served
    encoder = StreamEncoder(message_id, served.upstream_model)
    # The opening events go out with the first answer event (already in hand): one write.
    pending = encoder.start()
    try:
        async for event in stream:
            out = pending + encoder.encode(event)
            pending = b""
            if isinstance(event, StreamEnd):
                yield out + sse.comment(
                    f"gearshift model={served.model} cost_usd={usd(served.cost_usd)} "
                    f"saved_usd={usd(served.saved_usd)}"
                )
                return
            yield out
    except GearshiftError as exc:
        yield pending + encoder.error(exc)
    finally:
        await stream.aclose()
