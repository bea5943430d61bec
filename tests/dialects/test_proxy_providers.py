"""The Anthropic and Bedrock providers go through an outbound proxy too (same pools and tunnels
as OpenAI-compatible upstreams; SigV4 is signed for the upstream's host, not the proxy's)."""

from __future__ import annotations

import openai
import pytest
from tests.conftest import UvicornThread
from tests.dialects.conftest import ANTHROPIC_KEY
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.bedrock_server import FakeBedrock
from tests.fakes.connect_proxy import FakeConnectProxy

from gearshift.api.app import create_app
from gearshift.config import parse_settings


@pytest.mark.usefixtures("aws_env")
def test_anthropic_and_bedrock_through_https_proxy_variable(
    fake_anthropic: FakeAnthropic,
    fake_bedrock: FakeBedrock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: object,
) -> None:
    monkeypatch.setenv("ANTHROPIC_TEST_KEY", ANTHROPIC_KEY)
    settings = parse_settings(
        {
            "models": [
                {
                    "name": "an",
                    "provider": "anthropic",
                    "base_url": fake_anthropic.url,
                    "model": "claude-haiku-4-5",
                    "api_key_env": "ANTHROPIC_TEST_KEY",
                },
                {
                    "name": "br",
                    "provider": "bedrock",
                    "base_url": fake_bedrock.url,
                    "model": "us.amazon.nova-lite-v1:0",
                    "region": "us-east-1",
                },
            ],
            "storage": f"sqlite:///{tmp_path}/ledger.db",
        }
    )
    with (
        FakeConnectProxy(credentials=("ops", "pw")) as proxy,
        UvicornThread(create_app(settings)) as server,
    ):
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
        monkeypatch.setenv("HTTP_PROXY", proxy.url_with("ops", "pw"))
        for model in ("an", "br"):
            reply = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Hi"}]
            )
            assert reply.choices[0].message.content
    assert sorted(proxy.tunnels) == sorted(
        [f"127.0.0.1:{fake_anthropic.port}", f"127.0.0.1:{fake_bedrock.port}"]
    )
    assert fake_bedrock.regions[-1] == "us-east-1"  # the signature checked out at the upstream
    assert fake_anthropic.received[-1].headers["x-api-key"] == ANTHROPIC_KEY
