"""An unproven deployment takes one request at a time (a half-open circuit): a concurrent burst at
a model with one of two deployments dead costs exactly one attempt at the dead one per cooldown
period, counted at the fake upstream itself; a healthy model, or a model's only usable
deployment, still takes full concurrency. Real gearshift on loopback, the real openai SDK from
many threads at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import Running
from tests.gateway.test_deployments import Clock

from gearshift.config import CooldownConfig, ModelConfig
from gearshift.errors import UpstreamError
from gearshift.providers.deployments import Deployment, build_pool

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def other_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def dead(upstream: FakeOpenAIServer) -> FakeOpenAIServer:
    # Answers 504 after 0.3 s: long enough that a burst arrives while its first attempt is out.
    upstream.okn.fail_models = {"gpt-up": "timeout"}
    upstream.okn.hang_s = 0.3
    return upstream


@pytest.fixture
def alive(other_server: FakeOpenAIServer) -> FakeOpenAIServer:
    other_server.reset()
    return other_server


def config(dead: FakeOpenAIServer, alive: FakeOpenAIServer, **cooldown: Any) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": "gpt",
                "provider": "openai",
                "model": "gpt-up",
                "price": {"input_per_mtok": 1, "output_per_mtok": 2},
                "deployments": [
                    {"name": "dead", "base_url": dead.base_url},
                    {"name": "alive", "base_url": alive.base_url},
                ],
            }
        ],
        # A long trial wait: on a loaded machine the live deployment's first answer may take
        # longer than the default 2 s, after which waiting requests would go anywhere.
        "cooldown": {"cooldown_s": 60.0, "trial_wait_s": 30.0, **cooldown},
    }


def burst(running: Running, n: int, model: str = "gpt") -> list[str]:
    """``n`` requests at once from ``n`` threads, each with its own openai client; the model
    each answer names."""
    clients = [running.client(timeout=20) for _ in range(n)]

    def one(i: int) -> str:
        answer = clients[i].chat.completions.with_raw_response.create(model=model, messages=HI)
        return answer.headers["x-gearshift-model"]

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def pool_deployment(running: Running, label: str) -> Deployment:
    [d] = [d for d in running.app.gateway.snapshot.pools["gpt"].deployments if d.label == label]
    return d


def test_a_burst_costs_one_attempt_at_the_dead_deployment_per_cooldown_period(
    start_gateway: Callable[..., Running], dead: FakeOpenAIServer, alive: FakeOpenAIServer
) -> None:
    running = start_gateway(config(dead, alive, failures=1))
    assert burst(running, 32) == ["gpt"] * 32  # every request served, none by a fallback
    assert dead.count == 1 and dead.max_in_flight == 1
    assert alive.count == 32
    assert pool_deployment(running, "dead").state(time.monotonic()) == "cooling_down"
    assert burst(running, 32) == ["gpt"] * 32
    assert dead.count == 1  # skipped for the rest of the period

    # The period ends (by hand rather than waiting a minute): the next burst probes it once.
    pool_deployment(running, "dead").cooled_until = time.monotonic()
    assert burst(running, 32) == ["gpt"] * 32
    assert dead.count == 2 and dead.max_in_flight == 1
    assert pool_deployment(running, "dead").state(time.monotonic()) == "cooling_down"


def test_consecutive_failures_before_a_cooldown_are_one_at_a_time(
    start_gateway: Callable[..., Running], dead: FakeOpenAIServer, alive: FakeOpenAIServer
) -> None:
    running = start_gateway(config(dead, alive))  # the default: 3 failures cool it down
    deployment = pool_deployment(running, "dead")
    sent = 0
    while deployment.cooled_until is None and sent < 32 * 20:
        assert burst(running, 32) == ["gpt"] * 32
        sent += 32
    assert deployment.cooled_until is not None
    assert dead.count == 3 and dead.max_in_flight == 1
    burst(running, 32)
    assert dead.count == 3


def test_a_models_only_deployment_takes_full_concurrency_from_the_start(
    start_gateway: Callable[..., Running], alive: FakeOpenAIServer
) -> None:
    alive.okn.latency_s = 0.5
    running = start_gateway(
        {
            "models": [
                {
                    "name": "gpt",
                    "provider": "openai",
                    "base_url": alive.base_url,
                    "price": {"input_per_mtok": 1, "output_per_mtok": 2},
                }
            ]
        }
    )
    assert burst(running, 16) == ["gpt"] * 16
    # Unproven at start, but with no other deployment to go to it is never held to one request.
    assert alive.max_in_flight >= 8


def test_two_healthy_deployments_take_full_concurrency_once_proven(
    start_gateway: Callable[..., Running], upstream: FakeOpenAIServer, alive: FakeOpenAIServer
) -> None:
    upstream.okn.latency_s = alive.okn.latency_s = 0.3
    running = start_gateway(config(upstream, alive))
    assert burst(running, 16) == ["gpt"] * 16  # at start: one trial each, the rest wait for one
    upstream.reset()
    alive.reset()
    upstream.okn.latency_s = alive.okn.latency_s = 0.3
    assert burst(running, 32) == ["gpt"] * 32
    assert upstream.count + alive.count == 32
    assert upstream.max_in_flight + alive.max_in_flight >= 16


def two_unproven(clock: Callable[[], float]) -> tuple[Any, Deployment, Deployment]:
    model = ModelConfig.model_validate(
        {
            "name": "m",
            "deployments": [
                {"name": "a", "base_url": "http://a/v1"},
                {"name": "b", "base_url": "http://b/v1"},
            ],
        }
    )
    pool = build_pool(
        model,
        CooldownConfig(failures=1, trial_wait_s=2.0),
        lambda view: None,  # type: ignore[arg-type,return-value]
        clock=clock,
    )
    a, b = pool.deployments
    return pool, a, b


def test_on_trial_deployments_make_a_request_wait_then_go_anyway() -> None:
    clock = Clock()
    pool, a, b = two_unproven(clock)
    pool.begin(a)
    pool.begin(b)  # both on trial
    choices = pool.attempts(0)
    assert next(choices) == 2.0  # wait up to trial_wait_s for a verdict
    clock.now += 0.5
    assert next(choices) == 1.5  # still on trial: the rest of the wait
    clock.now += 1.5
    assert next(choices) in (a, b)  # waited long enough: go to one anyway

    # A success proves a deployment: it takes any number at once, the other stays on trial.
    pool.end(a)
    pool.succeeded(a)
    pool.begin(a)
    pool.begin(a)
    choices = pool.attempts(0)
    assert next(choices) is a
    assert next(choices) == 2.0  # if a fails, b is still on trial: wait for its verdict


def test_the_only_usable_deployment_is_never_held_back() -> None:
    clock = Clock()
    pool, a, b = two_unproven(clock)
    pool.begin(a)
    pool.end(a)
    pool.failed(a, UpstreamError("m: upstream answered 500"))  # failures=1: a cools down
    pool.begin(b)  # b unproven with one in flight, but nothing else may take the request
    assert list(pool.attempts(0)) == [b]


def test_a_verdict_wakes_the_waiting_requests() -> None:
    async def scenario() -> float:
        pool, a, b = two_unproven(time.monotonic)
        pool.begin(a)
        pool.begin(b)
        started = time.monotonic()
        waiting = asyncio.ensure_future(pool.until_verdict(30.0))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        pool.end(b)
        pool.succeeded(b)
        await asyncio.wait_for(waiting, 5.0)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 5.0
