"""Routing through the gateway and what happens when upstreams fail: retries, fallbacks along the
decision's ranked list, timeouts, a stream that breaks after bytes flowed, a client that leaves."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import Running, issue_config

CHEAPEST = {"x-gearshift-quality-tolerance": "1"}  # any model within 1.0 of the best: the cheapest
BEST = {"x-gearshift-quality-tolerance": "0"}
HI = [{"role": "user", "content": "Hi"}]


def test_router_tolerance_header_picks_cheapest_or_best(
    gateway: Running, upstream: FakeOpenAIServer
) -> None:
    client = gateway.client()
    cheap = client.chat.completions.with_raw_response.create(
        model="auto", messages=HI, extra_headers=CHEAPEST
    )
    best = client.chat.completions.with_raw_response.create(
        model="auto", messages=HI, extra_headers=BEST
    )
    assert cheap.headers["x-gearshift-model"] == "small"
    assert cheap.headers["x-gearshift-router"] == "auto"
    # The decision explains itself in headers.
    predicted = dict(p.split("=") for p in cheap.headers["x-gearshift-predicted"].split(","))
    assert set(predicted) == {"small", "large"}
    assert all(0 <= float(q) <= 1 for q in predicted.values())
    assert cheap.headers["x-gearshift-tolerance"] == "1"
    assert best.headers["x-gearshift-tolerance"] == "0"
    assert 0 <= float(cheap.headers["x-gearshift-difficulty"]) <= 1
    assert "small" in cheap.headers["x-gearshift-reason"]
    assert best.headers["x-gearshift-model"] == "large"
    assert [b["model"] for b in upstream.bodies()] == ["small", "large-2025"]
    small, large = gateway.wait_records(2)
    # small: 30 * 0.25/M + 12 * 1.25/M; the counterfactual is the router's most capable, large.
    assert small.cost_usd == Decimal("0.0000225")
    assert small.counterfactual_model == "large"
    assert small.counterfactual_cost_usd == Decimal("0.00135")
    assert Decimal(cheap.headers["x-gearshift-saved-usd"]) == Decimal("0.0013275")
    assert small.router == "auto" and small.tolerance == 1.0
    assert set(small.predicted) == {"small", "large"}
    assert large.served_model == "large" and large.chosen_model == "large"
    assert Decimal(best.headers["x-gearshift-saved-usd"]) == 0


@pytest.mark.parametrize("status", [500, 429, 503])
def test_retries_then_falls_back(gateway: Running, upstream: FakeOpenAIServer, status: int) -> None:
    upstream.fail_next(status, times=3)  # small: first try + max_retries (2)
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="auto", messages=HI, extra_headers=CHEAPEST
    )
    assert raw.headers["x-gearshift-model"] == "large"
    assert raw.headers["x-gearshift-fallbacks"] == "small"
    assert [b["model"] for b in upstream.bodies()] == ["small"] * 3 + ["large-2025"]
    [record] = gateway.wait_records(1)
    assert record.chosen_model == "small"
    assert record.served_model == "large"
    assert record.fallbacks == ["small"]
    assert record.outcome == "ok"
    assert record.cost_usd == Decimal("0.00135")


def test_one_retry_recovers_on_the_same_model(gateway: Running, upstream: FakeOpenAIServer) -> None:
    upstream.fail_next(429)
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="auto", messages=HI, extra_headers=CHEAPEST
    )
    assert raw.headers["x-gearshift-model"] == "small"
    assert len(upstream.received) == 2
    assert gateway.wait_records(1)[0].fallbacks == []


def test_retry_after_is_honoured_or_fallen_back_from(
    gateway: Running, upstream: FakeOpenAIServer
) -> None:
    client = gateway.client()
    upstream.okn.retry_after = "0.3"  # short: wait it out on the same model
    upstream.fail_next(429)
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=HI, extra_headers=CHEAPEST
    )
    assert raw.headers["x-gearshift-model"] == "small"
    assert time.monotonic() - started >= 0.3
    upstream.okn.retry_after = "30"  # long: go to the next model now
    upstream.fail_next(429)
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=HI, extra_headers=CHEAPEST
    )
    assert raw.headers["x-gearshift-model"] == "large"
    assert time.monotonic() - started < 5


def test_streaming_falls_back_before_the_first_byte(
    gateway: Running, upstream: FakeOpenAIServer
) -> None:
    upstream.okn.fail_models = {"small": 500}
    with gateway.client().chat.completions.with_streaming_response.create(
        model="auto", messages=HI, stream=True, extra_headers=CHEAPEST
    ) as response:
        assert response.headers["x-gearshift-model"] == "large"
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == "Hello from the fake OpenAI provider."
    [record] = gateway.wait_records(1)
    assert record.fallbacks == ["small"] and record.served_model == "large"
    assert record.stream and record.cost_usd == Decimal("0.00135")


def test_timeout_falls_back(
    start_gateway: Callable[..., Running], upstream: FakeOpenAIServer
) -> None:
    config = issue_config(upstream.base_url)
    config["models"][0].update(read_timeout_s=0.3, max_retries=0)
    gateway = start_gateway(config)
    upstream.okn.hang_s = 3
    upstream.fail_next("timeout")
    started = time.monotonic()
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="auto", messages=HI, extra_headers=CHEAPEST
    )
    assert time.monotonic() - started < 2.5
    assert raw.headers["x-gearshift-model"] == "large"
    assert gateway.wait_records(1)[0].fallbacks == ["small"]


def test_all_candidates_fail_gives_502_in_openai_shape(
    gateway: Running, upstream: FakeOpenAIServer
) -> None:
    upstream.okn.fail_models = {"small": 500, "large-2025": 500}
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client().chat.completions.create(model="auto", messages=HI, extra_headers=CHEAPEST)
    assert caught.value.status_code == 502
    body: Any = caught.value.body
    assert body["code"] == "upstream_error"
    assert "every candidate model failed" in body["message"]
    [record] = gateway.wait_records(1)
    assert record.outcome == "error" and record.status == 502
    assert record.fallbacks == ["small", "large"]
    assert record.served_model is None and record.cost_usd == 0


def test_upstream_client_error_is_not_retried(gateway: Running, upstream: FakeOpenAIServer) -> None:
    upstream.fail_next(400)
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client().chat.completions.create(model="auto", messages=HI, extra_headers=CHEAPEST)
    assert caught.value.status_code == 502
    assert len(upstream.received) == 1


def test_mid_stream_failure_ends_with_an_error_event(
    gateway: Running, upstream: FakeOpenAIServer
) -> None:
    upstream.fail_next("break")
    stream = gateway.client().chat.completions.create(model="small", messages=HI, stream=True)
    received = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            if chunk.choices:
                received += chunk.choices[0].delta.content or ""
    assert received == "Hello from"  # the bytes that flowed before the break reached the client
    assert "small" in str(caught.value)
    [record] = gateway.wait_records(1)
    assert record.outcome == "error" and record.status == 502
    assert record.served_model == "small"


def test_client_disconnect_mid_stream(gateway: Running, upstream: FakeOpenAIServer) -> None:
    upstream.okn.text = " ".join(f"word{i}" for i in range(40))
    upstream.okn.chunk_delay_s = 0.05
    with (
        httpx.Client(base_url=gateway.url) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "small", "messages": HI, "stream": True},
        ) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if "word1" in line:
                break
    [record] = gateway.wait_records(1)
    assert record.outcome == "client_disconnect"
    assert record.status == 499
    assert record.served_model == "small"
    assert record.latency_ms is not None and record.latency_ms < 1500
    # ...and the upstream saw its stream abandoned well before it would have finished (~2 s).
    deadline = time.monotonic() + 1.5
    while upstream.streams_abandoned == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.streams_abandoned == 1


def test_client_disconnect_while_waiting(gateway: Running, upstream: FakeOpenAIServer) -> None:
    upstream.okn.latency_s = 1.5
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "small", "messages": HI},
            timeout=0.3,
        )
    [record] = gateway.wait_records(1)
    assert record.outcome == "client_disconnect"
    assert record.latency_ms is not None and record.latency_ms < 1000


def test_connection_broken_mid_body_is_retried(
    gateway: Running, upstream: FakeOpenAIServer
) -> None:
    upstream.fail_next("break")  # headers and half a body, then the connection drops
    raw = gateway.client().chat.completions.with_raw_response.create(model="small", messages=HI)
    assert raw.parse().choices[0].message.content == "Hello from the fake OpenAI provider."
    assert len(upstream.received) == 2
    [record] = gateway.wait_records(1)
    assert record.outcome == "ok" and record.fallbacks == []


def test_unreachable_upstream_falls_back(
    start_gateway: Callable[..., Running], upstream: FakeOpenAIServer
) -> None:
    from tests.conftest import free_port

    config = issue_config(upstream.base_url)
    config["models"][0]["base_url"] = f"http://127.0.0.1:{free_port()}/v1"  # nobody listens
    gateway = start_gateway(config)
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="auto", messages=HI, extra_headers=CHEAPEST
    )
    assert raw.headers["x-gearshift-model"] == "large"
    [record] = gateway.wait_records(1)
    assert record.fallbacks == ["small"]
