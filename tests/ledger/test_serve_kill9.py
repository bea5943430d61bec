"""``kill -9`` of a real ``gearshift serve`` under load, on SQLite and PostgreSQL: after a restart
every response the clients got with status 200 has exactly one ledger row; and a full spool
refuses requests with a 503 in the client's dialect until the database catches up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import yaml
from tests.conftest import free_port
from tests.fakes.openai_server import FakeOpenAIServer

if TYPE_CHECKING:
    from conftest import Backend

CLIENTS = 6
PRICE = {"input_per_mtok": 1, "output_per_mtok": 2}
BODY = {"model": "auto", "messages": [{"role": "user", "content": "say hello"}]}


def _config(tmp_path: Path, upstream: FakeOpenAIServer, storage: str, **ledger: object) -> Path:
    base_url = upstream.base_url
    config = {
        "models": [
            {"name": "small", "base_url": base_url, "tier": 1, "price": PRICE},
            {"name": "large", "base_url": base_url, "tier": 3, "price": PRICE},
        ],
        "routers": [{"name": "auto", "models": ["small", "large"], "fallback": "large"}],
        "storage": storage,
        "ledger": ledger,
    }
    path = tmp_path / "gearshift.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _serve(config: Path, port: int, spool_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GEARSHIFT_LEDGER_SPOOL_DIR": str(spool_dir)}
    argv = [sys.executable, "-m", "gearshift", "serve", "--config", str(config)]
    return subprocess.Popen(
        [*argv, "--port", str(port), "--log-level", "warning"], cwd=config.parent, env=env
    )


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"gearshift serve exited with {proc.returncode}"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError("gearshift serve did not become healthy")


class Load:
    """Client threads posting chat completions in a loop, keeping the x-request-id of every 200
    (and riding out the gateway's restart)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok: list[str] = []
        self.other: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(CLIENTS)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post("/v1/chat/completions", json=BODY)
                except httpx.TransportError:
                    time.sleep(0.05)  # the gateway is down or restarting: no answer, no 200
                    continue
                if response.status_code == 200:
                    self.ok.append(response.headers["x-request-id"])
                else:
                    self.other.append(response.status_code)

    def wait_for(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.ok) < count:
            assert time.monotonic() < deadline, f"only {len(self.ok)} answers"
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def test_kill_9_under_load_then_restart_every_200_has_one_row(
    backend: Backend, tmp_path: Path
) -> None:
    with FakeOpenAIServer(record=False) as upstream:
        # Write to the database only every 10 s: at the kill, the rows are in the spool alone.
        config = _config(tmp_path, upstream, backend.url, flush_interval_s=10, batch_size=100_000)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _serve(config, port, backend.spool_dir)
        _wait_healthy(url, proc)
        load = Load(url)
        try:
            load.wait_for(400)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(30) == -signal.SIGKILL
            served_before_kill = len(load.ok)
            store = backend.open()
            assert store.count() < served_before_kill  # the database had not caught up

            restarted = _serve(config, port, backend.spool_dir)
            _wait_healthy(url, restarted)
            load.wait_for(served_before_kill + 200)
        finally:
            load.stop()
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises it when done

    ids = store.ids()
    assert len(load.ok) == len(set(load.ok))
    missing = set(load.ok) - ids
    assert not missing, f"{len(missing)} answered requests have no ledger row"
    # a row without a 200 can only be a request in flight at the kill (its client got no answer)
    assert len(ids - set(load.ok)) <= CLIENTS
    assert load.other == []
    assert not list(backend.spool_dir.rglob("*.jsonl.rejected"))


def test_full_spool_refuses_with_503_until_the_database_is_back(
    backend: Backend, tmp_path: Path
) -> None:
    with FakeOpenAIServer(record=False) as upstream:
        config = _config(tmp_path, upstream, backend.url, spool_max_mb=0.05)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _serve(config, port, backend.spool_dir)
        try:
            _wait_healthy(url, proc)
            answered: list[str] = []
            with httpx.Client(base_url=url, timeout=30) as client, backend.outage():
                for _ in range(1000):
                    response = client.post("/v1/chat/completions", json=BODY)
                    if response.status_code != 200:
                        break
                    answered.append(response.headers["x-request-id"])
                assert response.status_code == 503
                assert response.json()["error"]["code"] == "ledger_backlog_full"
                assert response.headers["retry-after"] == "5"
                health = client.get("/healthz").json()
                assert health["ledger"] == "full" and health["ledger_refused"] >= 1
                assert 20 < len(answered) < 1000  # ~50 KB of rows, then refusals
            with httpx.Client(base_url=url, timeout=30) as client:
                deadline = time.monotonic() + 60
                while client.post("/v1/chat/completions", json=BODY).status_code != 200:
                    assert time.monotonic() < deadline, "still refusing after the outage"
                    time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) in (0, -signal.SIGTERM)
    store = backend.open()
    assert set(answered) <= store.ids()
