"""Upstream calls through an outbound proxy: HTTPS_PROXY / HTTP_PROXY / NO_PROXY and a model's
``proxy:``, over a real CONNECT proxy on loopback, with the real openai SDK as the client."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.conftest import free_port
from tests.fakes.connect_proxy import FakeConnectProxy
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import LARGE_KEY, Running, issue_config
from tests.gateway.test_tls_upstream import certificate, tls_upstream  # noqa: F401

from gearshift.api.pipeline import Gateway
from gearshift.config import parse_settings
from gearshift.errors import ConfigError
from gearshift.providers.proxy import parse_proxy, proxy_for

ASK = [{"role": "user", "content": "Where is my invoice?"}]


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def with_models(config: dict[str, Any], **fields: Any) -> dict[str, Any]:
    for model in config["models"]:
        model.update(fields)
    return config


def test_https_proxy_tunnels_tls_with_credentials_from_the_url(
    tls_upstream: FakeOpenAIServer,  # noqa: F811
    certificate: tuple[Path, Path],  # noqa: F811
    start_gateway: Callable[..., Running],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeConnectProxy(credentials=("alice", "s3cret p@ss")) as proxy:
        gw = start_gateway(issue_config(tls_upstream.base_url))
        client = gw.client()  # built before the variables: the SDK reads them too
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url_with("alice", "s3cret%20p%40ss"))
        reply = client.chat.completions.create(model="large", messages=ASK)
        assert reply.choices[0].message.content == tls_upstream.okn.text
        chunks = list(client.chat.completions.create(model="large", messages=ASK, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # One tunnel, kept alive for both calls; TLS ran inside it (the fake upstream is HTTPS only).
    assert proxy.tunnels == [f"127.0.0.1:{tls_upstream.port}"]
    assert proxy.authorizations == ["Basic " + base64.b64encode(b"alice:s3cret p@ss").decode()]
    assert tls_upstream.received[0].headers["Authorization"] == f"Bearer {LARGE_KEY}"


def test_http_proxy_and_no_proxy_bypass(
    upstream: FakeOpenAIServer,
    start_gateway: Callable[..., Running],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeConnectProxy() as proxy:
        proxied = start_gateway()
        bypassed = start_gateway()
        clients = proxied.client(), bypassed.client()
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        clients[0].chat.completions.create(model="small", messages=ASK)
        assert proxy.tunnels == [f"127.0.0.1:{upstream.port}"]
        monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
        clients[1].chat.completions.create(model="small", messages=ASK)
        assert len(proxy.tunnels) == 1  # the second gateway went direct
    assert len(upstream.received) == 2


def test_model_proxy_wins_over_the_environment(
    upstream: FakeOpenAIServer,
    start_gateway: Callable[..., Running],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeConnectProxy() as proxy:
        config = issue_config(upstream.base_url)
        config["models"][0]["proxy"] = proxy.url  # small: through this one
        config["models"][1]["proxy"] = "direct"  # large: no proxy at all
        client = start_gateway(config).client()
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing there
        client.chat.completions.create(model="small", messages=ASK)
        client.chat.completions.create(model="large", messages=ASK)
        assert proxy.tunnels == [f"127.0.0.1:{upstream.port}"]
    assert [r.body["model"] for r in upstream.received] == ["small", "large-2025"]


@pytest.mark.parametrize(
    ("refusal", "expected"),
    [
        (FakeConnectProxy(credentials=("alice", "right")), "407 Proxy Authentication Required"),
        (FakeConnectProxy(refuse=403), "403 Forbidden"),
    ],
    ids=["407", "403"],
)
def test_proxy_refusal_is_a_clear_502_naming_the_proxy(
    refusal: FakeConnectProxy,
    expected: str,
    upstream: FakeOpenAIServer,
    start_gateway: Callable[..., Running],
) -> None:
    with refusal as proxy:
        config = with_models(
            issue_config(upstream.base_url), proxy=proxy.url_with("alice", "wrong")
        )
        gw = start_gateway(config)
        with pytest.raises(openai.APIStatusError) as caught:
            gw.client().chat.completions.create(model="large", messages=ASK)
    message = caught.value.message
    assert caught.value.status_code == 502
    assert f"proxy http://127.0.0.1:{proxy.port} refused the tunnel" in message
    assert expected in message
    assert "wrong" not in message and LARGE_KEY not in message
    assert refusal.refused == 1  # refused for good: not retried
    assert upstream.received == []
    (row,) = gw.ledger_rows()
    assert row.status == 502


def test_proxy_that_is_down_is_a_clear_502(
    upstream: FakeOpenAIServer, start_gateway: Callable[..., Running]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    gw = start_gateway(with_models(issue_config(upstream.base_url), proxy=dead, max_retries=0))
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(model="large", messages=ASK)
    assert caught.value.status_code == 502
    assert f"cannot reach proxy {dead}" in caught.value.message
    assert upstream.received == []


def test_proxy_selection_rules() -> None:
    env = {
        "HTTPS_PROXY": "http://u:p@corp:3128",
        "http_proxy": "corp:8080",
        "NO_PROXY": ".internal",
    }
    chosen = proxy_for("https://api.openai.com/v1", env=env)
    assert chosen is not None and (chosen.host, chosen.port) == ("corp", 3128)
    assert chosen.authorization == "Basic " + base64.b64encode(b"u:p").decode()
    assert "p@" not in repr(chosen) and chosen.display == "http://corp:3128"
    plain = proxy_for("http://vllm:8000/v1", env=env)
    assert plain is not None and plain.port == 8080  # scheme-less value read as http://
    assert proxy_for("https://llm.internal/v1", env=env) is None  # NO_PROXY suffix
    assert proxy_for("https://api.openai.com/v1", env={**env, "NO_PROXY": "*"}) is None
    assert proxy_for("https://api.openai.com/v1", "direct", env=env) is None
    assert proxy_for("https://api.openai.com/v1", "http://other:1", env=env) == parse_proxy(
        "http://other:1"
    )
    with pytest.raises(ValueError, match="use http://host:port"):
        parse_proxy("socks5://u:secret@corp:1080")


def test_unusable_proxy_variable_is_a_startup_error(
    upstream: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LARGE_API_KEY", LARGE_KEY)
    monkeypatch.setenv("HTTPS_PROXY", "socks5://ops:secret@corp:1080")
    settings = parse_settings(issue_config(upstream.base_url))
    with pytest.raises(ConfigError, match="HTTPS_PROXY: unsupported proxy 'socks5://corp:1080'"):
        Gateway(settings).check_environment()
    # A model with its own proxy setting does not depend on the variable.
    direct = parse_settings(with_models(issue_config(upstream.base_url), proxy="direct"))
    Gateway(direct).check_environment()
