"""The rollup tables come from the ledger's migration steps m005, m008 and m009, and the fallback
DDL in ``rollup`` (for ledgers opened without migrations) says exactly the same thing."""

from __future__ import annotations

import re

from tests.analytics.conftest import write

from gearshift.analytics import rollup
from gearshift.analytics.db import LedgerDB
from gearshift.ledger.migrations import (
    M005_ANALYTICS_ROLLUP,
    M008_ROLLUP_BY_KIND,
    M009_ROLLUP_OUTCOMES,
)


def normalise(sql: str) -> str:
    return re.sub(r"\s*([(),])\s*", r"\1", " ".join(sql.split()))


def test_migration_and_fallback_ddl_agree() -> None:
    for backend in ("sqlite", "postgresql"):  # one text for both
        steps = [normalise(s) for s in M005_ANALYTICS_ROLLUP.statements(backend)]
        assert steps == [normalise(s) for s in rollup.ROLLUP_DDL]
        upgrade = [normalise(s) for s in M008_ROLLUP_BY_KIND.statements(backend)]
        assert upgrade == [normalise(s) for s in rollup.ROLLUP_BY_KIND_DDL]
        outcomes = [normalise(s) for s in M009_ROLLUP_OUTCOMES.statements(backend)]
        assert outcomes == [normalise(s) for s in rollup.ROLLUP_OUTCOMES_DDL]
    assert M009_ROLLUP_OUTCOMES.name == rollup.ROLLUP_OUTCOMES_STEP


def test_open_store_creates_rollup_tables(ledger_url: str) -> None:
    write(ledger_url, [])
    with LedgerDB(ledger_url) as db:
        for table in (*rollup.ROLLUP_TABLES, "analytics_rollup_state"):
            assert db.table_exists(table)
        rollup.ensure_schema(db)  # idempotent on a migrated ledger
        rollup.refresh(db)  # an empty ledger rolls up nothing and records no state
        assert db.fetchone("SELECT count(*) FROM analytics_rollup") == (0,)
        assert rollup.rolled_until(db) is None
