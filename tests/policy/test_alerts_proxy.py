"""Budget-alert webhooks go through the same outbound proxy settings as upstream calls."""

from __future__ import annotations

import pytest
from tests.fakes.connect_proxy import FakeConnectProxy
from tests.policy.conftest import WebhookReceiver

from gearshift.policy.alerts import AlertSender


async def _send(url: str) -> AlertSender:
    sender = AlertSender(url)
    sender.send({"message": "budget team-support at 80%", "threshold": "80%"})
    await sender.aclose()
    return sender


async def test_webhook_goes_through_http_proxy_with_credentials(
    webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeConnectProxy(credentials=("ops", "pw")) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url_with("ops", "pw"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        sender = await _send(webhook.url)
    assert sender.sent == 1
    assert proxy.forwarded == [webhook.url]
    assert [a["threshold"] for a in webhook.received] == ["80%"]


async def test_webhook_respects_no_proxy(
    webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeConnectProxy(refuse=403) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        sender = await _send(webhook.url)
    assert sender.sent == 1 and proxy.authorizations == []
    assert len(webhook.received) == 1


async def test_webhook_refused_by_proxy_is_logged_not_raised(
    webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeConnectProxy(refuse=403) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        sender = await _send(webhook.url)
    assert (sender.sent, sender.failed) == (0, 1)
    assert proxy.refused == 1 and webhook.received == []
