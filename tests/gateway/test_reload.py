"""Live configuration as users run it: ``gearshift serve`` subprocesses, ``gearshift reload`` and
SIGHUP, the real openai SDK. A good file swaps models, routers and limits in; a bad one is
refused with the start-up message and the running configuration stays; a request in flight
finishes on the configuration it started with; with ``--workers 2`` every worker reloads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from tests.conftest import free_port
from tests.fakes.openai_server import FakeOpenAIServer

from gearshift.api.live_config import read_verdict, runtime_path

HI = [{"role": "user", "content": "hello"}]


def config(upstream: FakeOpenAIServer, *, extra: bool = False, **more: Any) -> dict[str, Any]:
    models = [
        {
            "name": "small",
            "base_url": upstream.base_url,
            "price": {"input_per_mtok": 0.25, "output_per_mtok": 1.25},
        }
    ]
    if extra:
        models.append({"name": "extra", "base_url": upstream.base_url, "model": "extra-up"})
    routers = [{"name": "auto", "models": [m["name"] for m in models]}]
    return {"models": models, "routers": routers, "storage": "sqlite:///./gearshift.db", **more}


def write(path: Path, data: dict[str, Any] | str) -> None:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))


class Served:
    def __init__(self, path: Path, workers: int = 1) -> None:
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "gearshift", "serve", "--config", str(path)]
        argv += ["--port", str(self.port), "--workers", str(workers)]
        self.proc = subprocess.Popen(
            argv, cwd=path.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read() if self.proc.stdout else ""
            try:
                if httpx.get(f"{self.url}/healthz/ready", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError("gearshift serve did not become ready")

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="x", max_retries=0)

    def reload(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gearshift", "reload", "--config", str(self.path)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return out


@pytest.fixture
def served(tmp_path: Path) -> Any:
    running: list[Served] = []

    def start(data: dict[str, Any], workers: int = 1) -> Served:
        path = tmp_path / "gearshift.yaml"
        write(path, data)
        s = Served(path, workers)
        running.append(s)
        return s

    yield start
    for s in running:
        if s.proc.poll() is None:
            s.stop()


def test_reload_swaps_models_and_refuses_a_bad_file(
    served: Any, upstream: FakeOpenAIServer, tmp_path: Path
) -> None:
    gs = served(config(upstream))
    client = gs.client()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="extra", messages=HI)

    write(gs.path, config(upstream, extra=True))
    done = gs.reload()
    assert done.returncode == 0, done.stderr
    assert "reloaded" in done.stdout and "generation 2" in done.stdout
    answer = client.chat.completions.with_raw_response.create(model="extra", messages=HI)
    assert answer.headers["x-gearshift-model"] == "extra"
    assert upstream.bodies()[-1]["model"] == "extra-up"
    assert httpx.get(f"{gs.url}/healthz/ready").json()["config_generation"] == 2

    # A bad file: the same message as at start-up, and the running configuration stays.
    bad = config(upstream, extra=True)
    bad["routers"][0]["models"].append("missing")
    write(gs.path, bad)
    refused = gs.reload()
    assert refused.returncode == 1
    startup = subprocess.run(
        [sys.executable, "-m", "gearshift", "serve", "--config", str(gs.path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    message = "router 'auto' names unknown model(s): missing"
    assert message in refused.stderr and message in startup.stderr
    assert client.chat.completions.create(model="extra", messages=HI).choices

    # SIGHUP itself, sent around the CLI's own check: the server refuses and says why.
    sent = time.time()
    os.kill(gs.proc.pid, signal.SIGHUP)
    verdict_path = runtime_path(gs.path, f".reload.{gs.proc.pid}.json")
    deadline = time.monotonic() + 10
    while (verdict := read_verdict(verdict_path, sent)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert verdict["ok"] is False and message in verdict["error"]
    assert client.chat.completions.create(model="extra", messages=HI).choices
    assert httpx.get(f"{gs.url}/healthz/ready").json()["config_generation"] == 2


def test_a_request_in_flight_finishes_on_its_configuration(
    served: Any, upstream: FakeOpenAIServer
) -> None:
    gs = served(config(upstream))
    upstream.okn.latency_s = 1.5
    results: list[Any] = []
    slow = threading.Thread(
        target=lambda: results.append(
            gs.client().chat.completions.with_raw_response.create(model="small", messages=HI)
        )
    )
    slow.start()
    time.sleep(0.4)  # the request is now waiting on the upstream
    # "small" now points at a port nobody listens on.
    moved = config(upstream)
    moved["models"][0]["base_url"] = f"http://127.0.0.1:{free_port()}/v1"
    write(gs.path, moved)
    assert gs.reload().returncode == 0
    slow.join(10)
    [answer] = results
    assert answer.status_code == 200 and answer.headers["x-gearshift-model"] == "small"
    upstream.okn.latency_s = 0.0
    with pytest.raises(openai.APIStatusError):  # new requests use the new (dead) base URL
        gs.client().chat.completions.create(model="small", messages=HI)


def test_reload_reaches_every_worker(served: Any, upstream: FakeOpenAIServer) -> None:
    gs = served(config(upstream), workers=2)
    write(gs.path, config(upstream, extra=True, policy={"limits": []}))
    done = gs.reload()
    assert done.returncode == 0, done.stderr
    pids = [line.split()[1].rstrip(":") for line in done.stdout.splitlines()]
    assert len(set(pids)) == 2 and all("generation 2" in line for line in done.stdout.splitlines())
    client = gs.client()
    for _ in range(20):  # new connections each, so both workers answer some
        with openai.OpenAI(base_url=f"{gs.url}/v1", api_key="x", max_retries=0) as fresh:
            fresh.chat.completions.create(model="extra", messages=HI)
    assert client.chat.completions.create(model="extra", messages=HI).choices


def test_settings_a_reload_cannot_apply_are_named() -> None:
    from gearshift.api.live_config import restart_only_changes
    from gearshift.config import parse_settings

    before = parse_settings({"storage": "sqlite:///a.db", "server": {"port": 8080}})
    after = parse_settings(
        {
            "storage": "sqlite:///b.db",
            "server": {"port": 9090, "workers": 4},
            "telemetry": {"service_name": "gw"},
        }
    )
    assert restart_only_changes(before, after) == [
        "storage",
        "server.port",
        "server.workers",
        "telemetry",
    ]
    assert restart_only_changes(before, before) == []


def test_reload_compares_server_settings_with_what_runs(
    served: Any, upstream: FakeOpenAIServer
) -> None:
    gs = served(config(upstream))  # --port P on the command line; the file has no server: block

    def reload_note(data: dict[str, Any]) -> str:
        write(gs.path, data)
        done = gs.reload()
        assert done.returncode == 0, done.stderr
        assert "reloaded" in done.stdout
        return done.stdout

    # the file now names the port the server listens on (--port): nothing to restart for
    assert "restart to apply" not in reload_note(config(upstream, server={"port": gs.port}))
    # the --port flag wins over the file on a restart too, so another port changes nothing
    assert "restart to apply" not in reload_note(config(upstream, server={"port": gs.port + 1}))
    moved = config(upstream, server={"port": gs.port})
    moved["storage"] = "sqlite:///./other.db"
    assert "restart to apply storage" in reload_note(moved)
    # back to the ledger it opened: compared with what runs, not with the previous file
    assert "restart to apply" not in reload_note(config(upstream))
    assert gs.client().chat.completions.create(model="small", messages=HI).choices
