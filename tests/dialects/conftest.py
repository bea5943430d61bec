"""Fixtures for the Anthropic and Bedrock dialect and provider tests: fake upstreams on loopback
and dummy AWS credentials (the fake Bedrock verifies signatures made with them)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.conftest import UvicornThread
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.bedrock_server import FakeBedrock
from tests.fakes.openai_server import FakeOpenAIServer

from gearshift.api.app import create_app
from gearshift.api.pipeline import Gateway
from gearshift.config import parse_settings
from gearshift.ledger.record import LedgerRecord

AWS_ACCESS_KEY = "AKIDFAKEGEARSHIFT"
AWS_SECRET_KEY = "fake-secret-key"
ANTHROPIC_KEY = "sk-ant-fake"


@pytest.fixture(scope="session")
def anthropic_upstream() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=ANTHROPIC_KEY) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="session")
def bedrock_upstream() -> Iterator[FakeBedrock]:
    with FakeBedrock(access_key=AWS_ACCESS_KEY, secret_key=AWS_SECRET_KEY) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def fake_anthropic(anthropic_upstream: FakeAnthropic) -> FakeAnthropic:
    anthropic_upstream.reset()
    return anthropic_upstream


@pytest.fixture
def fake_bedrock(bedrock_upstream: FakeBedrock) -> FakeBedrock:
    bedrock_upstream.reset()
    return bedrock_upstream


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials through the standard chain's first link; nothing read from ~/.aws and
    no instance-metadata lookups."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/gearshift-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/gearshift-aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("ANTHROPIC_TEST_KEY", ANTHROPIC_KEY)


# ---- a running gearshift whose models sit on all three fake upstreams ------------------------

# One model per provider kind, priced by config so expected costs are exact.
PRICES: dict[str, dict[str, float]] = {
    "oa": {"input_per_mtok": 0.15, "output_per_mtok": 0.6, "cache_read_per_mtok": 0.075},
    "an": {
        "input_per_mtok": 1,
        "output_per_mtok": 5,
        "cache_read_per_mtok": 0.1,
        "cache_write_per_mtok": 1.25,
    },
    "br": {
        "input_per_mtok": 3,
        "output_per_mtok": 15,
        "cache_read_per_mtok": 0.3,
        "cache_write_per_mtok": 3.75,
    },
}
UPSTREAM_IDS = {"oa": "gpt-fake-mini", "an": "claude-fake-haiku", "br": "amazon.nova-fake-v1:0"}
# model name -> (upstream id, genai-prices provider id)
GENAI_PRICED = {
    "haiku-an": ("claude-3-5-haiku-20241022", "anthropic"),
    "haiku-br": ("anthropic.claude-3-5-haiku-20241022-v1:0", "aws"),
    "o4-oa": ("o4-mini", "openai"),
}
TEXTS = {
    "oa": "Hello from the fake OpenAI provider.",
    "an": "Hello from the fake Anthropic API.",
    "br": "Hello from the fake Bedrock runtime.",
}


def mixed_config(oa_url: str, an_url: str, br_url: str, storage: str) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": "oa",
                "provider": "openai",
                "base_url": oa_url,
                "model": UPSTREAM_IDS["oa"],
                "tier": 1,
                "price": PRICES["oa"],
                "max_retries": 0,
            },
            {
                "name": "an",
                "provider": "anthropic",
                "base_url": an_url,
                "model": UPSTREAM_IDS["an"],
                "api_key_env": "ANTHROPIC_TEST_KEY",
                "tier": 2,
                "price": PRICES["an"],
                "max_retries": 0,
            },
            {
                "name": "br",
                "provider": "bedrock",
                "base_url": br_url,
                "model": UPSTREAM_IDS["br"],
                "region": "us-east-1",
                "tier": 3,
                "price": PRICES["br"],
                "max_retries": 0,
            },
            {
                "name": "an-impatient",
                "provider": "anthropic",
                "base_url": an_url,
                "model": UPSTREAM_IDS["an"],
                "api_key_env": "ANTHROPIC_TEST_KEY",
                "price": PRICES["an"],
                "read_timeout_s": 0.3,
                "max_retries": 0,
            },
            # No price block: priced by genai-prices from the upstream id (offline snapshot).
            {
                "name": "haiku-an",
                "provider": "anthropic",
                "base_url": an_url,
                "model": GENAI_PRICED["haiku-an"][0],
                "api_key_env": "ANTHROPIC_TEST_KEY",
                "max_retries": 0,
            },
            {
                "name": "haiku-br",
                "provider": "bedrock",
                "base_url": br_url,
                "model": GENAI_PRICED["haiku-br"][0],
                "region": "us-east-1",
                "max_retries": 0,
            },
            {
                "name": "o4-oa",
                "provider": "openai",
                "base_url": oa_url,
                "model": GENAI_PRICED["o4-oa"][0],
                "max_retries": 0,
            },
        ],
        "routers": [
            {"name": "auto", "models": ["oa", "an", "br"], "quality_tolerance": 0.1},
            {"name": "oa-an", "models": ["oa", "an"]},
            {"name": "an-br", "models": ["an", "br"]},
            {"name": "br-oa", "models": ["br", "oa"]},
        ],
        "storage": storage,
    }


@dataclass
class Gearshift:
    server: UvicornThread
    records: list[LedgerRecord] = field(default_factory=list)
    storage: str = ""  # the ledger's URL

    @property
    def url(self) -> str:
        return self.server.url

    def wait_records(self, n: int, timeout: float = 5.0) -> list[LedgerRecord]:
        deadline = time.monotonic() + timeout
        while len(self.records) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.records)


@pytest.fixture(scope="session")
def openai_upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def fake_openai(openai_upstream: FakeOpenAIServer) -> FakeOpenAIServer:
    openai_upstream.reset()
    openai_upstream.okn.text = TEXTS["oa"]
    return openai_upstream


@pytest.fixture
def upstreams(
    fake_openai: FakeOpenAIServer, fake_anthropic: FakeAnthropic, fake_bedrock: FakeBedrock
) -> dict[str, Any]:
    fake_anthropic.knobs.text = TEXTS["an"]
    fake_bedrock.knobs.text = TEXTS["br"]
    for fake in (fake_anthropic, fake_bedrock):
        fake.knobs.tool_input = {"city": "Paris"}
    return {"oa": fake_openai, "an": fake_anthropic, "br": fake_bedrock}


@pytest.fixture
def start_gearshift(
    upstreams: dict[str, Any], aws_env: None, tmp_path: Any
) -> Iterator[Callable[..., Gearshift]]:
    """Factory: ``start_gearshift(policy=None, storage=None)`` runs gearshift on the mixed
    configuration (ledger in a fresh SQLite file unless ``storage`` names one)."""
    started: list[Gearshift] = []

    def start(policy: Any = None, storage: str | None = None) -> Gearshift:
        storage = storage or f"sqlite:///{tmp_path}/ledger-{len(started)}.db"
        config = mixed_config(
            upstreams["oa"].base_url, upstreams["an"].url, upstreams["br"].url, storage
        )
        settings = parse_settings(config)
        running = Gearshift(server=None, storage=storage)  # type: ignore[arg-type]
        gateway = Gateway(settings, policy=policy, observers=[running.records.append])
        running.server = UvicornThread(create_app(settings, gateway=gateway)).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.server.stop()


@pytest.fixture
def gearshift(start_gearshift: Callable[..., Gearshift]) -> Gearshift:
    return start_gearshift()


def wait_for(condition: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it is truthy: fake servers record what happened on their own
    threads, possibly just after the client already has its whole answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False
