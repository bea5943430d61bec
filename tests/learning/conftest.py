"""The learning loop's loopback world: the fake upstream of tests/fakes/learning_world.py and
real gearshift gateways (uvicorn) on one SQLite ledger."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.conftest import UvicornThread
from tests.fakes.learning_world import LearningWorld, world_config

from gearshift.api.app import GearshiftApp, create_app
from gearshift.config import parse_settings
from gearshift.learning.sampler import Sampler
from gearshift.ledger import open_store
from gearshift.ledger.store import LedgerStore

ENGLISH = [
    "How do I reset my password?",
    "What is the return policy for shoes bought online?",
    "Can you list the office holidays for next year?",
    "Where can I download my invoice from last month?",
    "How do I change the email address on my account?",
    "What time does support open on Saturdays?",
]
GERMAN = [
    "Wie kann ich mein Passwort zurücksetzen, bitte?",
    "Warum ist meine Rechnung nicht angekommen und was kann ich tun?",
    "Ich kann mich nicht anmelden, die Seite ist leer.",
    "Wie ändere ich die E-Mail-Adresse für mein Konto?",
    "Ist der Versand mit DHL kostenlos für die Schweiz?",
    "Kann ich die Bestellung mit PayPal bezahlen?",
]


@dataclass
class Gw:
    server: UvicornThread
    app: GearshiftApp

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, key: str = "none") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0)

    @property
    def sampler(self) -> Sampler:
        observer = self.app.gateway.answer_observer
        assert isinstance(observer, Sampler)
        return observer

    def drain(self, timeout: float = 20.0) -> None:
        """Wait for the sampler's queue to empty and the ledger writer to flush."""
        deadline = time.monotonic() + timeout
        sampler = self.sampler
        while not sampler.idle and time.monotonic() < deadline:
            time.sleep(0.01)
        writer = self.app.gateway.ledger
        assert writer is not None
        writer.flush(10)  # type: ignore[attr-defined]

    def ask(self, prompt: str, *, stream: bool = False, key: str = "none") -> tuple[str, str, str]:
        """(answer text, x-gearshift-model, x-request-id) of one request through the SDK."""
        client = self.client(key)
        messages: Any = [{"role": "user", "content": prompt}]
        if stream:
            with client.chat.completions.with_streaming_response.create(
                model="auto", messages=messages, stream=True
            ) as raw:
                text = "".join(
                    c.choices[0].delta.content or ""
                    for c in raw.parse()
                    if c.choices and c.choices[0].delta
                )
                return text, raw.headers["x-gearshift-model"], raw.headers["x-request-id"]
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
        text = raw.parse().choices[0].message.content or ""
        return text, raw.headers["x-gearshift-model"], raw.headers["x-request-id"]


@pytest.fixture(scope="session")
def world_server() -> Iterator[LearningWorld]:
    with LearningWorld() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def world(world_server: LearningWorld) -> LearningWorld:
    world_server.judge_mode = "ok"
    world_server.reference_fails = False
    world_server.calls.clear()
    return world_server


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture
def start(world: LearningWorld, ledger_url: str) -> Iterator[Callable[..., Gw]]:
    running: list[UvicornThread] = []

    def start_gateway(config: dict[str, Any] | None = None, **learning: Any) -> Gw:
        data = config or world_config(world.base_url, ledger_url, **learning)
        app = create_app(parse_settings(data))
        server = UvicornThread(app).start()
        running.append(server)
        return Gw(server, app)

    yield start_gateway
    for server in running:
        server.stop()


def store_for(url: str) -> LedgerStore:
    return open_store(url)
