"""The per-deployment health series under ``gearshift serve --workers 2``. Cooldown state is each
worker's own, so a scrape reads the worker that answered it; every series carries that worker's
``pid``, so a counter never appears to go down when the next scrape lands on the other worker,
and the workers' last values add up to every attempt made."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from tests.conftest import free_port
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import LARGE_KEY, issue_config
from tests.serve_process import start_serve, stop, wait_healthy

pytestmark = pytest.mark.slow
SERIES = re.compile(r"^(gearshift_deployment_(?!requests)\w+)\{([^}]*)\} (\S+)$", re.M)


def _serve_two_workers(
    tmp_path: Path, upstream: FakeOpenAIServer
) -> tuple[subprocess.Popen[str], str]:
    config = tmp_path / "gearshift.yaml"
    config.write_text(yaml.safe_dump(issue_config(f"{upstream.url}/v1")))
    port = free_port()
    env = {**os.environ, "LARGE_API_KEY": LARGE_KEY}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    args = ["--config", str(config), "--port", str(port), "--workers", "2"]
    proc = start_serve([*args, "--log-level", "warning"], cwd=tmp_path, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout=60)
    except BaseException:
        stop(proc)
        raise
    return proc, url


def _get(url: str, path: str, body: dict[str, object] | None = None) -> httpx.Response:
    with httpx.Client(timeout=10) as client:  # a fresh connection: either worker may take it
        if body is None:
            return client.get(f"{url}{path}")
        return client.post(f"{url}{path}", json=body)


def test_deployment_series_name_their_worker(tmp_path: Path, upstream: FakeOpenAIServer) -> None:
    proc, url = _serve_two_workers(tmp_path, upstream)
    try:
        chat = {"model": "small", "messages": [{"role": "user", "content": "hi"}]}
        workers: set[str] = set()
        sent = 0
        while sent < 20 or (len(workers) < 2 and sent < 400):
            answer = _get(url, "/v1/chat/completions", chat)
            assert answer.status_code == 200, answer.text
            workers.add(answer.headers["x-request-id"].split("-")[0])
            sent += 1
        assert len(workers) == 2, "every request went to one worker; the test proves nothing"

        pid_of: dict[str, str] = {}  # request-id prefix of the answering worker -> its pid label
        last_ok: dict[str, int] = {}  # pid -> attempts_total{result="ok"} of small, last scrape
        for _ in range(60):
            page = _get(url, "/metrics")
            samples = SERIES.findall(page.text)
            assert samples, page.text
            labelled = [re.search(r'pid="(\d+)"', labels) for _, labels, _ in samples]
            assert all(labelled), samples  # every series names its worker
            pids = {m.group(1) for m in labelled if m}
            assert len(pids) == 1, samples  # one worker's state per scrape
            [pid] = pids
            prefix = page.headers["x-request-id"].split("-")[0]
            assert pid_of.setdefault(prefix, pid) == pid
            [ok] = [
                int(v)
                for name, labels, v in samples
                if name == "gearshift_deployment_attempts_total"
                and 'model="small"' in labels
                and 'result="ok"' in labels
            ]
            assert ok >= last_ok.get(pid, 0)  # per worker, a counter only grows
            last_ok[pid] = ok
            if len(last_ok) == 2 and sum(last_ok.values()) == sent:
                break
        assert len(set(pid_of.values())) == 2
        assert sum(last_ok.values()) == sent  # the workers' shares add up to every attempt
    finally:
        stop(proc)
