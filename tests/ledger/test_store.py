"""Ledger store on SQLite and PostgreSQL: migrations, exact round trips, idempotency, reads."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from gearshift.errors import ConfigError
from gearshift.ledger import MIGRATIONS, LedgerRecord, Migration, open_store
from gearshift.ledger.codec import COLUMNS, record_to_row

if TYPE_CHECKING:
    from conftest import Backend

D = Decimal


def full_record(i: int = 0, **overrides: object) -> LedgerRecord:
    """A record with every field set to a non-default, awkward value."""
    record = LedgerRecord(
        id=f"req-{i:06d}",
        ts=1_764_000_000.123456 + i,
        dialect="anthropic",
        requested_model="support-bot",
        router="support-bot",
        key_id="key_7f3a",
        tags={"feature": "helpdesk", "team": "support", "ünïcode": "naïve 'quoted' \"x\""},
        predicted={"small": 0.8125, "large": 0.9375, "mid": 1e-9},
        difficulty=0.7310585786300049,
        prompt_kind="extraction",
        tolerance=0.05,
        chosen_model="small",
        served_model="large",
        fallbacks=["small", "mid"],
        stream=True,
        prompt_tokens=123_456,
        completion_tokens=7_890,
        cached_tokens=100_000,
        cache_write_tokens=2_000,
        reasoning_tokens=4_321,
        cost_usd=D("0.000000123456789012"),
        counterfactual_model="large",
        counterfactual_cost_usd=D("12345.678901234567"),
        price_source="genai-prices",
        ttfb_ms=0.3125,
        latency_ms=1234.5678,
        status=502,
        outcome="error",
        error="upstream 502 from large: bad gateway",
    )
    return dataclasses.replace(record, **overrides)  # type: ignore[arg-type]


def test_migrations_from_empty_database(backend: Backend) -> None:
    store = backend.open()
    assert store.applied_migrations() == [m.name for m in MIGRATIONS]
    assert store.count() == 0
    # opening again applies nothing and keeps the rows
    store.insert_many([full_record()])
    again = backend.open()
    assert again.migrate() == []
    assert again.count() == 1


def test_migrations_from_older_schema_backfill_tags(backend: Backend) -> None:
    old = backend.open(migrations=MIGRATIONS[:1])  # a ledger written before request_tags existed
    assert old.applied_migrations() == ["m001_requests"]
    for i in range(3):
        row = record_to_row(
            full_record(i, tags={"team": f"t{i % 2}", "feature": "faq"}),
            money_as_text=backend.name == "sqlite",
        )
        assert old.execute_write(*_insert_without(row, "deployment")) == 1
    old.close()

    store = backend.open()
    assert store.applied_migrations() == [m.name for m in MIGRATIONS]
    rows = store.execute_read(
        "SELECT value, COUNT(*) FROM request_tags WHERE key = ? GROUP BY value ORDER BY value",
        ("team",),
    )
    assert [tuple(r) for r in rows] == [("t0", 2), ("t1", 1)]
    assert store.get("req-000001") == full_record(1, tags={"team": "t1", "feature": "faq"})


def _insert_without(row: tuple[object, ...], *later: str) -> tuple[str, tuple[object, ...]]:
    """An INSERT for a schema from before the columns ``later`` were added."""
    keep = [i for i, c in enumerate(COLUMNS) if c not in later]
    names = ", ".join(COLUMNS[i] for i in keep)
    marks = ", ".join("?" for _ in keep)
    return f"INSERT INTO requests ({names}) VALUES ({marks})", tuple(row[i] for i in keep)


def test_deployment_column_is_added_to_an_older_ledger(backend: Backend) -> None:
    names = [m.name for m in MIGRATIONS]
    before = names.index("m007_request_deployment")
    old = backend.open(migrations=MIGRATIONS[:before])
    row = record_to_row(full_record(1), money_as_text=backend.name == "sqlite")
    assert old.execute_write(*_insert_without(row, "deployment")) == 1
    old.close()
    store = backend.open()
    assert store.applied_migrations() == names
    got = store.get("req-000001")
    assert got is not None and got.deployment is None  # written before deployments existed
    store.insert_many([dataclasses.replace(full_record(2), deployment="eastus")])
    got = store.get("req-000002")
    assert got is not None and got.deployment == "eastus"


def test_appended_migration_runs_once(backend: Backend) -> None:
    extra = Migration(
        name="x001_virtual_keys",
        sql="CREATE TABLE virtual_keys (id TEXT PRIMARY KEY, team TEXT);\n"
        "CREATE INDEX virtual_keys_team ON virtual_keys (team);",
    )
    store = backend.open(migrations=[*MIGRATIONS, extra])
    assert store.applied_migrations()[-1] == "x001_virtual_keys"
    store.execute_write("INSERT INTO virtual_keys (id, team) VALUES (?, ?)", ("k1", "support"))
    reopened = backend.open(migrations=[*MIGRATIONS, extra])
    assert reopened.migrate([*MIGRATIONS, extra]) == []
    assert reopened.execute_read("SELECT team FROM virtual_keys") == [("support",)]


def test_requests_table_has_one_column_per_record_field(backend: Backend) -> None:
    store = backend.open()
    store.insert_many([full_record()])
    cols = store.execute_read_dicts("SELECT * FROM requests LIMIT 1")
    names = set(cols[0])
    assert names == set(COLUMNS)
    assert {f.name for f in dataclasses.fields(LedgerRecord)} <= names


def test_exact_round_trip_of_every_field(backend: Backend) -> None:
    store = backend.open()
    records = [
        full_record(0),
        full_record(1, tags={}, predicted={}, fallbacks=[], difficulty=None, router=None,
                    key_id=None, stream=False, ttfb_ms=None, error=None, cost_usd=D(0),
                    counterfactual_cost_usd=D("0.1"), outcome="client_disconnect"),
        full_record(2, cost_usd=D("1E-12"), counterfactual_cost_usd=D("98765432.1")),
    ]  # fmt: skip
    assert store.insert_many(records) == 3
    for original in records:
        loaded = store.get(original.id)
        assert loaded == original
        assert loaded is not None and loaded.cost_usd == original.cost_usd
    assert store.fetch() == records
    assert store.get("missing") is None
    # the last row is beyond what picodollar integers hold: sums stay exact anyway
    assert store.sum_cost() == (
        D("0.000000123456789012") + D("1E-12"),
        D("12345.678901234567") + D("0.1") + D("98765432.1"),
    )


def test_inserts_are_idempotent_on_id(backend: Backend) -> None:
    store = backend.open()
    batch = [full_record(i) for i in range(50)]
    assert store.insert_many(batch) == 50
    # a retried batch that overlaps: only the new ids land, the old rows are untouched
    retry = [full_record(i, served_model="changed") for i in range(40, 60)]
    assert store.insert_many(retry) == 10
    assert store.count() == 60
    assert store.get("req-000045") == full_record(45)
    tag_rows = store.execute_read("SELECT COUNT(*) FROM request_tags")[0][0]
    assert tag_rows == 60 * 3


def test_sums_are_exact(backend: Backend) -> None:
    store = backend.open()
    cost = D("0.000001234567")
    records = [
        full_record(i, cost_usd=cost, counterfactual_cost_usd=D("0.000015")) for i in range(1000)
    ]
    store.insert_many(records)
    total, counterfactual = store.sum_cost()
    assert total == D("0.001234567") and counterfactual == D("0.015")
    assert store.sum_cost("router = ?", ("nobody",)) == (D(0), D(0))
    if backend.name == "postgresql":
        assert store.execute_read("SELECT SUM(cost_usd) FROM requests")[0][0] == D("0.001234567")
    else:
        assert store.execute_read("SELECT dsum(cost_usd) FROM requests")[0][0] == "0.001234567000"


def test_group_by_tag_and_time_window(backend: Backend) -> None:
    store = backend.open()
    base = 1_700_000_000.0
    records = [
        full_record(i, ts=base + i, tags={"team": "a" if i % 3 else "b"}, cost_usd=D("0.01"))
        for i in range(30)
    ]
    store.insert_many(records)
    rows = store.execute_read(
        "SELECT t.value, COUNT(*), SUM(r.cost_pusd) FROM request_tags t "
        "JOIN requests r ON r.id = t.request_id WHERE t.key = ? AND t.ts >= ? "
        "GROUP BY t.value ORDER BY t.value",
        ("team", base + 10),
    )
    assert [(v, int(n), int(s)) for v, n, s in rows] == [
        ("a", 14, 14 * 10**10),
        ("b", 6, 6 * 10**10),
    ]
    window = store.fetch(since=base + 5, until=base + 8)
    assert [r.id for r in window] == ["req-000005", "req-000006", "req-000007"]
    assert store.count("served_model = ?", ("large",)) == 30


def test_bad_storage_urls_are_clear_errors(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="unsupported ledger storage URL"):
        open_store("mysql://localhost/x")
    with pytest.raises(ConfigError, match="bad SQLite ledger URL"):
        open_store("sqlite://relative.db")
    with pytest.raises(ConfigError, match="cannot open PostgreSQL ledger"):
        open_store("postgresql://nobody:secret@127.0.0.1:1/none")


def test_password_never_in_store_url() -> None:
    from gearshift.ledger.store import redact_url

    assert redact_url("postgresql://u:hunter2@h:5432/db") == "postgresql://u:***@h:5432/db"


def test_sqlite_memory_and_wal(tmp_path: object) -> None:
    mem = open_store("sqlite:///:memory:")
    mem.insert_many([full_record()])
    assert mem.count() == 1
    mem.close()
    from pathlib import Path

    path = Path(str(tmp_path)) / "sub" / "dir" / "l.db"
    store = open_store(f"sqlite:///{path}")
    assert store.execute_read("PRAGMA journal_mode")[0][0] == "wal"
    assert store.spool_path == path.with_name("l.db.spool.jsonl")
    store.close()


def test_migration_order_is_stable_and_names_unique() -> None:
    names = [m.name for m in MIGRATIONS]
    assert names[:3] == ["m001_requests", "m002_request_tags", "m003_feedback"]
    assert len(set(names)) == len(names)
