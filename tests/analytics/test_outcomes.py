"""Reports by (and filtered by) outcome use the ledger's own outcome names, from raw rows and from
the rollup alike, and a filter on an outcome no row can have is an error, not an empty report."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from tests.analytics.conftest import DAY0, rec, settings_for, write
from tests.analytics.test_gateway_traffic import ADMIN_KEY, config
from tests.conftest import UvicornThread
from tests.fakes.openai_server import FakeOpenAIServer

from gearshift.analytics import queries, rollup
from gearshift.analytics.db import LedgerDB
from gearshift.api.app import create_app
from gearshift.config import parse_settings
from gearshift.ledger import open_store

NOW = DAY0 + 10 * 86400  # long after the rows: every day can be rolled up
OUTCOMES = {
    "ok": 3,
    "cache_hit": 2,
    "error": 1,
    "client_disconnect": 1,
    "rejected": 2,
    "invalid": 1,
}


def outcome_rows() -> list[Any]:
    records, n = [], 0
    for outcome, count in OUTCOMES.items():
        for _ in range(count):
            n += 1
            failed = outcome not in ("ok", "cache_hit")
            records.append(
                rec(n, DAY0 + 3600 + n, "small", "0" if failed else "0.0001", outcome=outcome)
            )
    return records


def by_outcome(url: str, *, now: float, **filters: str) -> dict[str, int]:
    with LedgerDB(url) as db:
        cells = queries.collect(db, now=now, collapse=True, dimensions=["outcome", *filters])
    report = queries.build_report(cells, "outcome", settings_for(url), filters)
    return {g["outcome"]: g["requests"] for g in report["groups"]}


def test_report_by_outcome_has_the_ledgers_names(ledger_url: str) -> None:
    write(ledger_url, outcome_rows())
    raw = by_outcome(ledger_url, now=DAY0 + 3700)  # the rows' hour is not complete: raw rows
    rolled = by_outcome(ledger_url, now=NOW)
    assert raw == rolled == OUTCOMES
    with LedgerDB(ledger_url) as db:
        assert rollup.rolled_until(db) is not None  # the second one did read the rollup
    for outcome, count in OUTCOMES.items():
        assert by_outcome(ledger_url, now=NOW, outcome=outcome) == {outcome: count}
    with pytest.raises(ValueError, match="unknown outcome 'failed': the ledger's outcomes are ok"):
        by_outcome(ledger_url, now=NOW, outcome="failed")


def test_a_rollup_with_every_failure_as_one_code_is_rebuilt(ledger_url: str) -> None:
    """Before m009 the rollup folded every failure into 0: reports (and the store's migration)
    empty it and roll the raw rows up again."""
    write(ledger_url, outcome_rows())
    with LedgerDB(ledger_url) as db:
        rollup.refresh(db, now=NOW)
        for table in ("analytics_rollup", "analytics_rollup_hist", "analytics_rollup_kind"):
            db.execute(f"UPDATE {table} SET ok = 0 WHERE ok > 2")  # as an older gearshift wrote
        db.execute("DELETE FROM schema_migrations WHERE name = 'm009_rollup_outcomes'")
    assert by_outcome(ledger_url, now=NOW) == OUTCOMES
    with LedgerDB(ledger_url) as db:
        found = db.fetchone(
            "SELECT count(*) FROM schema_migrations WHERE name = ?", (rollup.ROLLUP_OUTCOMES_STEP,)
        )
        assert found == (1,)  # recorded as the store records it
    write(ledger_url, [])  # the gateway's store opens it: m009 is not applied twice
    assert by_outcome(ledger_url, now=NOW) == OUTCOMES


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server  # type: ignore[misc]


def test_outcomes_through_a_real_gateway(
    upstream: FakeOpenAIServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEARSHIFT_TEST_ADMIN_KEY", ADMIN_KEY)
    upstream.reset()
    upstream.okn.fail_models = {"large-2025": 500}
    url = f"sqlite:///{tmp_path}/ledger.db"
    cfg = config(upstream.base_url, url)
    with UvicornThread(create_app(parse_settings(cfg))) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-x", max_retries=0)
        ask = [{"role": "user", "content": "hello"}]
        for _ in range(2):
            client.chat.completions.create(model="small", messages=ask)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=ask)
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="large", messages=ask)
        with open_store(url) as store:
            deadline = time.monotonic() + 15
            while store.count() < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sorted(r.outcome for r in store.fetch()) == ["error", "invalid", "ok", "ok"]

        path = tmp_path / "gearshift.yaml"
        path.write_text(json.dumps(cfg))
        command = [sys.executable, "-m", "gearshift", "report", "--config", str(path)]

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*command, *args], capture_output=True, text=True)

        done = cli("--by", "outcome", "--format", "json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout, parse_float=Decimal)
        got = {g["outcome"]: g["requests"] for g in report["groups"]}
        assert got == {"ok": 2, "invalid": 1, "error": 1}
        done = cli("--by", "model", "--where", "outcome=invalid", "--format", "json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["totals"]["requests"] == 1
        done = cli("--where", "outcome=failed")
        assert done.returncode == 1 and done.stdout == ""
        assert "unknown outcome 'failed'" in done.stderr
        assert "ok, cache_hit, error, client_disconnect, rejected, invalid" in done.stderr

        auth = {"authorization": f"Bearer {ADMIN_KEY}"}
        api = httpx.get(f"{server.url}/api/dashboard?outcome=invalid", headers=auth)
        assert api.status_code == 200 and api.json()["totals"]["requests"] == 1
        for route in ("dashboard", "report"):
            bad = httpx.get(f"{server.url}/api/{route}?outcome=failed", headers=auth)
            assert bad.status_code == 400
            assert "unknown outcome 'failed'" in bad.json()["error"]["message"]
