"""Rate limits (``policy.limits``: rpm / tpm per key, team or tag) through a running gearshift with
the real openai, anthropic and boto3 clients: 429 with ``retry-after`` in each dialect's shape,
scopes that leave other traffic alone, tokens counted per minute, and two replicas sharing one
count through Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import boto3
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from tests.conftest import UvicornThread
from tests.fakes.openai_server import FakeOpenAIServer

from gearshift.api.app import GearshiftApp, create_app
from gearshift.config import parse_settings
from gearshift.errors import ConfigError
from gearshift.ledger.record import LedgerRecord
from gearshift.policy import create_policy
from gearshift.policy.keys import KeyStore

HI = [{"role": "user", "content": "Hi"}]


def fresh_minute() -> None:
    """Counts are per UTC minute: start a test well inside one so it cannot straddle two."""
    left = 60 - time.time() % 60
    if left < 8:
        time.sleep(left + 0.05)


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server  # type: ignore[misc]


class Gs:
    def __init__(self, app: GearshiftApp, server: UvicornThread, storage: str) -> None:
        self.app, self.server, self.storage = app, server, storage
        self.records: list[LedgerRecord] = []
        app.gateway.observers.append(self.records.append)

    def openai(self, key: str = "sk-anything") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.server.url}/v1", api_key=key, max_retries=0)


@pytest.fixture
def start(
    fake_upstream: FakeOpenAIServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Gs]]:
    fake_upstream.reset()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDRATETEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rate-test-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    started: list[UvicornThread] = []

    def run(policy: dict[str, Any], *, ledger: str = "ledger.db", prefix: str = "gs:") -> Gs:
        storage = f"sqlite:///{tmp_path}/{ledger}"
        settings = parse_settings(
            {
                "models": [
                    {
                        "name": "small",
                        "base_url": fake_upstream.base_url,
                        "price": {"input_per_mtok": 0.25, "output_per_mtok": 1.25},
                    }
                ],
                "storage": storage,
                "policy": policy,
            }
        )
        from gearshift.policy.engine import GearshiftPolicy

        app = create_app(settings)
        app.gateway.policy = GearshiftPolicy(settings, redis_prefix=prefix)
        server = UvicornThread(app).start()
        started.append(server)
        return Gs(app, server, storage)

    yield run
    for server in started:
        server.stop()


def tagged(team: str) -> dict[str, Any]:
    return {"extra_headers": {"x-gearshift-tags": f"team={team}"}}


def test_rpm_per_team_openai(start: Callable[..., Gs]) -> None:
    gs = start({"limits": [{"name": "support-rpm", "scope": {"team": "support"}, "rpm": 3}]})
    fresh_minute()
    client = gs.openai()
    for _ in range(3):
        client.chat.completions.create(model="small", messages=HI, **tagged("support"))
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="small", messages=HI, **tagged("support"))
    assert refused.value.status_code == 429
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "rate_limit_exceeded"
    assert "rate limit 'support-rpm' (team=support) reached" in body["message"]
    assert "3 requests this minute against rpm 3" in body["message"]
    # Other teams are not limited by it.
    client.chat.completions.create(model="small", messages=HI, **tagged("sales"))
    rejected = [r for r in gs.records if r.outcome == "rejected"]
    assert len(rejected) == 1 and rejected[0].status == 429
    assert rejected[0].tags["team"] == "support"


def test_rpm_refusals_in_anthropic_and_bedrock_shapes(start: Callable[..., Gs]) -> None:
    gs = start({"limits": [{"name": "everyone", "rpm": 1}]})
    fresh_minute()
    gs.openai().chat.completions.create(model="small", messages=HI)
    client = anthropic.Anthropic(base_url=gs.server.url, api_key="sk-x", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as an:
        client.messages.create(model="small", max_tokens=20, messages=HI)  # type: ignore[arg-type]
    assert int(an.value.response.headers["retry-after"]) >= 1
    error = an.value.body["error"]  # type: ignore[index]
    assert error["type"] == "rate_limit_error" and "rate limit 'everyone'" in error["message"]
    bedrock = boto3.client(
        "bedrock-runtime",
        endpoint_url=gs.server.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    with pytest.raises(ClientError) as br:
        bedrock.converse(modelId="small", messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    response = br.value.response
    assert response["Error"]["Code"] == "ThrottlingException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert int(response["ResponseMetadata"]["HTTPHeaders"]["retry-after"]) >= 1


def test_tpm_counts_finished_requests_tokens(start: Callable[..., Gs]) -> None:
    # Each answer is 30 prompt + 12 completion tokens: 0 < 50 and 42 < 50 admit, 84 refuses.
    gs = start({"limits": [{"name": "tokens", "tpm": 50}]})
    fresh_minute()
    client = gs.openai()
    client.chat.completions.create(model="small", messages=HI)
    client.chat.completions.create(model="small", messages=HI)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="small", messages=HI)
    assert "84 tokens this minute against tpm 50" in str(refused.value)


def test_rpm_per_virtual_key(start: Callable[..., Gs]) -> None:
    limits = [{"name": "one-key", "scope": {"key": "PLACEHOLDER"}, "rpm": 1}]
    gs = start({"auth": "required", "limits": limits})
    store = KeyStore.open(gs.storage)
    try:
        secret, info = store.create(team="support")
        other, _ = store.create(team="support")
    finally:
        store.close()
    # Point the limit at the new key's id (a reload would do the same from the file).
    settings = gs.app.settings.model_copy(deep=True)
    data = settings.model_dump()
    data["policy"]["limits"][0]["scope"] = {"key": info.id}
    gs.app.gateway.policy.reconfigure(parse_settings(data))  # type: ignore[attr-defined]
    fresh_minute()
    deadline = time.monotonic() + 5
    while True:  # the gateway polls the keys table about once a second
        try:
            gs.openai(secret).chat.completions.create(model="small", messages=HI)
            break
        except openai.AuthenticationError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        except openai.RateLimitError:
            raise
    with pytest.raises(openai.RateLimitError):
        gs.openai(secret).chat.completions.create(model="small", messages=HI)
    gs.openai(other).chat.completions.create(model="small", messages=HI)  # another key: not limited


def test_two_replicas_share_one_count_through_redis(
    start: Callable[..., Gs], redis_url: str, redis_prefix: str
) -> None:
    policy = {"redis_url": redis_url, "limits": [{"name": "fleet", "rpm": 5}]}
    one = start(policy, ledger="one.db", prefix=redis_prefix)
    two = start(policy, ledger="two.db", prefix=redis_prefix)
    fresh_minute()
    served = 0
    refused = 0
    for i in range(10):
        replica = one if i % 2 == 0 else two
        try:
            replica.openai().chat.completions.create(model="small", messages=HI)
            served += 1
        except openai.RateLimitError:
            refused += 1
    # Five in the minute across both replicas, not five each.
    assert (served, refused) == (5, 5)
    assert {r.outcome for r in one.records + two.records} == {"ok", "rejected"}
    assert len([r for r in one.records if r.outcome == "ok"]) >= 2
    assert len([r for r in two.records if r.outcome == "ok"]) >= 2


def test_limits_without_redis_refuse_several_workers(tmp_path: Any) -> None:
    settings = parse_settings(
        {
            "server": {"workers": 2},
            "storage": f"sqlite:///{tmp_path}/l.db",
            "policy": {"limits": [{"name": "x", "rpm": 10}]},
        }
    )
    with pytest.raises(ConfigError, match=r"policy\.limits are set"):
        create_policy(settings)


def test_a_limit_needs_rpm_or_tpm() -> None:
    with pytest.raises(ConfigError, match="rate limit 'x' sets neither rpm nor tpm"):
        parse_settings({"policy": {"limits": [{"name": "x"}]}})
