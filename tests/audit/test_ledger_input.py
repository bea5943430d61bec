"""gearshift's own ledger as audit input: its stored predictions replayed at other tolerances."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.audit.test_candidates import CONFIG

from gearshift.ledger import LedgerRecord, open_store, record_to_json


def _records() -> list[LedgerRecord]:
    base = {"dialect": "openai", "requested_model": "auto", "router": "auto", "tolerance": 0.1}
    return [
        LedgerRecord(
            id="r1", ts=1741000000.0, tags={"feature": "faq"},
            predicted={"small": 0.80, "large": 0.85}, difficulty=0.2, prompt_kind="chat",
            chosen_model="large", served_model="large", prompt_tokens=1000,
            completion_tokens=100, cost_usd=Decimal("0.0225"), **base,
        ),
        LedgerRecord(
            id="r2", ts=1741000100.0, tags={"feature": "contracts"},
            predicted={"small": 0.40, "large": 0.90}, difficulty=0.8, prompt_kind="writing",
            chosen_model="large", served_model="large", prompt_tokens=2000,
            completion_tokens=400, cost_usd=Decimal("0.06"), **base,
        ),
        # sent straight to a model: no predictions to replay
        LedgerRecord(id="r3", ts=1741000200.0, dialect="openai", requested_model="large",
                     served_model="large", prompt_tokens=10, completion_tokens=10),
        LedgerRecord(id="r4", ts=1741000300.0, dialect="openai", requested_model="auto",
                     outcome="error", status=502, predicted={"small": 0.9, "large": 0.9}),
    ]  # fmt: skip


def _check(r: dict[str, Any]) -> None:
    # r1 (small within 0.1 of large) moves to small; r2 (0.40 vs 0.90) stays on large.
    assert r["requests"] == 2
    assert r["actual_cost_usd"] == pytest.approx(0.0825, abs=1e-12)
    small_r1 = 1000 * 0.25e-6 + 100 * 1.25e-6
    assert r["routed_cost_usd"] == pytest.approx(small_r1 + 0.06, abs=1e-12)
    assert r["by_model"]["small"]["requests"] == 1 and r["by_model"]["large"]["requests"] == 1
    assert r["skipped_reasons"] == {
        "ledger row without predictions (sent straight to a model)": 1,
        "ledger row with outcome 'error' (not served)": 1,
    }
    assert {g["value"] for g in r["by_kind"]} == {"chat", "writing"}


def test_sqlite_ledger_file_and_url(
    tmp_path: Path, audit_json: Callable[..., dict[str, Any]]
) -> None:
    config = tmp_path / "gearshift.yaml"
    config.write_text(CONFIG)
    db = tmp_path / "ledger.db"
    store = open_store(f"sqlite:///{db}")
    store.insert_many(_records())
    store.close()
    _check(audit_json(str(db), "--config", str(config)))
    _check(audit_json(f"sqlite:///{db}", "--config", str(config)))


def test_ledger_export_jsonl(tmp_path: Path, audit_json: Callable[..., dict[str, Any]]) -> None:
    config = tmp_path / "gearshift.yaml"
    config.write_text(CONFIG)
    export = tmp_path / "ledger.jsonl"
    export.write_text("".join(json.dumps(record_to_json(r)) + "\n" for r in _records()))
    _check(audit_json(str(export), "--config", str(config)))


@pytest.mark.postgres
@pytest.mark.skipif(
    not os.environ.get("GEARSHIFT_TEST_POSTGRES_URL"), reason="needs GEARSHIFT_TEST_POSTGRES_URL"
)
def test_postgresql_ledger_url(tmp_path: Path, audit_json: Callable[..., dict[str, Any]]) -> None:
    import psycopg

    base = os.environ["GEARSHIFT_TEST_POSTGRES_URL"]
    schema = f"audit_test_{os.getpid()}"  # a schema of its own: other tests' rows stay apart
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    config = tmp_path / "gearshift.yaml"
    config.write_text(CONFIG)
    try:
        store = open_store(url)
        store.insert_many(_records())
        store.close()
        _check(audit_json(url, "--config", str(config)))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
