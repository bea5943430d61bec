"""Fixtures for the Anthropic and Bedrock dialect and provider tests: fake upstreams on loopback
and dummy AWS credentials (the fake Bedrock verifies signatures made with them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.bedrock_server import FakeBedrock

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
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
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
