"""Deployments of one model, cooldowns and health, through the real openai SDK against two fake
upstreams on loopback: load is spread by weight, a failing deployment is moved on from (and then
skipped while it cools down, and probed once after), per-deployment rpm is respected, and the
ledger, /metrics and /healthz/ready say which deployment served or is down."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import Running

from gearshift.config import CooldownConfig, ModelConfig
from gearshift.providers.deployments import build_pool

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def second_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def east(upstream: FakeOpenAIServer) -> FakeOpenAIServer:
    return upstream


@pytest.fixture
def west(second_server: FakeOpenAIServer) -> FakeOpenAIServer:
    second_server.reset()
    return second_server


def two_deployments(
    east: FakeOpenAIServer,
    west: FakeOpenAIServer,
    *,
    cooldown: dict[str, Any] | None = None,
    east_extra: dict[str, Any] | None = None,
    west_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": "gpt",
                "provider": "openai",
                "model": "gpt-up",
                "tier": 2,
                "price": {"input_per_mtok": 1, "output_per_mtok": 2},
                "deployments": [
                    {"name": "east", "base_url": east.base_url, **(east_extra or {})},
                    {"name": "west", "base_url": west.base_url, **(west_extra or {})},
                ],
            },
            {
                "name": "spare",
                "provider": "openai",
                "base_url": west.base_url,
                "tier": 1,
                "price": {"input_per_mtok": 1, "output_per_mtok": 2},
            },
        ],
        "routers": [{"name": "auto", "models": ["gpt"], "fallback": "spare"}],
        "cooldown": cooldown or {},
    }


def served_by(running: Running, n: int) -> Counter[str | None]:
    rows = running.wait_records(n)
    return Counter(r.deployment for r in rows[:n])


def test_load_is_spread_by_weight_and_each_row_names_its_deployment(
    start_gateway: Callable[..., Running], east: FakeOpenAIServer, west: FakeOpenAIServer
) -> None:
    running = start_gateway(
        two_deployments(east, west, east_extra={"weight": 3}, west_extra={"weight": 1})
    )
    client = running.client()
    for _ in range(200):
        answer = client.chat.completions.with_raw_response.create(model="gpt", messages=HI)
        assert answer.headers["x-gearshift-model"] == "gpt"
    counts = served_by(running, 200)
    # Each upstream received exactly the requests the ledger says it served.
    assert counts["east"] == east.count and counts["west"] == west.count
    assert counts["east"] + counts["west"] == 200
    # 3:1 by weight: 150 expected on east; 110..185 is far outside chance (binomial sd ~6).
    assert 110 <= counts["east"] <= 185, counts
    rows = running.ledger_rows()
    assert Counter(r.deployment for r in rows) == counts
    metrics = httpx.get(f"{running.url}/metrics").text
    line = 'gearshift_deployment_requests_total{model="gpt",deployment="east",outcome="ok"}'
    assert f"{line} {counts['east']}" in metrics


def test_a_dead_deployment_is_moved_on_from_then_skipped_then_probed(
    start_gateway: Callable[..., Running], east: FakeOpenAIServer, west: FakeOpenAIServer
) -> None:
    running = start_gateway(two_deployments(east, west, cooldown={"cooldown_s": 60.0}))
    east.okn.fail_models = {"gpt-up": 500}
    client = running.client()
    for _ in range(60):
        answer = client.chat.completions.with_raw_response.create(model="gpt", messages=HI)
        assert answer.headers["x-gearshift-model"] == "gpt"  # never fell back to "spare"
    # Three failed attempts cooled it down; nothing more reached it within the cooldown.
    assert east.count <= 3 and west.count == 60
    rows = running.wait_records(60)
    assert {r.deployment for r in rows} == {"west"} and all(r.outcome == "ok" for r in rows)
    assert all(r.fallbacks == [] for r in rows)

    ready = httpx.get(f"{running.url}/healthz/ready")
    assert ready.status_code == 200  # west still serves
    body = ready.json()
    [down] = body["down"]
    assert (down["model"], down["deployment"], down["state"]) == ("gpt", "east", "cooling_down")
    assert "500" in down["last_error"]
    metrics = httpx.get(f"{running.url}/metrics").text
    assert 'gearshift_deployment_up{model="gpt",deployment="east"} 0' in metrics
    assert 'gearshift_deployment_up{model="gpt",deployment="west"} 1' in metrics
    assert 'gearshift_deployment_cooldowns_total{model="gpt",deployment="east"} 1' in metrics

    # After the cooldown (ended here by hand rather than waiting a minute), one request probes
    # east; it has recovered, so traffic returns to it.
    east.okn.fail_models = {}
    [dead] = [d for d in running.app.gateway.snapshot.pools["gpt"].deployments if d.label == "east"]
    assert dead.cooled_until is not None
    dead.cooled_until = time.monotonic()
    before = east.count
    for _ in range(40):
        client.chat.completions.create(model="gpt", messages=HI)
    assert east.count - before >= 5
    ready = httpx.get(f"{running.url}/healthz/ready").json()
    assert ready["down"] == [] and ready["status"] == "ready"


def test_every_deployment_down_is_not_ready_and_names_what_is_down(
    start_gateway: Callable[..., Running], east: FakeOpenAIServer, west: FakeOpenAIServer
) -> None:
    config = two_deployments(east, west)
    config["routers"][0].pop("fallback")
    running = start_gateway(config)
    east.okn.fail_models = west.okn.fail_models = {"gpt-up": 503}
    client = running.client()
    import openai

    for _ in range(3):
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="gpt", messages=HI)
    attempts = east.count + west.count
    # Both cooled down: the next request is refused at once, without calling either.
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt", messages=HI)
    assert refused.value.status_code == 503
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert "cooling down" in refused.value.message
    assert east.count + west.count == attempts
    ready = httpx.get(f"{running.url}/healthz/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready" and body["routers"]["auto"]["ready"] is False
    assert {(d["model"], d["deployment"]) for d in body["down"]} == {
        ("gpt", "east"),
        ("gpt", "west"),
    }
    assert "router 'auto': no candidate model has a usable deployment" in body["problems"]
    live = httpx.get(f"{running.url}/healthz/live")
    assert live.status_code == 200 and live.json() == {"status": "live"}


def test_a_deployment_at_its_rpm_is_skipped(
    start_gateway: Callable[..., Running], east: FakeOpenAIServer, west: FakeOpenAIServer
) -> None:
    running = start_gateway(
        two_deployments(
            east, west, east_extra={"weight": 1000, "rpm": 4}, west_extra={"weight": 0.001}
        )
    )
    client = running.client()
    for _ in range(10):
        client.chat.completions.create(model="gpt", messages=HI)
    # east (nearly all the weight) takes 4 in this minute, the rest go to west. (If the minute
    # turned during the test, east may have taken up to 4 more.)
    assert 4 <= east.count <= 8 and east.count + west.count == 10


def test_streams_record_their_deployment_and_release_it(
    start_gateway: Callable[..., Running], east: FakeOpenAIServer, west: FakeOpenAIServer
) -> None:
    running = start_gateway(two_deployments(east, west))
    client = running.client()
    for _ in range(6):
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(model="gpt", messages=HI, stream=True)
            if c.choices
        )
        assert text
    rows = running.wait_records(6)
    assert {r.deployment for r in rows} <= {"east", "west"} and all(r.stream for r in rows)
    pool = running.app.gateway.snapshot.pools["gpt"]
    assert [d.in_flight for d in pool.deployments] == [0, 0]


def test_least_in_flight_per_weight_goes_first() -> None:
    model = ModelConfig(
        name="m",
        deployments=[
            {"name": "a", "base_url": "http://a/v1", "weight": 2},  # type: ignore[list-item]
            {"name": "b", "base_url": "http://b/v1", "weight": 1},  # type: ignore[list-item]
        ],
    )
    pool = build_pool(model, CooldownConfig(), lambda view: None)  # type: ignore[arg-type,return-value]
    a, b = pool.deployments
    a.in_flight, b.in_flight = 3, 1  # 1.5 per unit of weight against 1.0
    assert [d.label for d in pool.usable()] == ["b", "a"]
    a.in_flight = 1  # 0.5 against 1.0
    assert [d.label for d in pool.usable()] == ["a", "b"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def one_deployment(cooldown: CooldownConfig) -> tuple[Any, Any, Clock]:
    """A pool of model ``m``'s single deployment on a clock the test moves: (pool, it, clock)."""
    clock = Clock()
    model = ModelConfig(name="m", base_url="http://a/v1")
    pool = build_pool(model, cooldown, lambda view: None, clock=clock)  # type: ignore[arg-type,return-value]
    [d] = pool.deployments
    return pool, d, clock


def test_a_429_storm_cools_down_for_its_retry_after_and_one_probe_at_a_time() -> None:
    from gearshift.errors import UpstreamError

    pool, d, clock = one_deployment(CooldownConfig(failures=3, cooldown_s=10, max_cooldown_s=40))
    storm = UpstreamError("m: upstream answered 429", upstream_status=429)
    storm.retry_after_s = 25.0
    for _ in range(3):
        assert pool.usable() == [d]
        pool.begin(d)
        pool.end(d)
        pool.failed(d, storm)
    assert pool.usable() == [] and d.state(clock.now) == "cooling_down"
    assert d.cooled_until == clock.now + 25.0  # the upstream's Retry-After beats cooldown_s
    clock.now += 25.0
    assert pool.usable() == [d] and d.state(clock.now) == "probe_due"
    assert pool.begin(d) is True  # this attempt is the probe
    assert pool.usable() == []  # others skip it while the probe is in flight
    pool.end(d)
    pool.failed(d, UpstreamError("m: upstream answered 500", upstream_status=500))
    assert d.cooled_until == clock.now + 20.0  # failed probe: twice cooldown_s
    clock.now += 20.0
    assert pool.begin(d) is True
    pool.end(d)
    pool.failed(d, UpstreamError("m: upstream answered 500", upstream_status=500))
    assert d.cooled_until == clock.now + 40.0  # doubled again, at the cap
    clock.now += 40.0
    assert pool.begin(d) is True
    pool.end(d)
    pool.succeeded(d)
    assert d.state(clock.now) == "up" and pool.usable() == [d] and d.consecutive_failures == 0


def test_a_reload_keeps_an_unchanged_deployments_health() -> None:
    from gearshift.errors import UpstreamError

    model = ModelConfig(name="m", base_url="http://a/v1")
    pool = build_pool(model, CooldownConfig(failures=1), lambda view: None)  # type: ignore[arg-type,return-value]
    pool.failed(pool.deployments[0], UpstreamError("m: down"))
    same = build_pool(model, CooldownConfig(failures=1), lambda view: None, pool)  # type: ignore[arg-type,return-value]
    assert same.deployments[0] is pool.deployments[0] and same.usable() == []
    moved = model.model_copy(update={"base_url": "http://b/v1"})
    fresh = build_pool(moved, CooldownConfig(failures=1), lambda view: None, pool)  # type: ignore[arg-type,return-value]
    assert fresh.usable() == fresh.deployments  # a different upstream starts healthy


def test_side_calls_go_to_a_deployment_with_its_own_url(
    start_gateway: Callable[..., Running], east: FakeOpenAIServer, west: FakeOpenAIServer
) -> None:
    # The model itself names no base_url: a side call (token counting, the learning judge) must
    # use a deployment's, not the provider's public default.
    running = start_gateway(two_deployments(east, west))
    gateway = running.app.gateway
    _, upstream = gateway.upstream_for(gateway.models["gpt"])
    assert upstream.base_url in (east.base_url, west.base_url)


def test_failures_in_flight_when_cooled_down_do_not_extend_the_cooldown() -> None:
    """A burst of attempts in flight when the upstream died fails after the deployment is
    already cooling down: those stragglers must not double the period again and again (a 2 s
    restart of the only upstream was refused for minutes); only a failed probe extends it."""
    from gearshift.errors import UpstreamError

    pool, d, clock = one_deployment(CooldownConfig(failures=3, cooldown_s=5, max_cooldown_s=300))
    refused = UpstreamError("m: cannot reach a: connection refused")
    for _ in range(16):  # sixteen concurrent attempts, all begun while it looked healthy
        pool.begin(d)
    for _ in range(16):
        pool.end(d)
        pool.failed(d, refused)
    assert d.cooled_until == clock.now + 5.0  # the first cooldown, not 5 * 2**13 capped
    assert d.cooldowns == 1
    clock.now += 5.0
    assert pool.begin(d) is True  # the probe
    pool.end(d)
    pool.succeeded(d)
    assert pool.usable() == [d] and d.state(clock.now) == "up"
