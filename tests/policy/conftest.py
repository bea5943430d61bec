"""Policy fixtures: an injectable clock, a real webhook receiver on loopback, the real Redis from
scripts/services.sh (skipped when GEARSHIFT_TEST_REDIS_URL is unset), and settings builders."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from gearshift.config import Settings, parse_settings


class FakeClock:
    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.url = ""


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    async def handle(request: web.Request) -> web.Response:
        receiver.received.append(await request.json())
        return web.Response(status=receiver.status, text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    yield receiver
    await runner.cleanup()


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("GEARSHIFT_TEST_REDIS_URL")
    if not url:
        pytest.skip("GEARSHIFT_TEST_REDIS_URL not set (scripts/services.sh starts Redis)")
    return url


@pytest.fixture
def redis_prefix() -> str:
    """Each test gets its own key space in the shared Redis."""
    return f"gs-test-{uuid.uuid4().hex[:10]}:"


def free_port_for_test() -> int:
    """A loopback port nobody listens on (for unreachable-service tests)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def models_config(slow_small: bool = False) -> list[dict[str, Any]]:
    return [
        {
            "name": "small",
            "base_url": "http://127.0.0.1:9/v1",
            "tier": 1,
            "price": {"input_per_mtok": 0.25, "output_per_mtok": 1.25},
        },
        {
            "name": "medium",
            "base_url": "http://127.0.0.1:9/v1",
            "tier": 2,
            "price": {"input_per_mtok": 3, "output_per_mtok": 15},
        },
        {
            "name": "large",
            "base_url": "http://127.0.0.1:9/v1",
            "tier": 3,
            "price": {"input_per_mtok": 15, "output_per_mtok": 75},
        },
    ]


def make_settings(tmp_path: Any, **policy: Any) -> Settings:
    routers = policy.pop("routers", None) or [
        {"name": "auto", "models": ["small", "medium", "large"], "quality_tolerance": 0.05}
    ]
    return parse_settings(
        {
            "models": models_config(),
            "routers": routers,
            "storage": f"sqlite:///{tmp_path}/ledger.db",
            "policy": policy,
        }
    )
