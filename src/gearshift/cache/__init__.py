"""The response cache: a router's identical requests answered without calling a model.

Opt-in per router (``routers[].cache``). ``ResponseCache.key(request, key_id)`` hashes the
normalised request (the router or model asked for, the messages, tools and every parameter that
changes the answer; not ``stream``, ``user`` or ``metadata``) and, with ``scope: per-key``, the
caller's key. The pipeline (``api/pipeline.py``) looks the key up after the policy has admitted
the request and before routing; a hit is served from the stored answer, as a stream when the
client asked for one, and recorded as a ledger row with outcome ``cache_hit``, cost 0 and the
saving of not calling the router's most capable model.

What is never stored: failures (only finished answers reach ``put``), answers that are tool
calls the client must execute, answers cut short (``finish_reason`` other than ``stop``), and
requests with a temperature above ``max_temperature`` (0 unless configured; an unset temperature
counts as asking for the answer, not for variety). ``Cache-Control: no-cache`` from the client
skips the lookup (the fresh answer is still stored); ``no-store`` skips storing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import orjson

from gearshift.chat import ChatRequest, ChatResponse, FinishReason, TextPart, Usage
from gearshift.config import CacheConfig, Settings

log = logging.getLogger("gearshift.cache")

# Parameters that change neither the answer nor who may see it.
IGNORED_PARAMS = frozenset(
    {"stream_options", "store", "service_tier", "prompt_cache_key", "safety_identifier"}
)


@dataclass(slots=True, frozen=True)
class CachedAnswer:
    """What a hit needs to answer and to record its saving."""

    model: str  # configured name of the model that gave the answer
    upstream_model: str
    text: str
    finish_reason: FinishReason
    usage: Usage  # of the original call: what a hit did not spend
    counterfactual_model: str | None
    counterfactual_usd: Decimal  # the original call on the router's most capable model

    def to_bytes(self) -> bytes:
        u = self.usage
        return orjson.dumps(
            [
                self.model,
                self.upstream_model,
                self.text,
                self.finish_reason,
                [
                    u.input_tokens,
                    u.output_tokens,
                    u.cache_read_tokens,
                    u.cache_write_tokens,
                    u.reasoning_tokens,
                ],
                self.counterfactual_model,
                str(self.counterfactual_usd),
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CachedAnswer:
        model, upstream, text, finish, usage, cf_model, cf_usd = orjson.loads(data)
        return cls(model, upstream, text, finish, Usage(*usage), cf_model, Decimal(cf_usd))

    def response(self, response_id: str) -> ChatResponse:
        return ChatResponse(
            id=response_id,
            model=self.upstream_model,
            content=[TextPart(self.text)],
            finish_reason=self.finish_reason,
            usage=self.usage,
        )


class CacheBackend(Protocol):
    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, answer: CachedAnswer, ttl_s: float) -> None: ...

    async def aclose(self) -> None: ...


class ResponseCache:
    def __init__(self, router: str, config: CacheConfig, backend: CacheBackend) -> None:
        self.router = router
        self.config = config
        self.backend = backend

    def key(self, request: ChatRequest, key_id: str | None) -> str | None:
        """The request's cache key, or None when it must not be cached (temperature)."""
        temperature = request.temperature
        if temperature is not None and temperature > self.config.max_temperature:
            return None
        scope = (key_id or "") if self.config.scope == "per-key" else "*"
        extra = {k: v for k, v in request.extra.items() if k not in IGNORED_PARAMS}
        if extra.get("n", 1) != 1:
            return None  # several choices: a cached answer holds one
        normalised = orjson.dumps(
            [
                scope,
                request.model,
                request.messages,
                request.tools,
                request.tool_choice,
                request.max_tokens,
                temperature,
                request.top_p,
                request.stop,
                request.response_format,
                extra,
            ],
            default=_bytes_digest,
            option=orjson.OPT_SORT_KEYS,
        )
        return f"{self.router}:{hashlib.sha256(normalised).hexdigest()}"

    async def get(self, key: str) -> CachedAnswer | None:
        try:
            return await self.backend.get(key)
        except Exception:
            # A cache that is down is a miss, never a failed request.
            log.warning("response cache lookup failed (router %s)", self.router, exc_info=True)
            return None

    async def put(self, key: str, answer: CachedAnswer) -> None:
        try:
            await self.backend.put(key, answer, self.config.ttl_s)
        except Exception:
            log.warning("response cache store failed (router %s)", self.router, exc_info=True)


def storable(finish_reason: FinishReason, has_tool_calls: bool) -> bool:
    """Only complete text answers: a tool call is a turn the client must execute."""
    return finish_reason == "stop" and not has_tool_calls


def _bytes_digest(value: Any) -> str:
    if isinstance(value, bytes):  # inline image data: its digest identifies it
        return hashlib.sha256(value).hexdigest()
    raise TypeError(f"cannot normalise {type(value).__name__} for the cache key")


def build_caches(settings: Settings) -> dict[str, ResponseCache]:
    """One cache per router that configures one; backends are imported only when used."""
    from gearshift.cache.backends import backend_for

    return {
        r.name: ResponseCache(r.name, r.cache, backend_for(r.cache, settings))
        for r in settings.routers
        if r.cache is not None
    }


__all__ = ["CacheBackend", "CachedAnswer", "ResponseCache", "build_caches", "storable"]
