"""The spool's share of the gateway's RSS stays bounded whatever the backlog: only the active
segment (and the spare) are mapped, so the pages of sealed segments waiting for the database are
in the page cache but not in the process (a mapped page that was written counts in RSS)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_store import full_record
from test_writer import wait_until

from gearshift.ledger import LedgerWriter
from gearshift.ledger import spool as spool_module

if TYPE_CHECKING:
    from conftest import Backend


def mapped_segments(directory: Path) -> int:
    """How many of this process's memory mappings are files of the spool directory."""
    lines = Path("/proc/self/maps").read_text().splitlines()
    return sum(1 for line in lines if f"{directory}/" in line)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_a_backlog_of_sealed_segments_is_not_mapped(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 64 * 1024)  # ~60 rows a segment
    store = backend.open()
    writer = LedgerWriter(
        store, queue_max_rows=100, batch_size=50, flush_interval_s=0.02, retry_interval_s=0.2
    )
    directory = writer.spool.directory
    with backend.outage():
        for i in range(2000):
            writer.submit(full_record(i))
        assert writer.flush(timeout=30)
        segments = len(list(directory.glob("*.jsonl")))
        assert segments >= 20  # the backlog: dozens of sealed segments on disk
        # the writer thread unmaps the segments the request path filled, on its next tick
        assert wait_until(lambda: mapped_segments(directory) <= 2, 10), (
            f"{mapped_segments(directory)} of {segments} spool segments still mapped"
        )
    assert wait_until(lambda: writer.flush(1) and store.count() == 2000 and writer.healthy, 60)
    assert mapped_segments(directory) <= 2
    writer.close()
    assert store.ids() == {f"req-{i:06d}" for i in range(2000)}
    assert not writer.spool.pending()


def test_sealed_segments_are_synced_at_the_next_fsync_tick(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment sealed during an outage is unmapped at once, so its ``msync`` is gone with the
    mapping: the interval sync must reach it through its descriptor, or a power cut could lose
    every sealed segment of a long outage, not only the last interval's rows."""
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 64 * 1024)
    store = backend.open()
    writer = LedgerWriter(
        store,
        queue_max_rows=100,
        batch_size=50,
        flush_interval_s=0.02,
        retry_interval_s=0.2,
        fsync_interval_s=0.1,
    )
    synced: list[int] = []
    real_fdatasync = spool_module.os.fdatasync

    def counting_fdatasync(fd: int) -> None:
        synced.append(fd)
        real_fdatasync(fd)

    monkeypatch.setattr(spool_module.os, "fdatasync", counting_fdatasync)
    with backend.outage():
        for i in range(1000):
            writer.submit(full_record(i))
        assert writer.flush(timeout=30)
        sealed = len(list(writer.spool.directory.glob("*.jsonl"))) - 1  # less the active one
        assert sealed >= 10
        assert wait_until(lambda: writer.spool.unsynced_segments == 0 and len(synced) >= sealed, 10)
    assert wait_until(lambda: writer.flush(1) and store.count() == 1000 and writer.healthy, 60)
    writer.close()
    assert store.ids() == {f"req-{i:06d}" for i in range(1000)}
