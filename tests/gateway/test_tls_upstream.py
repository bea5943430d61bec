"""Real providers are HTTPS: the upstream client verifies certificates against the system trust
store (``SSL_CERT_FILE`` can point it at a private CA) and refuses an untrusted one clearly."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import Running, issue_config

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI missing")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_upstream(certificate: tuple[Path, Path]) -> Iterator[FakeOpenAIServer]:
    cert, key = certificate
    server = FakeOpenAIServer()
    server.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.ssl_context.load_cert_chain(cert, key)
    with server:
        yield server


def test_https_upstream_trusted_through_ssl_cert_file(
    tls_upstream: FakeOpenAIServer,
    certificate: tuple[Path, Path],
    start_gateway: Callable[..., Running],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert tls_upstream.base_url.startswith("https://")
    gw = start_gateway(issue_config(tls_upstream.base_url))
    client = gw.client()  # built first: httpx reads SSL_CERT_FILE when it is constructed
    # The gateway builds its TLS context on its first HTTPS call, from the default trust paths.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    reply = client.chat.completions.create(
        model="large", messages=[{"role": "user", "content": "hello over TLS"}]
    )
    assert reply.choices[0].message.content == tls_upstream.okn.text
    chunks = list(
        client.chat.completions.create(
            model="large", messages=[{"role": "user", "content": "stream"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == tls_upstream.okn.text
    assert [r.body["messages"][0]["content"] for r in tls_upstream.received] == [
        "hello over TLS",
        "stream",
    ]


def test_untrusted_https_upstream_is_a_clear_502(
    tls_upstream: FakeOpenAIServer, start_gateway: Callable[..., Running]
) -> None:
    # The system trust store does not know this self-signed certificate.
    gw = start_gateway(issue_config(tls_upstream.base_url))
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(
            model="large", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 502
    assert "certificate" in caught.value.message.lower()
    assert tls_upstream.received == []  # the request never left an unverified connection
