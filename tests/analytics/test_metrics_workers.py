"""``/metrics`` under ``gearshift serve --workers 2``: every scrape reads the whole server.

A real subprocess with two uvicorn workers behind one port; each new connection may land on
either worker (the x-request-id prefix tells which). After N requests, ten scrapes (also landing
on either worker) must each read exactly N.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from tests.conftest import free_port
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import LARGE_KEY, issue_config

pytestmark = pytest.mark.slow
SERVE = (sys.executable, "-m", "gearshift", "serve", "--log-level", "warning")


@pytest.fixture
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def _start(
    tmp_path: Path, upstream: FakeOpenAIServer, env: dict[str, str]
) -> tuple[subprocess.Popen[str], str]:
    config = tmp_path / "gearshift.yaml"
    config.write_text(yaml.safe_dump(issue_config(f"{upstream.url}/v1")))
    port = free_port()
    proc = subprocess.Popen(
        [*SERVE, "--config", str(config), "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise TimeoutError("gearshift serve --workers 2 did not become healthy")


def _requests_total(page: str) -> int:
    found = re.findall(r'^gearshift_requests_total\{[^}]*outcome="ok"\} (\S+)$', page, re.M)
    return sum(int(v) for v in found)


def _chat(url: str) -> str:
    # A fresh connection each time, so the kernel may hand it to either worker.
    with httpx.Client(timeout=10) as client:
        response = client.post(
            f"{url}/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-gearshift-tags": "team=platform"},
        )
    assert response.status_code == 200, response.text
    return response.headers["x-request-id"].split("-")[0]


def test_every_scrape_reads_all_workers(tmp_path: Path, upstream: FakeOpenAIServer) -> None:
    env = {**os.environ, "LARGE_API_KEY": LARGE_KEY}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc, url = _start(tmp_path, upstream, env)
    try:
        workers: set[str] = set()
        sent = 0
        # At least 30 requests, and on until both workers have answered some.
        while sent < 30 or (len(workers) < 2 and sent < 400):
            workers.add(_chat(url))
            sent += 1
        assert len(workers) == 2, "every request went to one worker; the test proves nothing"
        scraped_by: set[str] = set()
        for _ in range(10):
            with httpx.Client(timeout=10) as client:
                page = client.get(f"{url}/metrics")
            scraped_by.add(page.headers["x-request-id"].split("-")[0])
            assert _requests_total(page.text) == sent
            tag = re.search(
                r'^gearshift_tag_requests_total\{tag="team",value="platform"\} (\S+)$',
                page.text,
                re.M,
            )
            assert tag is not None and int(tag.group(1)) == sent
            assert (
                f'gearshift_request_duration_seconds_count{{router="auto",model="small"}} {sent}'
                in page.text
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
