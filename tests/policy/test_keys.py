"""Virtual keys: the CLI lifecycle on a real ledger database, hashing at rest, and a running
policy engine seeing creations, rotations and revocations within seconds."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.policy.conftest import make_settings

from gearshift.cli.main import main
from gearshift.errors import AuthenticationError, InvalidRequest
from gearshift.policy.engine import GearshiftPolicy
from gearshift.policy.keys import KeyStore, parse_budget, parse_tags


def write_config(tmp_path: Path, storage: str | None = None) -> Path:
    cfg = tmp_path / "gearshift.yaml"
    cfg.write_text(f"storage: {storage or f'sqlite:///{tmp_path}/ledger.db'}\n")
    return cfg


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["keys", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_lifecycle_stores_only_a_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(write_config(tmp_path))
    code, out, err = cli(
        capsys,
        "create",
        "--team",
        "support",
        "--budget",
        "2000/month",
        "--tags",
        "feature=helpdesk,env=prod",
        "--name",
        "helpdesk",
        "--config",
        cfg,
    )
    assert code == 0
    secret = out.strip()
    assert secret.startswith("gs-") and len(secret) == 35
    assert "only time the key is shown" in err

    raw = (tmp_path / "ledger.db").read_bytes()
    assert secret.encode() not in raw  # no plaintext at rest
    row = sqlite3.connect(tmp_path / "ledger.db").execute("SELECT key_hash FROM keys").fetchone()
    assert row[0] == hashlib.sha256(secret.encode()).hexdigest()

    code, out, _ = cli(capsys, "list", "--json", "--config", cfg)
    [listed] = json.loads(out)
    assert listed["team"] == "support" and listed["budget"] == "2000/month"
    assert listed["tags"] == {"feature": "helpdesk", "env": "prod"}
    assert secret not in out

    code, out, _ = cli(capsys, "rotate", listed["id"], "--config", cfg)
    new_secret = out.strip()
    assert new_secret != secret and new_secret.startswith("gs-")
    store = KeyStore.open(f"sqlite:///{tmp_path}/ledger.db")
    active = store.active_by_hash()
    assert hashlib.sha256(new_secret.encode()).hexdigest() in active
    assert hashlib.sha256(secret.encode()).hexdigest() not in active

    code, out, _ = cli(capsys, "revoke", listed["id"], "--config", cfg)
    assert "revoked" in out
    assert store.active_by_hash() == {}
    code, out, _ = cli(capsys, "list", "--active", "--json", "--config", cfg)
    assert json.loads(out) == []
    store.close()


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(tmp_path))
    code, _, err = cli(capsys, "create", "--budget", "lots", "--config", cfg)
    assert code == 1 and "AMOUNT/PERIOD" in err
    code, _, err = cli(capsys, "create", "--tags", "oops", "--config", cfg)
    assert code == 1 and "KEY=VALUE" in err
    code, _, err = cli(capsys, "revoke", "key_missing", "--config", cfg)
    assert code == 1 and "key_missing" in err
    code, _, err = cli(capsys, "list", "--config", str(tmp_path / "nope.yaml"))
    assert code == 1 and "cannot read config file" in err


def test_cli_runs_as_a_command(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    exe = Path(sys.executable).parent / "gearshift"
    res = subprocess.run(
        [str(exe), "keys", "create", "--team", "ops", "--config", str(cfg)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert res.stdout.startswith("gs-")


def test_budget_and_tag_specs() -> None:
    assert parse_budget("2000/month") == (2000.0, "month")
    assert parse_budget("$12.5 / day") == (12.5, "day")
    with pytest.raises(InvalidRequest):
        parse_budget("0/day")
    with pytest.raises(InvalidRequest):
        parse_budget("-5/day")
    assert parse_tags("a=1, b=two") == {"a": "1", "b": "two"}


async def test_engine_sees_key_changes_within_seconds(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auth="required", key_refresh_s=0.2)
    store = KeyStore.open(settings.storage)
    secret, info = store.create(team="support", tags={"feature": "helpdesk"})
    policy = GearshiftPolicy(settings)
    await policy.start()
    try:
        caller = await policy.authenticate(secret)
        assert caller.key_id == info.id
        assert caller.tags == {"team": "support", "feature": "helpdesk"}

        later, later_info = store.create(team="ops")  # created while the gateway runs
        await _eventually(lambda: policy.authenticate(later), later_info.id)

        store.revoke(info.id)  # revoked while running
        await _eventually_refused(policy, secret)

        rotated, _ = store.rotate(later_info.id)
        await _eventually(lambda: policy.authenticate(rotated), later_info.id)
        await _eventually_refused(policy, later)

        with pytest.raises(AuthenticationError) as exc:
            await policy.authenticate(None)
        assert "requires a gearshift virtual key" in exc.value.message
        with pytest.raises(AuthenticationError) as exc:
            await policy.authenticate("sk-provider-secret-123")
        assert "sk-provider-secret-123" not in exc.value.message  # never echoed
    finally:
        await policy.aclose()
        store.close()


async def test_optional_auth_serves_unknown_keys_anonymously(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    store = KeyStore.open(settings.storage)
    secret, info = store.create(name="known")
    policy = GearshiftPolicy(settings)
    try:
        assert (await policy.authenticate("sk-anything")).key_id is None
        assert (await policy.authenticate(None)).key_id is None
        assert (await policy.authenticate(secret)).key_id == info.id
    finally:
        await policy.aclose()
        store.close()


async def _eventually(call, expected_id: str, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            caller = await call()
            if caller.key_id == expected_id:
                return
        except AuthenticationError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"key {expected_id} not seen within {timeout} s")
        await asyncio.sleep(0.05)


async def _eventually_refused(policy: GearshiftPolicy, secret: str, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            await policy.authenticate(secret)
        except AuthenticationError:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("revoked key still accepted")


@pytest.mark.postgres
def test_key_store_on_postgresql() -> None:
    url = os.environ.get("GEARSHIFT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("GEARSHIFT_TEST_POSTGRES_URL not set")
    store = KeyStore.open(url)
    try:
        secret, info = store.create(team="pg", budget=(10.0, "day"))
        assert hashlib.sha256(secret.encode()).hexdigest() in store.active_by_hash()
        assert store.get(info.id).budget_period == "day"
        count, _ = store.version()
        store.revoke(info.id)
        assert store.version()[1] > 0 and store.version()[0] == count
        assert info.id not in {k.id for k in store.active_by_hash().values()}
    finally:
        store.close()


def test_sqlite_url_options_do_not_split_the_keys_from_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``?busy_timeout_ms=`` is an option of the URL, not part of the file name: the keys table
    lands in the ledger's own file, and the option is applied."""
    from gearshift.ledger import open_store
    from gearshift.policy.db import open_database

    url = f"sqlite:///{tmp_path}/gearshift.db?busy_timeout_ms=1000"
    code, out, _ = cli(
        capsys, "create", "--name", "t", "--config", str(write_config(tmp_path, url))
    )
    assert code == 0 and out.startswith("gs-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gearshift.db", "gearshift.yaml"]
    with sqlite3.connect(tmp_path / "gearshift.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM keys").fetchone() == (1,)
    with open_store(url):  # the ledger opens the same file, migrations and keys together
        pass
    assert not any("?" in p.name for p in tmp_path.iterdir())
    db = open_database(url)
    try:
        assert db.fetchone("PRAGMA busy_timeout") == (1000,)
    finally:
        db.close()


def test_cli_create_takes_expiry_models_and_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "gearshift.yaml"
    cfg.write_text(
        f"storage: sqlite:///{tmp_path}/ledger.db\n"
        "models: [{name: small, base_url: 'http://127.0.0.1:9/v1'}]\n"
        "routers: [{name: auto, models: [small]}]\n"
    )
    before = time.time()
    code, out, _ = cli(
        capsys, "create", "--expires", "30d", "--models", "auto", "--rpm", "5", "--tpm", "900",
        "--config", str(cfg), "--json",
    )  # fmt: skip
    assert code == 0
    made = json.loads(out)
    assert before + 30 * 86400 <= made["expires_at"] <= time.time() + 30 * 86400
    assert (made["models"], made["rpm"], made["tpm"], made["expired"]) == (["auto"], 5, 900, False)
    stored = KeyStore.open(f"sqlite:///{tmp_path}/ledger.db")
    try:
        info = stored.get(made["id"])
    finally:
        stored.close()
    assert info.expires_at == made["expires_at"] and info.models == ("auto",)
    code, out, _ = cli(capsys, "create", "--expires", "2030-01-31T00:00:00Z", "--config", str(cfg))
    assert code == 0
    code, out, _ = cli(capsys, "list", "--config", str(cfg))
    assert "active until 2030-01-31 00:00" in out

    for args, needle in (
        (["--expires", "2001-01-01T00:00:00Z"], "in the past"),
        (["--expires", "soon"], "a duration (90m, 12h, 30d, 2w)"),
        (["--expires", "2030-01-31T00:00:00"], "ISO time with its offset"),
        (["--models", "auto,nope"], "unknown router(s) or model(s): nope"),
    ):
        code, _, err = cli(capsys, "create", *args, "--config", str(cfg))
        assert code == 1 and needle in err, (args, err)
    with pytest.raises(SystemExit):  # argparse: "--rpm: '0' is not a positive integer"
        cli(capsys, "create", "--rpm", "0", "--config", str(cfg))
    assert "not a positive integer" in capsys.readouterr().err
