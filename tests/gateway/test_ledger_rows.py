"""Every request lands in the ledger exactly once with exact costs: success, fallback, failure,
refusal of an unknown model, stream, disconnect. Same assertions on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal

import httpx
import openai
import pytest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import Running, issue_config

from gearshift.ledger.record import LedgerRecord

POSTGRES_URL = os.environ.get("GEARSHIFT_TEST_POSTGRES_URL")
HI = [{"role": "user", "content": "Hi"}]


def storages() -> list[object]:
    return [
        "sqlite",
        pytest.param(
            "postgresql",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not POSTGRES_URL, reason="GEARSHIFT_TEST_POSTGRES_URL unset"),
            ],
        ),
    ]


@pytest.fixture(params=storages())
def recorded(
    request: pytest.FixtureRequest,
    start_gateway: Callable[..., Running],
    upstream: FakeOpenAIServer,
) -> Running:
    config = issue_config(upstream.base_url)
    if request.param == "postgresql":
        config["storage"] = POSTGRES_URL
    else:
        config.pop("storage")  # the fixture puts a fresh SQLite file in tmp_path
    return start_gateway(config)


def _by_id(gateway: Running, ids: list[str]) -> dict[str, LedgerRecord]:
    rows = gateway.ledger_rows(ids)
    assert len(rows) == len(ids), "every request must be in the ledger exactly once"
    return {r.id: r for r in rows}


def test_rows_and_costs_exact(recorded: Running, upstream: FakeOpenAIServer) -> None:
    client = recorded.client()
    ids: list[str] = []

    upstream.okn.cached_tokens = 10
    upstream.okn.reasoning_tokens = 4
    ok = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=HI,
        extra_headers={"x-gearshift-quality-tolerance": "1", "x-gearshift-tags": "team=support"},
    )
    ids.append(ok.headers["x-request-id"])

    upstream.okn.fail_models = {"small": 500}
    fell_back = client.chat.completions.with_raw_response.create(
        model="auto", messages=HI, extra_headers={"x-gearshift-quality-tolerance": "1"}
    )
    ids.append(fell_back.headers["x-request-id"])

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=HI)
    ids.append(missing.value.response.headers["x-request-id"])

    upstream.okn.fail_models = {"small": 500, "large-2025": 503}
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="small", messages=HI)
    ids.append(failed.value.response.headers["x-request-id"])

    upstream.okn.fail_models = {}
    with client.chat.completions.with_streaming_response.create(
        model="large", messages=HI, stream=True
    ) as streamed:
        for _ in streamed.parse():
            pass
    ids.append(streamed.headers["x-request-id"])

    rows = _by_id(recorded, ids)
    first = rows[ids[0]]
    assert (first.router, first.chosen_model, first.served_model) == ("auto", "small", "small")
    assert first.tags == {"team": "support"}
    assert (first.prompt_tokens, first.completion_tokens) == (30, 12)
    assert (first.cached_tokens, first.reasoning_tokens) == (10, 4)
    # No cache price configured: cached tokens bill at the input rate; reasoning at output's.
    assert first.cost_usd == Decimal("0.0000225")
    assert first.counterfactual_model == "large"
    assert first.counterfactual_cost_usd == Decimal("0.00135")
    assert first.price_source == "config"
    assert first.ttfb_ms is not None and first.latency_ms is not None
    assert first.outcome == "ok" and first.status == 200 and first.deployment == "default"

    second = rows[ids[1]]
    assert second.fallbacks == ["small"] and second.served_model == "large"
    assert second.cost_usd == second.counterfactual_cost_usd == Decimal("0.00135")

    third = rows[ids[2]]
    assert (third.requested_model, third.outcome, third.status) == ("nope", "invalid", 404)

    fourth = rows[ids[3]]
    # "small" failed three attempts in a row above, so it is cooling down: not called again, 503.
    assert (fourth.outcome, fourth.status, fourth.cost_usd) == ("error", 503, Decimal(0))
    assert fourth.error is not None and "cooling down" in fourth.error
    assert fourth.fallbacks == []  # a request for one model has no fallback chain
    assert fourth.deployment is None  # nothing was tried

    fifth = rows[ids[4]]
    assert fifth.stream and fifth.outcome == "ok"
    assert fifth.cost_usd == Decimal("0.00135")  # a stream is priced from the usage it reported


def test_client_disconnect_is_recorded_once(recorded: Running, upstream: FakeOpenAIServer) -> None:
    upstream.okn.latency_s = 1.0
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{recorded.url}/v1/chat/completions",
            json={"model": "small", "messages": HI},
            timeout=0.3,
        )
    [record] = recorded.wait_records(1)
    [row] = recorded.ledger_rows([record.id])
    assert row.outcome == "client_disconnect" and row.status == 499


def test_concurrent_requests_each_recorded_once(
    recorded: Running, upstream: FakeOpenAIServer
) -> None:
    import asyncio

    upstream.okn.latency_s = 0.02

    async def burst() -> list[str]:
        client = openai.AsyncOpenAI(base_url=f"{recorded.url}/v1", api_key="x", max_retries=0)
        async with client:

            async def one(i: int) -> str:
                stream = i % 2 == 1
                if stream:
                    async with client.chat.completions.with_streaming_response.create(
                        model="small", messages=HI, stream=True
                    ) as response:
                        async for _ in await response.parse():
                            pass
                        return response.headers["x-request-id"]
                raw = await client.chat.completions.with_raw_response.create(
                    model="small", messages=HI
                )
                return raw.headers["x-request-id"]

            return await asyncio.gather(*(one(i) for i in range(60)))

    ids = asyncio.run(burst())
    assert len(set(ids)) == 60
    rows = _by_id(recorded, ids)
    assert all(r.outcome == "ok" for r in rows.values())
    assert sum(r.stream for r in rows.values()) == 30
    assert sum(r.cost_usd for r in rows.values()) == 60 * Decimal("0.0000225")
