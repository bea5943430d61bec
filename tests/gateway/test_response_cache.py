"""The response cache through the real openai SDK, on each backend (memory, sqlite, real Redis):
a hit calls no model, costs $0, is one ledger row with outcome cache_hit and its saving, replays
as a stream; errors, tool calls, temperature > 0 and Cache-Control: no-cache are not served from it.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import Running, issue_config
from tests.gateway.test_openai_dialect import WEATHER_TOOL

from gearshift.policy.keys import KeyStore

BACKENDS = ["memory", "sqlite", "redis"]


def cache_block(backend: str, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"ttl_s": 60, "backend": backend, **extra}
    if backend == "sqlite":
        block["path"] = str(tmp_path / "cache.db")
    if backend == "redis":
        url = os.environ.get("GEARSHIFT_TEST_REDIS_URL")
        if not url:
            pytest.skip("GEARSHIFT_TEST_REDIS_URL not set (scripts/services.sh starts Redis)")
        block["redis_url"] = url
    return block


def cached_config(upstream: FakeOpenAIServer, cache: dict[str, Any]) -> dict[str, Any]:
    config = issue_config(upstream.base_url)
    config["routers"][0]["cache"] = cache
    return config


def prompt() -> list[dict[str, str]]:
    # Unique per test: the Redis server outlives a test run.
    return [{"role": "user", "content": f"What is the capital of France? ({uuid.uuid4().hex})"}]


def ask(gs: Running, messages: Any, **kwargs: Any) -> Any:
    return gs.client().chat.completions.with_raw_response.create(
        model="auto", messages=messages, **kwargs
    )


@pytest.fixture(params=BACKENDS)
def cached(
    request: pytest.FixtureRequest,
    start_gateway: Callable[..., Running],
    upstream: FakeOpenAIServer,
    tmp_path: Path,
) -> Running:
    """A gateway whose router ``auto`` caches on each backend in turn."""
    return start_gateway(cached_config(upstream, cache_block(request.param, tmp_path)))


def test_hit_costs_nothing_and_is_recorded(cached: Running, upstream: FakeOpenAIServer) -> None:
    gs = cached
    messages = prompt()
    first = ask(gs, messages)
    assert first.headers["x-gearshift-cache"] == "miss"
    assert Decimal(first.headers["x-gearshift-cost-usd"]) > 0
    second = ask(gs, messages)
    assert upstream.count == 1  # the hit called no model
    assert second.headers["x-gearshift-cache"] == "hit"
    assert second.headers["x-gearshift-cost-usd"] == "0"
    saved = Decimal(second.headers["x-gearshift-saved-usd"])
    assert saved > 0
    answer = second.parse()
    assert answer.choices[0].message.content == first.parse().choices[0].message.content
    assert answer.id != first.parse().id
    rows = gs.ledger_rows([first.headers["x-request-id"], second.headers["x-request-id"]])
    assert [r.outcome for r in rows] == ["ok", "cache_hit"]
    hit = rows[1]
    assert hit.cost_usd == 0 and hit.counterfactual_cost_usd == saved
    assert hit.served_model == rows[0].served_model and hit.router == "auto"
    assert hit.prompt_tokens == 0  # no tokens were billed for it

    # The stream replays from the cache as a stream, with the same cost headers (a hit's cost
    # and saving are known before its first byte, unlike a live stream's).
    raw = ask(gs, messages, stream=True)
    assert raw.headers["x-gearshift-cache"] == "hit"
    assert raw.headers["x-gearshift-cost-usd"] == "0"
    assert Decimal(raw.headers["x-gearshift-saved-usd"]) == saved
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == answer.choices[0].message.content
    assert upstream.count == 1
    streamed_hit = gs.ledger_rows([raw.headers["x-request-id"]])[0]
    assert (streamed_hit.outcome, streamed_hit.counterfactual_cost_usd) == ("cache_hit", saved)


def test_a_streamed_answer_is_stored(cached: Running, upstream: FakeOpenAIServer) -> None:
    gs = cached
    messages = prompt()
    streamed = gs.client().chat.completions.create(model="auto", messages=messages, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    again = ask(gs, messages)
    assert again.headers["x-gearshift-cache"] == "hit"
    assert again.parse().choices[0].message.content == text
    assert upstream.count == 1


def test_sqlite_cache_is_shared_by_two_gateways(
    start_gateway: Callable[..., Running], upstream: FakeOpenAIServer, tmp_path: Path
) -> None:
    """Two processes' worth of gateways on one file (as --workers 2 on one host)."""
    config = cached_config(upstream, cache_block("sqlite", tmp_path))
    one, two = start_gateway(config), start_gateway(config)
    messages = prompt()
    ask(one, messages)
    assert ask(two, messages).headers["x-gearshift-cache"] == "hit"
    assert upstream.count == 1


def test_what_is_never_served_from_the_cache(
    start_gateway: Callable[..., Running], upstream: FakeOpenAIServer, tmp_path: Path
) -> None:
    gs = start_gateway(cached_config(upstream, cache_block("memory", tmp_path)))
    # temperature > max_temperature (0 by default): not cached at all
    messages = prompt()
    assert ask(gs, messages, temperature=0.7).headers["x-gearshift-cache"] == "bypass"
    assert ask(gs, messages, temperature=0.7).headers["x-gearshift-cache"] == "bypass"
    assert upstream.count == 2
    # temperature 0 is cached, and is another request than the unset one
    ask(gs, messages, temperature=0)
    assert ask(gs, messages, temperature=0).headers["x-gearshift-cache"] == "hit"
    assert ask(gs, messages).headers["x-gearshift-cache"] == "miss"
    # a tool call the client must execute is not stored
    upstream.reset()
    tool_prompt = prompt()
    ask(gs, tool_prompt, tools=[WEATHER_TOOL])
    assert ask(gs, tool_prompt, tools=[WEATHER_TOOL]).headers["x-gearshift-cache"] == "miss"
    assert upstream.count == 2
    # an error is not stored: every model fails once, then the same request succeeds upstream
    upstream.reset()
    failing = prompt()
    upstream.okn.fail_models = {"small": 400, "large-2025": 400}
    with pytest.raises(openai.APIStatusError):
        ask(gs, failing)
    upstream.okn.fail_models = {}
    assert ask(gs, failing).headers["x-gearshift-cache"] == "miss"
    # Cache-Control: no-cache skips the lookup (and stores the fresh answer)
    fresh = ask(gs, failing, extra_headers={"Cache-Control": "no-cache"})
    assert fresh.headers["x-gearshift-cache"] == "miss"
    assert upstream.count == 3
    assert ask(gs, failing).headers["x-gearshift-cache"] == "hit"


def test_per_key_and_shared_scopes(
    start_gateway: Callable[..., Running], upstream: FakeOpenAIServer, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path}/ledger.db"
    per_key = cached_config(upstream, cache_block("memory", tmp_path))
    per_key["storage"] = storage
    per_key["policy"] = {"auth": "required"}  # so a key counts once the gateway has loaded it
    gs = start_gateway(per_key)
    store = KeyStore.open(storage)
    try:
        alice, _ = store.create(name="alice")
        bob, _ = store.create(name="bob")
    finally:
        store.close()
    messages = prompt()

    def ask_as(running: Running, key: str) -> str:
        client = openai.OpenAI(base_url=f"{running.url}/v1", api_key=key, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
        return raw.headers["x-gearshift-cache"]

    wait_for_keys(gs, alice)
    assert ask_as(gs, alice) == "miss"
    assert ask_as(gs, bob) == "miss"  # bob never sees alice's answers
    assert ask_as(gs, alice) == "hit"

    shared = cached_config(upstream, cache_block("memory", tmp_path, scope="shared"))
    shared["storage"] = storage
    shared["policy"] = {"auth": "required"}
    gs2 = start_gateway(shared)
    wait_for_keys(gs2, alice)
    assert ask_as(gs2, alice) == "miss"
    assert ask_as(gs2, bob) == "hit"


def wait_for_keys(gs: Running, key: str) -> None:
    """The gateway re-reads the keys table every policy.key_refresh_s."""
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        response = httpx.post(
            f"{gs.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "small", "messages": [{"role": "user", "content": "ping"}]},
        )
        if response.status_code == 200:
            return
        time.sleep(0.1)
    raise TimeoutError("the gateway never accepted the new key")


def test_hits_in_metrics_and_reports(
    start_gateway: Callable[..., Running], upstream: FakeOpenAIServer, tmp_path: Path
) -> None:
    gs = start_gateway(cached_config(upstream, cache_block("memory", tmp_path)))
    messages = prompt()
    ask(gs, messages)
    hit = ask(gs, messages)
    saved = Decimal(hit.headers["x-gearshift-saved-usd"])
    page = httpx.get(f"{gs.url}/metrics").text
    assert re.search(
        r'gearshift_requests_total\{router="auto",model="\w+",outcome="cache_hit"\} 1', page
    )
    assert "gearshift_errors_total{" not in page
    gs.ledger_rows()  # flushed
    report = httpx.get(f"{gs.url}/api/report", params={"by": "outcome"}).json()
    rows = {row["outcome"]: row for row in report["groups"]}
    assert rows["cache_hit"]["requests"] == rows["cache_hit"]["cache_hits"] == 1
    assert report["totals"]["cache_hits"] == 1 and report["totals"]["errors"] == 0
    assert Decimal(str(rows["cache_hit"]["cost_usd"])) == 0
    assert Decimal(str(rows["cache_hit"]["savings_usd"])) == saved
