"""Gateway fixtures: the fake OpenAI-compatible upstream, the issue's configuration pointed at
it, and a real gearshift (uvicorn on loopback) whose finished ledger records the tests can read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from tests.conftest import UvicornThread
from tests.fakes.openai_server import FakeOpenAIServer

from gearshift.api.app import GearshiftApp, create_app
from gearshift.config import Settings, parse_settings
from gearshift.ledger import open_store
from gearshift.ledger.record import LedgerRecord

LARGE_KEY = "sk-large-fake"


def issue_config(base_url: str, **overrides: Any) -> dict[str, Any]:
    """The configuration from issue 3, verbatim but for the upstream's port."""
    config: dict[str, Any] = {
        "models": [
            {
                "name": "small",
                "provider": "openai",
                "base_url": base_url,
                "tier": 1,
                "price": {"input_per_mtok": 0.25, "output_per_mtok": 1.25},
            },
            {
                "name": "large",
                "provider": "openai",
                "base_url": base_url,
                "model": "large-2025",
                "api_key_env": "LARGE_API_KEY",
                "tier": 3,
                "price": {"input_per_mtok": 15, "output_per_mtok": 75},
            },
        ],
        "routers": [
            {
                "name": "auto",
                "models": ["small", "large"],
                "quality_tolerance": 0.1,
                "fallback": "large",
            }
        ],
        "storage": "sqlite:///./gearshift.db",
    }
    config.update(overrides)
    return config


@dataclass
class Running:
    """A running gearshift and what it recorded."""

    server: UvicornThread
    app: GearshiftApp
    records: list[LedgerRecord] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/v1", api_key="sk-client", max_retries=0, **kwargs
        )

    def ledger_rows(self, ids: list[str] | None = None) -> list[LedgerRecord]:
        """What the ledger database holds (after flushing the writer), oldest first."""
        writer = self.app.gateway.ledger
        assert writer is not None
        writer.flush(10)  # type: ignore[attr-defined]
        with open_store(self.app.settings.storage) as store:
            rows = [store.get(i) for i in ids] if ids is not None else store.fetch()
        return [r for r in rows if r is not None]

    def wait_records(self, n: int, timeout: float = 5.0) -> list[LedgerRecord]:
        import time

        deadline = time.monotonic() + timeout
        while len(self.records) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.records


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def upstream(upstream_server: FakeOpenAIServer) -> FakeOpenAIServer:
    upstream_server.reset()
    return upstream_server


@pytest.fixture
def start_gateway(
    upstream: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Iterator[Callable[..., Running]]:
    monkeypatch.setenv("LARGE_API_KEY", LARGE_KEY)
    started: list[UvicornThread] = []

    def start(config: dict[str, Any] | None = None, **overrides: Any) -> Running:
        data = config or issue_config(upstream.base_url, **overrides)
        data.setdefault("storage", f"sqlite:///{tmp_path}/ledger.db")
        if data["storage"] == "sqlite:///./gearshift.db":
            data["storage"] = f"sqlite:///{tmp_path}/ledger.db"
        settings: Settings = parse_settings(data)
        records: list[LedgerRecord] = []
        app = create_app(settings)  # the real policy engine and ledger writer
        app.gateway.observers.append(records.append)
        server = UvicornThread(app).start()
        started.append(server)
        return Running(server, app, records)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def gateway(start_gateway: Callable[..., Running]) -> Running:
    return start_gateway()
