"""Budgets through the policy engine: soft and hard limits, key budgets, UTC period resets with an
injected clock, alerts to a real webhook receiver on loopback, spend-rate limits, seeding from the
ledger, and the same budget shared by two engines through a real Redis."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.policy.conftest import FakeClock, WebhookReceiver, make_settings

from gearshift.errors import BudgetExceeded, RateLimited
from gearshift.ledger.record import LedgerRecord
from gearshift.policy.contract import Admission, Caller
from gearshift.policy.engine import GearshiftPolicy
from gearshift.policy.keys import KeyStore

_ids = itertools.count()


def record(
    cost: str, *, model: str = "auto", served: str = "small", ts: float = 0.0, **kw: Any
) -> LedgerRecord:
    return LedgerRecord(
        id=f"r{next(_ids)}",
        ts=ts,
        dialect="openai",
        requested_model=model,
        router=model if model == "auto" else None,
        served_model=served,
        cost_usd=Decimal(cost),
        **kw,
    )


async def serve(
    policy: GearshiftPolicy,
    cost: str,
    tags: dict[str, str] | None = None,
    caller: Caller | None = None,
) -> Admission:
    router = policy.settings.router("auto")
    adm = await policy.admit(router, "auto", tags or {}, caller or Caller())
    await policy.settle(adm, record(cost))
    return adm


def team_budget(**kw: Any) -> dict[str, Any]:
    return {
        "name": "support-monthly",
        "scope": {"team": "support"},
        "period": "month",
        "limit_usd": 1.0,
        **kw,
    }


async def test_hard_limit_refuses_naming_budget_and_reset(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, budgets=[team_budget()], reserve_usd=0.1)
    policy = GearshiftPolicy(settings, clock=clock, seed_from_ledger=False)
    try:
        for _ in range(10):
            await serve(policy, "0.1", {"team": "support"})
        with pytest.raises(BudgetExceeded) as exc:
            await serve(policy, "0.1", {"team": "support"})
        err = exc.value
        assert err.status == 429
        assert err.message.startswith(  # spent up to the limit: exhausted
            "budget 'support-monthly' (team=support) is exhausted: $1.0000 of $1.00 spent"
        )
        assert "resets at 2026-12-01 00:00 UTC" in err.message
        expected = datetime(2026, 12, 1, tzinfo=UTC).timestamp() - clock()
        assert err.retry_after_s == pytest.approx(expected)
        # Other teams are not under this budget.
        await serve(policy, "0.1", {"team": "sales"})
        # A new month is a new budget.
        clock.set(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
        await serve(policy, "0.1", {"team": "support"})
    finally:
        await policy.aclose()


async def test_a_small_limit_is_not_rounded_to_cents(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(
        tmp_path, budgets=[team_budget(limit_usd=0.004, scope={})], reserve_usd=0.003
    )
    policy = GearshiftPolicy(settings, clock=clock, seed_from_ledger=False)
    try:
        await serve(policy, "0.003")
        with pytest.raises(BudgetExceeded) as exc:
            await serve(policy, "0.003")
        assert "> $0.004;" in exc.value.message  # was "of $0.00"
    finally:
        await policy.aclose()


async def test_soft_limit_routes_to_lighter_models(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, budgets=[team_budget(soft_limit_usd=0.5)], reserve_usd=0.1)
    policy = GearshiftPolicy(settings, clock=clock, seed_from_ledger=False)
    try:
        first = await serve(policy, "0.1", {"team": "support"})
        assert first.allowed is None and first.notes == []
        for _ in range(5):
            adm = await serve(policy, "0.1", {"team": "support"})
        assert adm.allowed is not None and set(adm.allowed) == {"small", "medium"}
        assert any("soft limit" in n and "support-monthly" in n for n in adm.notes)
    finally:
        await policy.aclose()


async def test_key_budget_and_key_tags_cannot_be_overridden(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = make_settings(tmp_path, budgets=[team_budget(limit_usd=100.0)], reserve_usd=0.1)
    store = KeyStore.open(settings.storage)
    secret, info = store.create(team="support", budget=(0.3, "day"))
    policy = GearshiftPolicy(settings, clock=clock, seed_from_ledger=False)
    try:
        caller = await policy.authenticate(secret)
        for _ in range(3):
            await serve(policy, "0.1", {"team": "marketing"}, caller)
        with pytest.raises(BudgetExceeded) as exc:
            await serve(policy, "0.1", {}, caller)
        assert f"key:{info.id}" in exc.value.message and "resets at 2026-11-29 00:00 UTC" in (
            exc.value.message
        )
        status = {b["budget"]: b for b in await policy.budgets_status()}
        # The header said team=marketing, but the key's team is what the budget counts.
        assert status["support-monthly"]["spent_usd"] == pytest.approx(0.3)
        clock.advance(86_400)  # the key's daily budget resets
        await serve(policy, "0.1", {}, caller)
    finally:
        await policy.aclose()
        store.close()


async def test_alerts_once_per_threshold_per_period(
    tmp_path: Path, clock: FakeClock, webhook: WebhookReceiver
) -> None:
    settings = make_settings(
        tmp_path, budgets=[team_budget()], alert_webhook=webhook.url, reserve_usd=0.1
    )
    policy = GearshiftPolicy(settings, clock=clock, seed_from_ledger=False)
    try:
        for _ in range(10):
            await serve(policy, "0.1", {"team": "support"})
        with pytest.raises(BudgetExceeded):
            await serve(policy, "0.1", {"team": "support"})
        await asyncio.sleep(0.05)
        await policy.alerts.drain()
        got = sorted((a["budget"], a["threshold"]) for a in webhook.received)
        assert got == [  # each exactly once (POSTs run concurrently, so in any order)
            ("support-monthly", "100%"),
            ("support-monthly", "50%"),
            ("support-monthly", "80%"),
            ("support-monthly", "exhausted"),
        ]
        [first] = [a for a in webhook.received if a["threshold"] == "50%"]
        assert first["spent_usd"] == pytest.approx(0.5) and first["limit_usd"] == 1.0
        assert first["resets_at"] == "2026-12-01 00:00 UTC"
        # A new period alerts again.
        clock.set(datetime(2026, 12, 2, tzinfo=UTC))
        for _ in range(5):
            await serve(policy, "0.1", {"team": "support"})
        await asyncio.sleep(0.05)
        await policy.alerts.drain()
        assert [a["threshold"] for a in webhook.received[4:]] == ["50%"]
    finally:
        await policy.aclose()


async def test_refusal_before_the_limit_says_would_be_exceeded_not_exhausted(
    tmp_path: Path, clock: FakeClock, webhook: WebhookReceiver
) -> None:
    """Spend + the next request's estimate past the limit refuses the request, but the budget
    is not used up: neither the message nor the alert may call it exhausted."""
    settings = make_settings(
        tmp_path, budgets=[team_budget()], alert_webhook=webhook.url, reserve_usd=0.1
    )
    policy = GearshiftPolicy(settings, clock=clock, seed_from_ledger=False)
    try:
        await serve(policy, "0.2", {"team": "support"})
        await serve(policy, "0.45", {"team": "support"})  # spent $0.65; next estimate $0.45
        with pytest.raises(BudgetExceeded) as exc:
            await serve(policy, "0.1", {"team": "support"})
        message = exc.value.message
        assert "exhausted" not in message
        assert message == (
            "budget 'support-monthly' (team=support) would be exceeded: $0.6500 spent this month"
            " + ~$0.4500 estimated for this request > $1.00; it resets at 2026-12-01 00:00 UTC"
        )
        await asyncio.sleep(0.05)
        await policy.alerts.drain()
        refusals = [a for a in webhook.received if a["threshold"] not in ("50%", "80%", "100%")]
        assert [(a["threshold"], a["message"]) for a in refusals] == [("refused", message)]
        assert refusals[0]["spent_usd"] == pytest.approx(0.65)
    finally:
        await policy.aclose()


async def test_failing_webhook_is_logged_and_never_blocks(
    tmp_path: Path, clock: FakeClock, webhook: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.status = 500
    settings = make_settings(
        tmp_path, budgets=[team_budget()], alert_webhook=webhook.url, reserve_usd=0.1
    )
    policy = GearshiftPolicy(settings, clock=clock, seed_from_ledger=False)
    try:
        for _ in range(6):
            await serve(policy, "0.1", {"team": "support"})
        await asyncio.sleep(0.05)
        await policy.alerts.drain()
        assert policy.alerts.failed == 1
        assert any("alert webhook answered HTTP 500" in r.getMessage() for r in caplog.records)
    finally:
        await policy.aclose()


async def test_spend_rate_limit_stops_a_surge(tmp_path: Path, clock: FakeClock) -> None:
    budget = {"name": "all", "limit_usd": 1000.0, "max_usd_per_hour": 0.5}
    settings = make_settings(tmp_path, budgets=[budget], reserve_usd=0.1)
    policy = GearshiftPolicy(settings, clock=clock, seed_from_ledger=False)
    try:
        for _ in range(5):
            await serve(policy, "0.1")
            clock.advance(60)
        with pytest.raises(RateLimited) as exc:
            await serve(policy, "0.1")
        assert not isinstance(exc.value, BudgetExceeded)
        assert "spend-rate limit" in exc.value.message and "0.50/hour" in exc.value.message
        assert exc.value.retry_after_s == pytest.approx(55 * 60, abs=60)
        clock.advance(3600)
        await serve(policy, "0.1")
    finally:
        await policy.aclose()


async def test_counters_are_seeded_from_the_ledger(tmp_path: Path, clock: FakeClock) -> None:
    from gearshift.ledger.store import open_store

    settings = make_settings(tmp_path, budgets=[team_budget()], reserve_usd=0.1)
    store = open_store(settings.storage)
    now = clock()
    store.insert_many(
        [
            record("0.7", ts=now - 3600, tags={"team": "support"}),
            record("0.2", ts=now - 3600, tags={"team": "sales"}),
            record(
                "5.0", ts=datetime(2026, 10, 31, tzinfo=UTC).timestamp(), tags={"team": "support"}
            ),
        ]
    )
    store.close()
    policy = GearshiftPolicy(settings, clock=clock)
    try:
        for _ in range(3):  # 0.7 already spent this month (October's 5.0 is not)
            await serve(policy, "0.1", {"team": "support"})
        with pytest.raises(BudgetExceeded) as exc:
            await serve(policy, "0.1", {"team": "support"})
        assert "$1.0000 of $1.00" in exc.value.message
    finally:
        await policy.aclose()


@pytest.mark.redis
async def test_two_replicas_share_one_budget_through_redis(
    tmp_path: Path, clock: FakeClock, redis_url: str, redis_prefix: str
) -> None:
    settings = make_settings(
        tmp_path, budgets=[team_budget()], redis_url=redis_url, reserve_usd=0.03
    )
    replicas = [
        GearshiftPolicy(settings, clock=clock, redis_prefix=redis_prefix, seed_from_ledger=False)
        for _ in range(2)
    ]
    try:

        async def client(i: int) -> int:
            served = 0
            policy = replicas[i % 2]
            while True:
                router = settings.router("auto")
                try:
                    adm = await policy.admit(router, "auto", {"team": "support"}, Caller())
                except BudgetExceeded:
                    return served
                await asyncio.sleep(0.001)
                await policy.settle(adm, record("0.03"))
                served += 1

        served = await asyncio.gather(*(client(i) for i in range(20)))
        assert sum(served) == 33  # floor(1.00 / 0.03): no overshoot at all
        for p in replicas:
            await p.drain()  # Redis settlements run off the request path
        spent = [b["spent_usd"] for b in await replicas[0].budgets_status()]
        assert spent == [pytest.approx(0.99)]
    finally:
        for p in replicas:
            await p.aclose()


async def test_a_burst_before_any_cost_is_known_waits_instead_of_refusing(
    tmp_path: Path, clock: FakeClock, webhook: WebhookReceiver
) -> None:
    # 30 requests at once each reserve the default $0.10 on a $1 budget: only 10 fit at first,
    # but they cost $0.01 each, so every one of them is served once earlier ones settle.
    settings = make_settings(
        tmp_path, budgets=[team_budget()], reserve_usd=0.1, alert_webhook=webhook.url
    )
    policy = GearshiftPolicy(settings, clock=clock, seed_from_ledger=False)
    router = settings.router("auto")

    async def one() -> None:
        adm = await policy.admit(router, "auto", {"team": "support"}, Caller())
        await asyncio.sleep(0.05)
        await policy.settle(adm, record("0.01"))

    try:
        await asyncio.gather(*(one() for _ in range(30)))
        [status] = await policy.budgets_status()
        assert status["spent_usd"] == pytest.approx(0.3)
        await policy.alerts.drain()
        assert webhook.received == []  # reservations reached 100%, spend never reached 50%
    finally:
        await policy.aclose()


@pytest.mark.redis
async def test_redis_lost_at_run_time_refuses_with_503(
    tmp_path: Path, clock: FakeClock, redis_url: str
) -> None:
    import shutil
    import subprocess

    from tests.policy.conftest import free_port_for_test

    from gearshift.errors import ServiceUnavailable

    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server not installed")
    port = free_port_for_test()
    server = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        settings = make_settings(
            tmp_path, budgets=[team_budget()], redis_url=f"redis://127.0.0.1:{port}/0"
        )
        policy = GearshiftPolicy(settings, clock=clock, seed_from_ledger=False)
        for _ in range(50):  # wait for the server to accept connections
            try:
                await policy.start()
                break
            except Exception:
                await asyncio.sleep(0.1)
        await serve(policy, "0.01", {"team": "support"})
        server.terminate()
        server.wait(10)
        with pytest.raises(ServiceUnavailable) as exc:
            await serve(policy, "0.01", {"team": "support"})
        assert exc.value.status == 503 and "budget counters are unavailable" in exc.value.message
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(10)
        await policy.aclose()


@pytest.mark.postgres
def test_seeding_reads_a_postgresql_ledger() -> None:
    import os
    import secrets

    import psycopg

    from gearshift.ledger.store import open_store
    from gearshift.policy.seed import spent_since

    admin = os.environ.get("GEARSHIFT_TEST_POSTGRES_URL")
    if not admin:
        pytest.skip("GEARSHIFT_TEST_POSTGRES_URL not set")
    name = f"gs_policy_seed_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        store = open_store(url)
        store.insert_many(
            [
                record("0.25", ts=1000.0, tags={"team": "support"}, key_id="key_a"),
                record("0.50", ts=2000.0, tags={"team": "support"}),
                record("4.00", ts=2000.0, tags={"team": "sales"}, key_id="key_a"),
            ]
        )
        store.close()
        got = spent_since(
            url,
            [
                ({"team": "support"}, 0.0),
                ({"team": "support"}, 1500.0),
                ({"key": "key_a"}, 0.0),
                ({}, 0.0),
            ],
        )
        assert got == [750_000_000, 500_000_000, 4_250_000_000, 4_750_000_000]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
