"""LedgerWriter on SQLite and PostgreSQL: batching, idempotency, close flushes, a dead database
keeps rows in the spool and writes them when it returns (or at the next start), bad rows are
isolated. The write-ahead side (kill -9, bounded memory and disk) is in test_spool_durability."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import TYPE_CHECKING

import orjson
import pytest
from test_store import full_record

from gearshift.ledger import LedgerWriter, Spool
from gearshift.ledger.codec import record_to_json, record_to_json_line

if TYPE_CHECKING:
    from conftest import Backend


def wait_until(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_batches_and_flush(backend: Backend) -> None:
    store = backend.open()
    writer = LedgerWriter(store, batch_size=200, flush_interval_s=0.05)
    records = [full_record(i) for i in range(1234)]
    for r in records:
        writer.submit(r)
    assert writer.flush(timeout=30)
    assert store.count() == 1234
    assert writer.stats.written == 1234
    assert 7 <= writer.stats.batches <= 1234 // 50  # batched, not one transaction per row
    assert store.fetch() == records
    writer.close()


def test_rows_reach_the_database_every_tick_though_the_spool_rotates_seldom(
    backend: Backend,
) -> None:
    """Each tick commits what is queued; the spool segment is rotated (made, unmapped,
    deleted) only when it is big or a second old, not at every tick (that cost ~0.07 ms of CPU
    per request at full load)."""
    store = backend.open()
    writer = LedgerWriter(store, flush_interval_s=0.01)
    for i in range(30):
        writer.submit(full_record(i))
        assert wait_until(lambda n=i + 1: store.count() == n, 10)  # written by a tick
    # 30 ticks wrote rows; a rotation or two (a second may have passed), not one per tick
    rotations = next(writer.spool._seq) - 1  # segments made: the first spare, then one a rotation
    assert rotations <= 3, rotations
    assert writer.flush(timeout=30)  # flush() rotates at once
    assert not writer.spool.pending()
    writer.close()


def test_duplicate_submissions_write_one_row(backend: Backend) -> None:
    store = backend.open()
    writer = LedgerWriter(store)
    for _ in range(3):
        writer.submit(full_record(7))
        writer.flush(timeout=10)
    writer.submit(full_record(8))
    writer.close()
    assert store.count() == 2
    assert writer.stats.written == 2 and writer.stats.duplicates == 2


def test_close_flushes_everything(backend: Backend) -> None:
    store = backend.open()
    # a long interval: nothing would be written before close() without the final drain
    writer = LedgerWriter(store, batch_size=10_000, flush_interval_s=30)
    for i in range(2500):
        writer.submit(full_record(i))
    writer.close(timeout=30)
    assert store.count() == 2500
    writer.close()  # twice is fine
    writer.submit(full_record(9999))  # after close: written synchronously, not dropped
    assert store.get("req-009999") is not None


def test_dead_database_spools_then_replays(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend.open()
    writer = LedgerWriter(store, batch_size=100, flush_interval_s=0.02, retry_interval_s=0.2)
    writer.submit(full_record(0))
    assert writer.flush(timeout=10)
    with caplog.at_level(logging.WARNING, logger="gearshift.ledger"), backend.outage():
        for i in range(1, 301):
            writer.submit(full_record(i))
        assert writer.flush(timeout=30)  # the rows are safe on disk: flush returns
        assert not writer.healthy
        assert writer.spool.count() == 300
        for i in range(301, 311):  # more traffic during the outage
            writer.submit(full_record(i))
        assert writer.flush(timeout=30)
    # back up: the next retry replays the spool, then new rows go straight in
    writer.submit(full_record(311))
    assert wait_until(lambda: writer.flush(1) and store.count() == 312 and writer.healthy)
    assert not writer.spool.pending()
    writer.close()
    assert store.ids() == {f"req-{i:06d}" for i in range(312)}
    assert writer.stats.written == 312 and writer.stats.duplicates == 0
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "ledger database unavailable" in messages and "spooling rows to" in messages
    assert "reachable again" in messages


def test_spool_replays_on_next_start(backend: Backend) -> None:
    store = backend.open()
    writer = LedgerWriter(store, flush_interval_s=0.02, retry_interval_s=60)
    with backend.outage():
        for i in range(250):
            writer.submit(full_record(i))
        writer.close(timeout=30)  # the database is still down: everything is in the spool
        assert writer.spool.count() == 250
    store.close()

    fresh = backend.open()
    assert fresh.count() == 0
    restarted = LedgerWriter(fresh, flush_interval_s=0.02)
    assert restarted.flush(timeout=30)
    assert fresh.count() == 250
    assert not restarted.spool.pending()
    restarted.close()


def test_bad_records_are_isolated_not_lost(backend: Backend) -> None:
    store = backend.open()
    writer = LedgerWriter(store)
    good = [full_record(i) for i in range(5)]
    bad = full_record(99, requested_model=None)  # violates NOT NULL
    for r in [*good[:2], bad, *good[2:]]:
        writer.submit(r)
    writer.close()
    assert store.count() == 5
    assert writer.stats.rejected == 1
    kept = writer.spool.rejected_path.read_bytes().splitlines()
    assert [orjson.loads(line)["id"] for line in kept] == ["req-000099"]


def test_torn_spool_line_is_kept_aside(backend: Backend) -> None:
    store = backend.open()
    spool = Spool(store.spool_path)
    spool.path.parent.mkdir(parents=True, exist_ok=True)
    with open(spool.path, "wb") as f:
        f.write(record_to_json_line(full_record(1)))
        f.write(record_to_json_line(full_record(2)))
        f.write(b'{"id": "req-000003", "ts": 17')  # a crash mid-write
    writer = LedgerWriter(store, spool=spool)
    assert writer.flush(timeout=10)
    writer.close()
    assert store.ids() == {"req-000001", "req-000002"}
    assert spool.rejected_path.read_bytes().startswith(b'{"id": "req-000003"')
    assert not spool.pending()


def test_spool_lines_round_trip_exactly(tmp_path: object) -> None:
    from pathlib import Path

    spool = Spool(Path(str(tmp_path)) / "s.jsonl")
    records = [full_record(i, cost_usd=Decimal("0.000000000001") * i) for i in range(3)]
    spool.append(records)
    got: list[object] = []
    assert spool.replay(lambda batch: got.extend(batch) or len(batch)) == 3
    assert got == records
    assert not spool.pending()


def test_spool_line_is_the_record_json_byte_for_byte() -> None:
    """The request path encodes the dataclass directly; the line must be what the documented
    export format (``record_to_json``) gives, whatever the money amounts, tags and text."""
    records = [full_record(i, cost_usd=Decimal("0.000000000001") * i) for i in range(3)]
    records.append(
        full_record(
            9,
            cost_usd=Decimal("1E-7"),
            counterfactual_cost_usd=Decimal("12345.678900"),
            tags={"équipe": "support", "z": "a"},
            error='upstream said "no"\n',
            difficulty=None,
        )
    )
    for record in records:
        assert record_to_json_line(record) == orjson.dumps(record_to_json(record)) + b"\n"


WRITER_PROCESS = """
import sys
from decimal import Decimal
from gearshift.ledger import LedgerRecord, LedgerWriter, open_store

url, spool_dir, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = open_store(url, spool_dir=spool_dir)   # both processes migrate a fresh database at once
writer = LedgerWriter(store, batch_size=100)
for i in range(n):
    writer.submit(LedgerRecord(id=f"{prefix}-{i}", ts=float(i), dialect="openai",
                               requested_model="auto", tags={"proc": prefix},
                               cost_usd=Decimal("0.000001")))
writer.close()
store.close()
"""


def test_several_processes_share_one_ledger(backend: Backend) -> None:
    """``gearshift serve --workers N``: N processes open, migrate and write the same ledger."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER_PROCESS, backend.url, str(backend.spool_dir), p, "1500"]
        )
        for p in ("a", "b", "c")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    store = backend.open()
    # rows a process spooled while another held SQLite's lock are replayed by the next writer
    LedgerWriter(store).close()
    assert store.count() == 4500
    assert store.sum_cost()[0] == Decimal("0.0045")
    assert store.applied_migrations().count("m001_requests") == 1
    rows = store.execute_read("SELECT value, COUNT(*) FROM request_tags GROUP BY value")
    assert sorted((v, int(n)) for v, n in rows) == [("a", 1500), ("b", 1500), ("c", 1500)]


def test_process_exiting_without_close_still_flushes(tmp_path: object) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from gearshift.ledger import open_store

    url = f"sqlite:///{Path(str(tmp_path)) / 'l.db'}"
    code = (
        "import sys; from gearshift.ledger import LedgerRecord, LedgerWriter, open_store;"
        "w = LedgerWriter(open_store(sys.argv[1]), flush_interval_s=60);"
        "[w.submit(LedgerRecord(id=str(i), ts=0.0, dialect='openai', requested_model='m'))"
        " for i in range(700)]"
    )  # exits at once, never calling close()
    subprocess.run([sys.executable, "-c", code, url], check=True, timeout=60)
    with open_store(url) as store:
        assert store.count() == 700


def test_close_replays_spool_when_database_is_back(backend: Backend) -> None:
    """The database returns after the last retry: close() must not leave the spool behind."""
    store = backend.open()
    writer = LedgerWriter(store, flush_interval_s=0.02, retry_interval_s=60)
    with backend.outage():
        for i in range(120):
            writer.submit(full_record(i))
        assert writer.flush(timeout=30)
        assert writer.spool.count() == 120
    writer.close(timeout=30)  # next retry is a minute away; close tries anyway
    assert store.count() == 120
    assert not writer.spool.pending()
