"""Spend counters behind budgets and spend-rate limits: the in-process kind and its protocol.

Money is counted in integer nano-USD so replicas sharing Redis add exactly, with no float drift.
A request *reserves* its estimated cost on every budget it falls under, atomically: either all
budgets have room (spent + reserved + estimate <= limit) and all are charged, or none is. When it
finishes it *settles*: the reservation is released and the actual cost added. So concurrent
requests can overshoot a hard limit only by what their actual cost exceeds their estimate.

Spend-rate limits (USD per hour) sum per-minute buckets over the last 60 minutes; a reservation
lands in the bucket of the minute it was made and is corrected there on settle.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

NANO = 1_000_000_000
RATE_WINDOW_MINUTES = 60


def to_nano(usd: float | Decimal) -> int:
    return round(Decimal(str(usd)) * NANO)


def from_nano(nano: int) -> float:
    return nano / NANO


@dataclass(frozen=True, slots=True)
class Limit:
    """One budget's counter for the current period, and optionally its spend-rate window."""

    counter: str  # e.g. "budget:support:2026-11"
    limit: int  # hard limit, nano-USD
    ttl_s: int  # how long a shared counter must outlive its period
    rate_counter: str | None = None  # e.g. "rate:support"
    rate_limit: int | None = None  # nano-USD per hour


@dataclass(slots=True)
class ReserveOutcome:
    ok: bool
    used: list[int]  # spent + reserved per limit, after this reservation (if ok)
    failed: int | None = None  # index of the limit that refused
    kind: Literal["hard", "rate"] | None = None
    rate_used: int = 0  # spend in the last hour on the refusing rate limit
    retry_after_s: float | None = None  # for rate refusals: when enough spend leaves the window


class SpendCounters(Protocol):
    async def reserve(self, limits: list[Limit], estimate: int, minute: int) -> ReserveOutcome: ...

    async def settle(
        self, limits: list[Limit], estimate: int, actual: int, minute: int
    ) -> list[int]:
        """Release the reservation, add the actual cost; returns the spend per limit after."""
        ...

    async def used(self, counters: list[str]) -> list[int]: ...

    async def spent(self, counters: list[str]) -> list[int]: ...

    async def seed(self, counter: str, spent: int, ttl_s: int) -> None: ...

    async def mark_once(self, key: str, ttl_s: int) -> bool: ...

    async def aclose(self) -> None: ...


def rate_retry_after(buckets: dict[int, int], minute: int, estimate: int, limit: int) -> float:
    """Seconds until enough old minute buckets leave the window for ``estimate`` to fit."""
    total = sum(buckets.values())
    for m in sorted(buckets):
        total -= buckets[m]
        if total + estimate <= limit:
            return float(max(1, (m + RATE_WINDOW_MINUTES - minute) * 60))
    return float(RATE_WINDOW_MINUTES * 60)


class MemoryCounters:
    """Counters of one process. asyncio runs one coroutine at a time, so each call is atomic."""

    def __init__(self) -> None:
        self._spent: dict[str, int] = {}
        self._reserved: dict[str, int] = {}
        self._rates: dict[str, dict[int, int]] = {}
        self._marks: set[str] = set()

    def _window(self, rate_counter: str, minute: int) -> dict[int, int]:
        buckets = self._rates.setdefault(rate_counter, {})
        for m in [m for m in buckets if m <= minute - RATE_WINDOW_MINUTES]:
            del buckets[m]
        return buckets

    async def reserve(self, limits: list[Limit], estimate: int, minute: int) -> ReserveOutcome:
        used = []
        for i, lim in enumerate(limits):
            now_used = self._spent.get(lim.counter, 0) + self._reserved.get(lim.counter, 0)
            if now_used + estimate > lim.limit:
                return ReserveOutcome(False, [], failed=i, kind="hard")
            if lim.rate_counter is not None and lim.rate_limit is not None:
                buckets = self._window(lim.rate_counter, minute)
                in_hour = sum(buckets.values())
                if in_hour + estimate > lim.rate_limit:
                    retry = rate_retry_after(buckets, minute, estimate, lim.rate_limit)
                    return ReserveOutcome(False, [], i, "rate", in_hour, retry)
            used.append(now_used + estimate)
        for lim in limits:
            self._reserved[lim.counter] = self._reserved.get(lim.counter, 0) + estimate
            if lim.rate_counter is not None and lim.rate_limit is not None:
                buckets = self._rates[lim.rate_counter]
                buckets[minute] = buckets.get(minute, 0) + estimate
        return ReserveOutcome(True, used)

    async def settle(
        self, limits: list[Limit], estimate: int, actual: int, minute: int
    ) -> list[int]:
        spent = []
        for lim in limits:
            self._reserved[lim.counter] = self._reserved.get(lim.counter, 0) - estimate
            self._spent[lim.counter] = self._spent.get(lim.counter, 0) + actual
            if lim.rate_counter is not None and lim.rate_limit is not None:
                buckets = self._rates.setdefault(lim.rate_counter, {})
                buckets[minute] = buckets.get(minute, 0) + actual - estimate
            spent.append(self._spent[lim.counter])
        return spent

    async def used(self, counters: list[str]) -> list[int]:
        return [self._spent.get(c, 0) + self._reserved.get(c, 0) for c in counters]

    async def spent(self, counters: list[str]) -> list[int]:
        return [self._spent.get(c, 0) for c in counters]

    async def seed(self, counter: str, spent: int, ttl_s: int) -> None:
        self._spent.setdefault(counter, spent)

    async def mark_once(self, key: str, ttl_s: int) -> bool:
        if key in self._marks:
            return False
        self._marks.add(key)
        return True

    async def aclose(self) -> None:
        return None
