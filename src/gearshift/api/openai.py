"""The OpenAI dialect: ``POST /v1/chat/completions`` (streaming or not) and ``GET /v1/models``.

Point an OpenAI SDK's ``base_url`` at gearshift and nothing else changes: ``model`` names a router
(``"auto"``) or a configured model; the answer comes back in OpenAI's shape, with the served model
and its cost in ``x-gearshift-*`` headers (streams carry the cost in a final SSE comment).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import orjson

from gearshift.api import sse
from gearshift.api.context import request_context, served_headers, usd
from gearshift.api.gateway_stream import GatewayStream
from gearshift.api.http import (
    LedgerSpec,
    Request,
    Response,
    Routes,
    StreamResponse,
    json_response,
    openai_error_body,
    render_openai_error,
)
from gearshift.api.openai_codec import parse_request, render_response, usage_body
from gearshift.api.pipeline import Gateway
from gearshift.chat import ChatRequest, TextDelta, ToolCallDelta
from gearshift.errors import GearshiftError, InvalidRequest, NotFound

log = logging.getLogger("gearshift.api.openai")


def register(routes: Routes, gateway: Gateway) -> None:
    dialect = OpenAIDialect(gateway)
    rows = LedgerSpec("openai")
    routes.add(
        "POST",
        "/v1/chat/completions",
        dialect.chat_completions,
        errors=render_openai_error,
        ledger=rows,
    )
    routes.add(
        "POST", "/v1/embeddings", dialect.embeddings, errors=render_openai_error, ledger=rows
    )
    routes.add("GET", "/v1/models", dialect.list_models, errors=render_openai_error)
    routes.add("GET", "/v1/models/{model}", dialect.get_model, errors=render_openai_error)


class OpenAIDialect:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._created = int(time.time())

    async def chat_completions(self, request: Request) -> Response | StreamResponse:
        chat = parse_request(request.json())
        ctx = request_context(request, "openai", body_tags(chat))
        if chat.stream:
            stream = await self.gateway.open_stream(chat, ctx)
            include_usage = _wants_usage(chat)
            headers = [*sse.SSE_HEADERS, *served_headers(stream.served, with_cost=False)]
            return StreamResponse(_chunks(stream, chat, include_usage), 200, headers)
        response, served = await self.gateway.complete(chat, ctx)
        model = served.config or self.gateway.models[served.model]
        if model.provider == "openai" and response.raw is not None:
            # Same API upstream: return its body as is (logprobs, fingerprints and all).
            body = response.raw
        else:
            body = render_response(response, request.request_id, served.upstream_model)
        return json_response(200, body, served_headers(served, with_cost=True))

    async def embeddings(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise InvalidRequest(
                "'model' is required and must be a non-empty string", param="model"
            )
        if "input" not in body:
            raise InvalidRequest("'input' is required", param="input")
        user = body.get("user")
        ctx = request_context(request, "openai", {"user": user} if isinstance(user, str) else None)
        data, served = await self.gateway.embed(body, ctx)
        return json_response(200, data, served_headers(served, with_cost=True))

    async def list_models(self, request: Request) -> Response:
        await self.gateway.check_key(request.bearer_token())
        routers, models = self.gateway.known_names()
        data = [self._model_entry(name) for name in (*routers, *models)]
        return json_response(200, {"object": "list", "data": data})

    async def get_model(self, request: Request) -> Response:
        await self.gateway.check_key(request.bearer_token())
        name = unquote(request.path_params["model"])
        if name not in self.gateway.router_configs and name not in self.gateway.models:
            raise NotFound(f"no router or model named {name!r} in this gateway", param="model")
        return json_response(200, self._model_entry(name))

    def _model_entry(self, name: str) -> dict[str, Any]:
        model = self.gateway.models.get(name)
        owner = model.provider if model is not None else "gearshift-router"
        return {"id": name, "object": "model", "created": self._created, "owned_by": owner}


def body_tags(chat: ChatRequest) -> dict[str, str]:
    """Attribution tags from the body: every ``metadata`` entry, and ``user`` as tag ``user``."""
    tags = dict(chat.metadata)
    if chat.user:
        tags.setdefault("user", chat.user)
    return tags


def _wants_usage(chat: ChatRequest) -> bool:
    options = (chat.raw or {}).get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def _chunks(
    stream: GatewayStream, chat: ChatRequest, include_usage: bool
) -> AsyncIterator[bytes]:
    """Stream events -> ``chat.completion.chunk`` events, ending with ``[DONE]``; a mid-stream
    upstream failure ends with an ``{"error": ...}`` event, which the OpenAI SDKs raise."""
    served = stream.served
    base: dict[str, Any] = {
        "id": f"chatcmpl-{served.request_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": served.upstream_model,
    }

    # Every chunk shares its envelope: serialise it once and splice each delta in (a long answer
    # streams hundreds of chunks).
    head = b"data: " + orjson.dumps(base)[:-1] + b',"choices":[{"index":0,"delta":'
    tail_open = b',"logprobs":null,"finish_reason":null}]}\n\n'

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        if finish is None:
            return head + orjson.dumps(delta) + tail_open
        return sse.data(
            {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        )

    # The role-only opening chunk goes out with the first content, and the closing events
    # together: fewer writes, and the first byte the client sees already carries text.
    opening = chunk({"role": "assistant", "content": ""})
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                out = head + b'{"content":' + orjson.dumps(event.text) + b"}" + tail_open
            elif isinstance(event, ToolCallDelta):
                call: dict[str, Any] = {"index": event.index}
                if event.id is not None:
                    call["id"] = event.id
                    call["type"] = "function"
                fn: dict[str, Any] = {"arguments": event.arguments}
                if event.name is not None:
                    fn["name"] = event.name
                call["function"] = fn
                out = chunk({"tool_calls": [call]})
            else:
                closing = [chunk({}, event.finish_reason)]
                if include_usage:
                    closing.append(
                        sse.data({**base, "choices": [], "usage": usage_body(event.usage)})
                    )
                closing.append(
                    sse.comment(
                        f"gearshift model={served.model} cost_usd={usd(served.cost_usd)} "
                        f"saved_usd={usd(served.saved_usd)}"
                    )
                )
                closing.append(sse.DONE)
                yield opening + b"".join(closing)
                return
            yield opening + out
            opening = b""
    except GearshiftError as exc:
        yield sse.data(openai_error_body(exc))
    except Exception:
        # A bug of ours mid-stream: end the stream well-formed and record it as an error.
        log.exception("stream %s failed", served.request_id)
        internal = GearshiftError(f"internal error; see the gateway log for {served.request_id}")
        await stream.aclose(internal)
        yield sse.data(openai_error_body(internal))
    finally:
        await stream.aclose()
