"""Requests and tokens per minute (``policy.limits``), with the budgets' scopes: a limit counts
every request whose tags match its ``scope`` (``key`` included, so ``{key: key_...}`` limits one
virtual key, ``{team: support}`` a team, ``{}`` the whole gateway).

Windows are UTC minutes. Admission checks every matching limit at once and, only if all have
room, counts the request on all of them (one atomic step: in-process, or one Lua script in Redis
shared by every replica):

- ``rpm``: refused when the minute already holds ``rpm`` requests;
- ``tpm``: refused when the minute's tokens (prompt + output of finished requests) have reached
  ``tpm``; a request's tokens are added when it finishes, to the minute it finishes in.

A refusal is ``RateLimited`` (HTTP 429 in the client's dialect) with ``Retry-After`` set to the
seconds left in the minute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gearshift.config import RateLimitConfig
from gearshift.errors import RateLimited, ServiceUnavailable

Kind = Literal["rpm", "tpm"]


@dataclass(frozen=True, slots=True)
class RateRule:
    name: str
    scope: Mapping[str, str] = field(default_factory=dict)
    rpm: int | None = None
    tpm: int | None = None

    @classmethod
    def from_config(cls, cfg: RateLimitConfig) -> RateRule:
        return cls(cfg.name, dict(cfg.scope), cfg.rpm, cfg.tpm)

    def matches(self, tags: Mapping[str, str]) -> bool:
        return all(tags.get(k) == v for k, v in self.scope.items())

    def counter(self, minute: int) -> str:
        return f"ratelimit:{self.name}:{minute}"

    def describe(self) -> str:
        scope = ",".join(f"{k}={v}" for k, v in self.scope.items()) or "all traffic"
        return f"rate limit {self.name!r} ({scope})"


@dataclass(slots=True)
class TakeOutcome:
    ok: bool
    failed: int | None = None  # index of the refusing rule
    kind: Kind | None = None
    used: int = 0  # the refusing counter's requests or tokens this minute


@dataclass(slots=True)
class RateTicket:
    """What an admitted request counted on, so its tokens can be added when it finishes."""

    rules: list[RateRule]


class MinuteCounters(Protocol):
    async def take(self, rules: list[RateRule], minute: int) -> TakeOutcome: ...

    async def add_tokens(self, rules: list[RateRule], minute: int, tokens: int) -> None: ...


class MemoryMinuteCounters:
    """One process's counters; asyncio runs one coroutine at a time, so each call is atomic."""

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}  # counter -> [requests, tokens]
        self._minute = -1

    def _get(self, counter: str, minute: int) -> list[int]:
        if minute != self._minute:  # forget finished minutes
            self._counts = {k: v for k, v in self._counts.items() if k.endswith(f":{minute}")}
            self._minute = minute
        return self._counts.setdefault(counter, [0, 0])

    async def take(self, rules: list[RateRule], minute: int) -> TakeOutcome:
        counts = [self._get(r.counter(minute), minute) for r in rules]
        for i, (rule, (requests, tokens)) in enumerate(zip(rules, counts, strict=True)):
            if rule.rpm is not None and requests + 1 > rule.rpm:
                return TakeOutcome(False, i, "rpm", requests)
            if rule.tpm is not None and tokens >= rule.tpm:
                return TakeOutcome(False, i, "tpm", tokens)
        for c in counts:
            c[0] += 1
        return TakeOutcome(True)

    async def add_tokens(self, rules: list[RateRule], minute: int, tokens: int) -> None:
        for rule in rules:
            self._get(rule.counter(minute), minute)[1] += tokens


# KEYS: one hash per rule for this minute. ARGV: per rule rpm, tpm (-1 when unset).
# Returns {1} or {0, failed index (1-based), kind, used}.
_TAKE = """
local n = #KEYS
for i = 1, n do
  local vals = redis.call('HMGET', KEYS[i], 'requests', 'tokens')
  local requests, tokens = tonumber(vals[1]) or 0, tonumber(vals[2]) or 0
  local rpm, tpm = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])
  if rpm >= 0 and requests + 1 > rpm then return {0, i, 'rpm', requests} end
  if tpm >= 0 and tokens >= tpm then return {0, i, 'tpm', tokens} end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'requests', 1)
  redis.call('EXPIRE', KEYS[i], 180)
end
return {1}
"""


class RedisMinuteCounters:
    """Counters shared by every replica (the budgets' Redis, same key prefix)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._take = client.register_script(_TAKE)

    async def take(self, rules: list[RateRule], minute: int) -> TakeOutcome:
        keys = [self._prefix + r.counter(minute) for r in rules]
        args: list[int] = []
        for r in rules:
            args += [r.rpm if r.rpm is not None else -1, r.tpm if r.tpm is not None else -1]
        try:
            res = await self._take(keys=keys, args=args)
        except Exception as exc:
            raise ServiceUnavailable(
                f"rate-limit counters are unavailable (Redis: {exc.__class__.__name__}); "
                "the request was not sent to any model, retry shortly"
            ) from None
        if int(res[0]) == 1:
            return TakeOutcome(True)
        kind = res[2].decode() if isinstance(res[2], bytes) else str(res[2])
        return TakeOutcome(False, int(res[1]) - 1, "tpm" if kind == "tpm" else "rpm", int(res[3]))

    async def add_tokens(self, rules: list[RateRule], minute: int, tokens: int) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for r in rules:
                key = self._prefix + r.counter(minute)
                pipe.hincrby(key, "tokens", tokens)
                pipe.expire(key, 180)
            await pipe.execute()


class RateLimiter:
    def __init__(
        self,
        configs: list[RateLimitConfig],
        counters: MinuteCounters,
        clock: Any = time.time,
    ) -> None:
        self.rules = [RateRule.from_config(c) for c in configs]
        self.counters = counters
        self._clock = clock

    def reconfigure(self, configs: list[RateLimitConfig]) -> None:
        """New limits apply from the next request; counts of limits that keep their name stay."""
        self.rules = [RateRule.from_config(c) for c in configs]

    async def admit(
        self, tags: Mapping[str, str], extra: tuple[RateRule, ...] = ()
    ) -> RateTicket | None:
        """Count the request on every limit it falls under (and on ``extra``, a virtual key's
        own limits), or raise ``RateLimited``."""
        rules = [r for r in self.rules if r.matches(tags)] + list(extra)
        if not rules:
            return None
        now = self._clock()
        out = await self.counters.take(rules, int(now // 60))
        if not out.ok:
            assert out.failed is not None
            rule = rules[out.failed]
            retry = float(max(1, math.ceil(60 - now % 60)))
            if out.kind == "rpm":
                what = f"{out.used} requests this minute against rpm {rule.rpm}"
            else:
                what = f"{out.used} tokens this minute against tpm {rule.tpm}"
            raise RateLimited(
                f"{rule.describe()} reached: {what}; retry in {int(retry)} s",
                retry_after_s=retry,
            )
        return RateTicket(rules)

    async def settle(self, ticket: RateTicket, tokens: int) -> None:
        if tokens <= 0 or not any(r.tpm is not None for r in ticket.rules):
            return
        rules = [r for r in ticket.rules if r.tpm is not None]
        await self.counters.add_tokens(rules, int(self._clock() // 60), tokens)
