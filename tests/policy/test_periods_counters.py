"""Calendar periods and the spend counters, in-process and on a real Redis (same assertions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from gearshift.policy.counters import Limit, MemoryCounters, SpendCounters, to_nano
from gearshift.policy.periods import format_reset, period_end, period_id, period_start


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_periods_are_utc_calendar_periods() -> None:
    t = ts(2026, 12, 31, 23, 59)  # a Thursday
    assert period_start(t, "day") == datetime(2026, 12, 31, tzinfo=UTC)
    assert period_start(t, "week") == datetime(2026, 12, 28, tzinfo=UTC)  # Monday
    assert period_start(t, "month") == datetime(2026, 12, 1, tzinfo=UTC)
    assert period_end(t, "month") == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_end(t, "week") == datetime(2027, 1, 4, tzinfo=UTC)
    assert period_id(t, "month") == "2026-12"
    assert period_id(t, "week") == "2026-W53"
    assert period_id(t, "day") == "2026-12-31"
    assert format_reset(t, "day") == "2027-01-01 00:00 UTC"
    assert period_id(ts(2027, 1, 1), "month") == "2027-01"


@pytest.fixture(params=["memory", "redis"])
async def counters(
    request: pytest.FixtureRequest, redis_prefix: str
) -> AsyncIterator[SpendCounters]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    redis_url: str = request.getfixturevalue("redis_url")
    from gearshift.policy.redis_counters import RedisCounters

    c = await RedisCounters.connect(redis_url, redis_prefix)
    yield c
    await c.aclose()


def limit(name: str = "b", usd: float = 1.0, rate: float | None = None) -> Limit:
    return Limit(
        counter=f"budget:{name}:2026-11",
        limit=to_nano(usd),
        ttl_s=3600,
        rate_counter=f"rate:{name}" if rate else None,
        rate_limit=to_nano(rate) if rate else None,
    )


async def test_reserve_then_settle_replaces_estimate_by_actual(counters: SpendCounters) -> None:
    lim = limit(usd=1.0)
    out = await counters.reserve([lim], to_nano(0.3), minute=100)
    assert out.ok and out.used == [to_nano(0.3)]
    assert await counters.used([lim.counter]) == [to_nano(0.3)]
    assert await counters.settle([lim], to_nano(0.3), to_nano(0.1), minute=100) == [to_nano(0.1)]
    assert await counters.used([lim.counter]) == [to_nano(0.1)]


async def test_hard_limit_refuses_when_estimate_does_not_fit(counters: SpendCounters) -> None:
    lim = limit(usd=1.0)
    assert (await counters.reserve([lim], to_nano(0.6), 1)).ok
    out = await counters.reserve([lim], to_nano(0.6), 1)
    assert not out.ok and out.kind == "hard" and out.failed == 0


async def test_reserve_is_all_or_nothing_across_budgets(counters: SpendCounters) -> None:
    roomy, tight = limit("roomy", 10.0), limit("tight", 0.5)
    out = await counters.reserve([roomy, tight], to_nano(0.6), 1)
    assert not out.ok and out.failed == 1
    assert await counters.used([roomy.counter, tight.counter]) == [0, 0]


async def test_concurrent_reservations_never_overshoot(counters: SpendCounters) -> None:
    lim = limit(usd=1.0)
    est = to_nano(0.03)

    async def one() -> bool:
        out = await counters.reserve([lim], est, 1)
        if out.ok:
            await asyncio.sleep(0)
            await counters.settle([lim], est, est, 1)
        return out.ok

    results = await asyncio.gather(*(one() for _ in range(100)))
    assert sum(results) == 33  # floor(1.0 / 0.03)
    assert (await counters.used([lim.counter]))[0] <= lim.limit


async def test_spend_rate_window(counters: SpendCounters) -> None:
    lim = limit(usd=100.0, rate=1.0)
    assert (await counters.reserve([lim], to_nano(0.7), minute=1000)).ok
    await counters.settle([lim], to_nano(0.7), to_nano(0.7), minute=1000)
    out = await counters.reserve([lim], to_nano(0.5), minute=1010)
    assert not out.ok and out.kind == "rate"
    assert out.rate_used == to_nano(0.7)
    assert out.retry_after_s == (1000 + 60 - 1010) * 60  # when minute 1000 leaves the window
    assert (await counters.reserve([lim], to_nano(0.5), minute=1060)).ok


async def test_seed_only_when_absent_and_mark_once(counters: SpendCounters) -> None:
    await counters.seed("budget:s:2026-11", to_nano(2.5), 3600)
    await counters.seed("budget:s:2026-11", to_nano(9.0), 3600)
    assert await counters.used(["budget:s:2026-11"]) == [to_nano(2.5)]
    assert await counters.mark_once("alert:x", 60) is True
    assert await counters.mark_once("alert:x", 60) is False
