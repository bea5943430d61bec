"""A full disk under the SQLite ledger: one clear log line naming it (not "cannot rollback - no
transaction is active" with a traceback every retry), rows kept in the spool, and written once
there is room again. SQLite's ``max_page_count`` gives the same SQLITE_FULL as a full disk."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from gearshift.ledger import LedgerWriter, open_store
from gearshift.ledger.record import LedgerRecord


def _cap_pages(store: object, pages: int | None) -> None:
    writer_lock = store._write_lock  # type: ignore[attr-defined]
    conn = store._writer  # type: ignore[attr-defined]
    with writer_lock:
        if pages is None:
            pages = 1_073_741_823  # SQLite's default ceiling
        conn.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_database_is_one_clear_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gearshift")
    store = open_store(f"sqlite:///{tmp_path}/ledger.db")
    pages = store._writer.execute("PRAGMA page_count").fetchone()[0]  # type: ignore[attr-defined]
    _cap_pages(store, pages + 1)
    writer = LedgerWriter(store, retry_interval_s=0.2)
    try:
        for i in range(200):
            writer.submit(
                LedgerRecord(id=f"r{i}", ts=1.0, dialect="openai", requested_model="m" * 400)
            )
        time.sleep(1.5)  # several retries against the full database
        problems = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(problems) == 1, [r.getMessage() for r in problems]
        assert "database or disk is full" in problems[0].getMessage()
        assert not any(r.exc_info for r in caplog.records), "no traceback for a full disk"
        assert not writer.healthy

        _cap_pages(store, None)  # room again
        deadline = time.monotonic() + 10
        while not writer.healthy and time.monotonic() < deadline:
            time.sleep(0.05)  # the next retry finds room
        assert writer.healthy and writer.flush(10)
    finally:
        writer.close()
    assert {r.id for r in store.fetch()} == {f"r{i}" for i in range(200)}
    store.close()
