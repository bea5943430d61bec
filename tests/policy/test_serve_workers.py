"""``gearshift serve`` with several workers and a policy they cannot share: it must refuse to start
(one line, exit 1), never crash-loop. The real CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import free_port

BUDGET = {"budgets": [{"name": "support-monthly", "limit_usd": 5}]}
LIMIT = {"limits": [{"name": "rpm", "rpm": 60}]}


def write_config(tmp_path: Path, policy: dict[str, Any], server: dict[str, Any]) -> Path:
    config = {
        "models": [
            {
                "name": "small",
                "provider": "openai",
                "base_url": f"http://127.0.0.1:{free_port()}/v1",
                "api_key_env": "SMALL_API_KEY",
                "tier": 1,
                "price": {"input_per_mtok": 0.25, "output_per_mtok": 1.25},
            }
        ],
        "storage": f"sqlite:///{tmp_path}/gearshift.db",
        "server": {"port": free_port(), **server},
        "policy": policy,
    }
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def serve(config: Path, *extra: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``gearshift serve``; a supervisor that never exits fails the test (it is killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gearshift", "serve", "--config", str(config), *extra],
        cwd=config.parent,
        env={**os.environ, "SMALL_API_KEY": "sk-test"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its workers too can be killed below
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        pytest.fail(f"gearshift serve still running after {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


REFUSALS = {
    "budget": "2 workers and policy.budgets are set: budgets must be shared by the workers, so "
    "set policy.redis_url (or run one worker)",
    "rpm": "2 workers and policy.limits are set: rate limits must be counted for all workers "
    "together, so set policy.redis_url (or run one worker)",
}


@pytest.mark.parametrize("what", ["budget", "rpm"])
@pytest.mark.parametrize("how", ["server.workers", "--workers"])
def test_several_workers_without_redis_refuse_to_start(tmp_path: Path, what: str, how: str) -> None:
    policy = BUDGET if what == "budget" else LIMIT
    server, extra = ({"workers": 2}, ()) if how == "server.workers" else ({}, ("--workers", "2"))
    done = serve(write_config(tmp_path, policy, server), *extra, timeout=20)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"gearshift serve: error: {REFUSALS[what]}"]
    assert "Traceback" not in done.stdout
    assert not (tmp_path / "gearshift.db").exists()  # refused before any worker opened the ledger


def test_a_worker_that_cannot_start_stops_the_gateway(tmp_path: Path) -> None:
    """A configuration problem only a worker meets (here: Redis does not answer) stops the
    supervisor at the first failure, with the worker's one-line error and exit status 1."""
    redis = f"redis://127.0.0.1:{free_port()}/0"
    done = serve(write_config(tmp_path, {**BUDGET, "redis_url": redis}, {"workers": 2}))
    assert done.returncode == 1
    output = done.stderr + done.stdout
    assert "Traceback" not in output
    assert f"gearshift serve: error: policy.redis_url: cannot reach Redis at {redis}" in output
    assert done.stderr.rstrip("\n").splitlines()[-1] == (
        "gearshift serve: error: a worker could not start (its error is above); the gateway stopped"
    )
    assert output.count("cannot reach Redis") <= 2  # at most once per worker: no restarts


def test_a_worker_whose_startup_fails_stops_the_gateway_with_status_1(tmp_path: Path) -> None:
    """Failing later, in the app's start-up (the ledger's database does not answer): uvicorn
    stops the workers; the exit status must still say it failed."""
    config = write_config(tmp_path, {}, {"workers": 2})
    settings = yaml.safe_load(config.read_text())
    settings["storage"] = f"postgresql://gearshift@127.0.0.1:{free_port()}/nowhere"
    config.write_text(yaml.safe_dump(settings))
    done = serve(config)
    assert done.returncode == 1
    assert "cannot connect to PostgreSQL ledger" in done.stderr
    assert done.stderr.rstrip("\n").splitlines()[-1] == (
        "gearshift serve: error: a worker could not start (its error is above); the gateway stopped"
    )


@pytest.mark.parametrize("limit", ["budget", "rpm"])
def test_several_workers_without_redis_refuse_virtual_keys_with_their_own_limits(
    tmp_path: Path, limit: str
) -> None:
    # a key's budget or rate limit lives in the ledger database, not the file: each worker would
    # count it on its own and let the key spend or send N times its limit
    from gearshift.policy.keys import KeyStore

    config = write_config(tmp_path, {}, {"workers": 2})
    store = KeyStore.open(f"sqlite:///{tmp_path}/gearshift.db")
    store.create(name="plain", team="a")
    revoked = store.create(name="old", budget=(1.0, "day"))[1]
    store.revoke(revoked.id)
    _, limited = store.create(
        name="capped", **({"budget": (5.0, "month")} if limit == "budget" else {"rpm": 60})
    )
    store.close()
    done = serve(config, timeout=20)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"gearshift serve: error: 2 workers and virtual keys with a budget or rate limit "
        f"({limited.id}): their spend and requests must be counted for all workers together, so "
        "set policy.redis_url (or run one worker)"
    ], done.stderr  # the revoked key with a budget and the plain key are not named
