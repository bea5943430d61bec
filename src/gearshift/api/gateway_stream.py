"""``GatewayStream``: a routed request's upstream stream, already producing events, as the
dialects iterate it. It records the request when the stream ends, fails or is closed early (the
client left), prices a stream cut short from what was streamed, and hands the streamed text to
the answer observer and the response cache. Split from ``pipeline.py``, which opens it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from gearshift.chat import ChatRequest, StreamEnd, StreamEvent, TextDelta, Usage
from gearshift.errors import GearshiftError, UpstreamError

if TYPE_CHECKING:
    from gearshift.api.pipeline import Gateway, RequestContext, Served, _Plan
    from gearshift.config import ModelConfig

__all__ = ["CLIENT_CLOSED", "GatewayStream"]

log = logging.getLogger("gearshift.gateway")

# Statuses for outcomes that have no upstream status of their own (499 as nginx uses it).
CLIENT_CLOSED = 499


class GatewayStream:
    """An upstream stream already producing events; iterate it, or ``aclose`` it early."""

    def __init__(
        self,
        gateway: Gateway,
        plan: _Plan,
        ctx: RequestContext,
        served: Served,
        events: AsyncIterator[StreamEvent],
        first: StreamEvent,
        model: ModelConfig,
    ) -> None:
        self.gateway = gateway
        self.served = served
        self._plan = plan
        self._ctx = ctx
        self._events = events
        self._pending: StreamEvent | None = first
        self._model = model
        self._done = False
        self._request: ChatRequest | None = None  # set when the answer observer wants the text
        # The streamed text is kept for the answer observer and for a cache miss to store; a
        # streamed tool call makes the answer unstorable.
        self._collect = plan.cache_key is not None
        self._texts: list[str] = []
        self._tool_calls = False
        # For pricing a stream cut short: the prompt, and the characters handed on so far.
        self.prompt: ChatRequest | None = None
        self._streamed_chars = 0

    def collect_for(self, request: ChatRequest) -> None:
        """Keep the streamed text, to offer it to the gateway's answer observer at the end."""
        self._request = request
        self._collect = True

    def __aiter__(self) -> GatewayStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._done:
            raise StopAsyncIteration
        if self._pending is not None:
            event, self._pending = self._pending, None
        else:
            try:
                event = await anext(self._events)
            except StopAsyncIteration:
                ended = UpstreamError(
                    f"{self._model.name}: the upstream stream ended without finishing",
                    model=self._model.name,
                )
                await self._end_failed(ended)
                raise ended from None
            except UpstreamError as exc:
                await self._end_failed(exc)
                raise
            except asyncio.CancelledError:
                await self.aclose()
                raise
            except Exception as exc:
                await self.aclose(GearshiftError(_internal(exc)))
                raise
        if isinstance(event, StreamEnd):
            self._done = True
            g = self.gateway
            if self._plan.hit is not None:  # replayed from the cache: recorded as a hit
                await g._finish(self._plan)
                return event
            g._succeed(self._plan, self._model, event.usage, _ms_since(self._ctx.started))
            await g._finish(self._plan)
            if self._collect:
                text = "".join(self._texts)
                if self._request is not None:
                    g._offer_answer(self._request, text, self.served)
                await g._store(
                    self._plan,
                    self._model,
                    text,
                    event.finish_reason,
                    self._tool_calls,
                    event.usage,
                )
        else:
            if isinstance(event, TextDelta):
                self._streamed_chars += len(event.text)
            else:
                self._streamed_chars += len(event.arguments) + len(event.name or "")
            if self._collect:
                if isinstance(event, TextDelta):
                    self._texts.append(event.text)
                else:
                    self._tool_calls = True
        return event

    def _charge_partial(self) -> None:
        """A stream cut short (the client left, the upstream broke) still used the upstream:
        its prompt was read and part of an answer generated. Estimate those tokens from the
        prompt and from what was streamed, and price them, rather than record $0."""
        if self._plan.hit is not None or self.prompt is None:
            return
        from gearshift.routing.tokens import estimate_request_tokens

        usage = Usage(
            input_tokens=estimate_request_tokens(self.prompt),
            output_tokens=(self._streamed_chars + 3) // 4,
        )
        record = self._plan.record
        record.prompt_tokens = usage.input_tokens
        record.completion_tokens = usage.output_tokens
        self.gateway._price(self._plan, self._model, usage)

    async def _end_failed(self, exc: UpstreamError) -> None:
        self._done = True
        await _close_quietly(self._events)
        self.gateway._fail(self._plan.record, self._ctx, exc.status, "error", exc.message)
        self._charge_partial()
        await self.gateway._finish(self._plan)

    async def aclose(self, error: GearshiftError | None = None) -> None:
        """Stop early: cancel the upstream call and record the request, as
        ``client_disconnect`` (the client went away) or, given ``error``, as that failure."""
        if self._done:
            return
        self._done = True
        await _close_quietly(self._events)
        record = self._plan.record
        if error is None:
            self.gateway._fail(record, self._ctx, CLIENT_CLOSED, "client_disconnect", "client left")
        else:
            self.gateway._fail(record, self._ctx, error.status, "error", error.message)
        self._charge_partial()
        await self.gateway._finish(self._plan)


async def _close_quietly(events: AsyncIterator[StreamEvent]) -> None:
    close = getattr(events, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except Exception:
        log.debug("closing an upstream stream raised", exc_info=True)


def _internal(exc: BaseException) -> str:
    """The ledger's note for a failure that is a bug of ours, not the upstream's or the client's."""
    return f"internal error: {exc.__class__.__name__}: {exc}"


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
