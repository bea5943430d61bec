"""``gearshift serve`` as users run it: a subprocess with the issue's YAML file."""

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
from tests.gateway.conftest import LARGE_KEY
from tests.serve_process import start_serve, stop, wait_healthy

# Issue 3's configuration, character for character; only the port (the fake's) is substituted,
# and the ledger file is put in the test's folder by running from there.
ISSUE_YAML = """\
models:
  - name: small
    provider: openai
    base_url: http://127.0.0.1:9100/v1
    tier: 1
    price: {input_per_mtok: 0.25, output_per_mtok: 1.25}
  - name: large
    provider: openai
    base_url: http://127.0.0.1:9100/v1
    model: large-2025            # upstream model id; defaults to name
    api_key_env: LARGE_API_KEY
    tier: 3
    price: {input_per_mtok: 15, output_per_mtok: 75}
routers:
  - name: auto
    models: [small, large]
    quality_tolerance: 0.1
    fallback: large
storage: sqlite:///./gearshift.db
"""


def _write_config(tmp_path: Path, upstream: FakeOpenAIServer) -> Path:
    path = tmp_path / "gearshift.yaml"
    path.write_text(ISSUE_YAML.replace(":9100/", f":{upstream.port}/"))
    assert yaml.safe_load(path.read_text())["models"][1]["model"] == "large-2025"
    return path


def _serve(config: Path, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    # storage: sqlite:///./gearshift.db lands next to the config
    return start_serve(["--config", str(config), "--port", str(port)], cwd=config.parent, env=env)


def test_missing_upstream_key_is_a_clear_startup_error(
    tmp_path: Path, upstream: FakeOpenAIServer
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LARGE_API_KEY"}
    proc = _serve(_write_config(tmp_path, upstream), free_port(), env)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "model 'large' needs its API key in environment variable LARGE_API_KEY" in out


def test_bad_config_is_a_clear_startup_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models: [{name: a}]\nrouters: [{name: r, models: [a, b]}]\n")
    proc = _serve(path, free_port(), dict(os.environ))
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "unknown model(s): b" in out


def test_serve_answers_and_sigterm_drains_in_flight(
    tmp_path: Path, upstream: FakeOpenAIServer
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(
        _write_config(tmp_path, upstream), port, {**os.environ, "LARGE_API_KEY": LARGE_KEY}
    )
    try:
        wait_healthy(url, proc)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        quick = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "hello"}]
        )
        assert quick.headers["x-gearshift-router"] == "auto"
        upstream.okn.latency_s = 1.0
        results: list[Any] = []
        slow = threading.Thread(
            target=lambda: results.append(
                client.chat.completions.create(
                    model="small", messages=[{"role": "user", "content": "slow"}]
                )
            )
        )
        slow.start()
        time.sleep(0.4)  # the slow request is in flight upstream
        proc.send_signal(signal.SIGTERM)
        slow.join(10)
        assert results and results[0].choices[0].message.content
        # uvicorn re-raises the signal once it has shut down cleanly, as a well-behaved server does.
        assert proc.wait(10) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_serve_with_two_workers(tmp_path: Path, upstream: FakeOpenAIServer) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = _write_config(tmp_path, upstream)
    args = ["serve", "--config", str(config), "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gearshift", *args],
        cwd=tmp_path,
        env={**os.environ, "LARGE_API_KEY": LARGE_KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_healthy(url, proc)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        for _ in range(4):
            reply = client.chat.completions.create(
                model="small", messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.choices[0].message.content
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_sigterm_lets_a_stream_finish(tmp_path: Path, upstream: FakeOpenAIServer) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = _write_config(tmp_path, upstream)
    proc = _serve(config, port, {**os.environ, "LARGE_API_KEY": LARGE_KEY})
    try:
        wait_healthy(url, proc)
        upstream.okn.chunk_delay_s = 0.1
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model="small", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = ""
        for i, chunk in enumerate(stream):
            if i == 2:
                proc.send_signal(signal.SIGTERM)  # mid-stream
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        assert text == "Hello from the fake OpenAI provider."
        assert proc.wait(10) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The stream's row was flushed to the ledger before the process exited.
    from gearshift.ledger import open_store

    with open_store(f"sqlite:///{tmp_path}/gearshift.db") as store:
        rows = store.fetch(where="stream = ?", params=[True])
    assert len(rows) == 1 and rows[0].outcome == "ok" and rows[0].cost_usd > 0


def test_keys_never_reach_the_access_log(tmp_path: Path, upstream: FakeOpenAIServer) -> None:
    admin, virtual = "admin-secret-in-url-123", "gs-notarealkeybutlookslikeone0123456"
    config = tmp_path / "gearshift.yaml"
    config.write_text(
        ISSUE_YAML.replace(":9100/", f":{upstream.port}/")
        + "server: {admin_key_env: GS_TEST_ADMIN}\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LARGE_API_KEY": LARGE_KEY, "GS_TEST_ADMIN": admin}
    proc = start_serve(
        ["--config", str(config), "--port", str(port), "--access-log"], cwd=tmp_path, env=env
    )
    try:
        wait_healthy(url, proc)
        # The documented browser mistake: the admin key in the URL. Refused, and masked in the log.
        assert httpx.get(f"{url}/api/dashboard?admin_key={admin}").status_code == 401
        assert httpx.get(f"{url}/metrics?since=1d&admin_key={admin}").status_code == 401
        assert httpx.get(f"{url}/v1/models?api_key={virtual}").status_code == 200
        # In a header (the way that works), nothing of it is logged either.
        ok = httpx.get(f"{url}/api/dashboard", headers={"authorization": f"Bearer {admin}"})
        assert ok.status_code == 200
        refused = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "small", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {virtual}"},
        )
        assert refused.status_code == 401 and virtual not in refused.text
    finally:
        log = stop(proc)
    assert "GET /api/dashboard?admin_key=[redacted]" in log  # the access log is on
    assert admin not in log and virtual not in log


def test_missing_deployment_key_names_the_deployment(
    tmp_path: Path, upstream: FakeOpenAIServer
) -> None:
    model: dict[str, Any] = {
        "name": "gpt-4o",
        "base_url": upstream.base_url,
        "price": {"input_per_mtok": 2.5, "output_per_mtok": 10},
        "deployments": [
            {"name": "eastus", "api_key_env": "GS_TEST_EAST_KEY"},
            {"name": "westeu", "api_key_env": "GS_TEST_WEST_KEY"},
        ],
    }
    path = tmp_path / "gearshift.yaml"
    path.write_text(yaml.safe_dump({"models": [model], "routers": [], "storage": "sqlite:///x.db"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GS_TEST_")}
    env["GS_TEST_WEST_KEY"] = "set"
    proc = _serve(path, free_port(), env)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert (
        "deployment 'eastus' of model 'gpt-4o' needs its API key in environment variable "
        "GS_TEST_EAST_KEY, which is not set" in out
    )
    assert "westeu" not in out
