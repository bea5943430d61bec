"""The OpenAI Responses API: ``POST /v1/responses``, streaming or not, through the router.

``client.responses.create(model="auto", input=...)`` is parsed into a ``ChatRequest``
(``api/responses_codec.py``) and takes the same path as chat: policies, routing, retries and
fallbacks, pricing, the response cache, one ledger row (dialect ``responses``) and the
``x-gearshift-*`` headers. Errors are OpenAI-shaped. A stream is the Responses event sequence
(``response.created`` ... ``response.output_text.delta`` ... ``response.completed``), ending with
a gearshift SSE comment carrying the cost, as the chat stream does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

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
from gearshift.api.openai import body_tags
from gearshift.api.pipeline import Gateway
from gearshift.api.responses_codec import (
    STATELESS,
    call_item,
    envelope,
    finish,
    message_item,
    parse_request,
    render_response,
    stateful_field,
)
from gearshift.chat import ChatRequest, TextDelta, ToolCall, ToolCallDelta
from gearshift.errors import GearshiftError, InvalidRequest

log = logging.getLogger("gearshift.api.responses")


def register(routes: Routes, gateway: Gateway) -> None:
    dialect = ResponsesDialect(gateway)
    routes.add(
        "POST",
        "/v1/responses",
        dialect.create,
        errors=render_openai_error,
        ledger=LedgerSpec("responses"),
    )


class ResponsesDialect:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def create(self, request: Request) -> Response | StreamResponse:
        chat = parse_request(request.json())
        self._check_state(chat)
        ctx = request_context(request, "responses", body_tags(chat))
        response_id = f"resp_{request.request_id}"
        if chat.stream:
            stream = await self.gateway.open_stream(chat, ctx)
            headers = [*sse.SSE_HEADERS, *served_headers(stream.served, with_cost=False)]
            return StreamResponse(_events(stream, chat, response_id), 200, headers)
        response, served = await self.gateway.complete(chat, ctx)
        if self._passes_through([served.model]) and response.raw is not None:
            body = response.raw  # the upstream's own response object, its id included
        else:
            body = render_response(response, response_id, served.upstream_model, chat)
        return json_response(200, body, served_headers(served, with_cost=True))

    def _passes_through(self, names: list[str]) -> bool:
        models = [self.gateway.models.get(n) for n in names]
        return all(m is not None and m.provider == "openai" and m.responses_api for m in models)

    def _check_state(self, chat: ChatRequest) -> None:
        """``previous_response_id`` only where every model that may answer keeps the state."""
        field = stateful_field(chat.raw or {})
        if field is None:
            return
        router = self.gateway.router_configs.get(chat.model)
        names = (
            [*router.models, *([router.fallback] if router.fallback else [])]
            if router
            else [chat.model]
        )
        if chat.stream or not self._passes_through(names):
            raise InvalidRequest(STATELESS.format(field=field), param=field)


class _Sequence:
    """Named events numbered in order (``sequence_number``), as the Responses stream has them."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, name: str, payload: dict[str, Any]) -> bytes:
        event = sse.event(name, {"type": name, "sequence_number": self.n, **payload})
        self.n += 1
        return event


async def _events(
    stream: GatewayStream, chat: ChatRequest, response_id: str
) -> AsyncIterator[bytes]:
    served = stream.served
    ev = _Sequence()
    body = envelope(response_id, served.upstream_model, chat, "in_progress")
    opening = ev("response.created", {"response": body}) + ev(
        "response.in_progress", {"response": body}
    )
    message_id = f"msg_{response_id}"
    texts: list[str] = []
    text_index: int | None = None  # output position of the message item, once it has text
    calls: dict[int, tuple[int, ToolCall]] = {}  # tool-call index -> (output position, call)
    positions = 0
    try:
        async for event in stream:
            out = opening
            opening = b""
            if isinstance(event, TextDelta):
                if text_index is None:
                    text_index, positions = positions, positions + 1
                    out += ev(
                        "response.output_item.added",
                        {
                            "output_index": text_index,
                            "item": message_item(message_id, "", "in_progress"),
                        },
                    )
                    out += ev(
                        "response.content_part.added",
                        {
                            "item_id": message_id,
                            "output_index": text_index,
                            "content_index": 0,
                            "part": {"type": "output_text", "text": "", "annotations": []},
                        },
                    )
                texts.append(event.text)
                out += ev(
                    "response.output_text.delta",
                    {
                        "item_id": message_id,
                        "output_index": text_index,
                        "content_index": 0,
                        "delta": event.text,
                        "logprobs": [],
                    },
                )
                yield out
            elif isinstance(event, ToolCallDelta):
                found = calls.get(event.index)
                if found is None:
                    call_id = event.id or f"call_{response_id}_{event.index}"
                    found = calls[event.index] = (
                        positions,
                        ToolCall(call_id, event.name or "", ""),
                    )
                    positions += 1
                    out += ev(
                        "response.output_item.added",
                        {
                            "output_index": found[0],
                            "item": call_item(
                                _call_id(response_id, found[0]), found[1], "in_progress"
                            ),
                        },
                    )
                position, call = found
                if event.arguments:
                    call.arguments += event.arguments
                    out += ev(
                        "response.function_call_arguments.delta",
                        {
                            "item_id": _call_id(response_id, position),
                            "output_index": position,
                            "delta": event.arguments,
                        },
                    )
                yield out
            else:
                output: list[dict[str, Any]] = [{} for _ in range(positions)]
                if text_index is not None:
                    text = "".join(texts)
                    where = {"item_id": message_id, "output_index": text_index, "content_index": 0}
                    out += ev("response.output_text.done", {**where, "text": text, "logprobs": []})
                    part = {"type": "output_text", "text": text, "annotations": []}
                    out += ev("response.content_part.done", {**where, "part": part})
                    output[text_index] = message_item(message_id, text)
                    out += ev(
                        "response.output_item.done",
                        {"output_index": text_index, "item": output[text_index]},
                    )
                for position, call in sorted(calls.values(), key=lambda found: found[0]):
                    item_id = _call_id(response_id, position)
                    out += ev(
                        "response.function_call_arguments.done",
                        {"item_id": item_id, "output_index": position, "arguments": call.arguments},
                    )
                    output[position] = call_item(item_id, call)
                    out += ev(
                        "response.output_item.done",
                        {"output_index": position, "item": output[position]},
                    )
                done = finish({**body, "output": output}, event.finish_reason, event.usage)
                name = (
                    "response.completed" if done["status"] == "completed" else "response.incomplete"
                )
                out += ev(name, {"response": done})
                out += sse.comment(
                    f"gearshift model={served.model} cost_usd={usd(served.cost_usd)} "
                    f"saved_usd={usd(served.saved_usd)}"
                )
                yield out
                return
    except GearshiftError as exc:
        yield opening + _error_event(ev, exc)
    except Exception:
        # A bug of ours mid-stream: end the stream well-formed and record it as an error.
        log.exception("stream %s failed", served.request_id)
        internal = GearshiftError(f"internal error; see the gateway log for {served.request_id}")
        await stream.aclose(internal)
        yield opening + _error_event(ev, internal)
    finally:
        await stream.aclose()


def _call_id(response_id: str, position: int) -> str:
    return f"fc_{response_id}_{position}"


def _error_event(ev: _Sequence, exc: GearshiftError) -> bytes:
    """The Responses stream's ``error`` event; its ``error`` member makes the OpenAI SDKs raise."""
    body = openai_error_body(exc)
    return ev("error", {"code": exc.code, "message": exc.message, "param": exc.param, **body})
