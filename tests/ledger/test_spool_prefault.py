"""The request path's copy into the spool takes no page fault: the writer thread faults the first
``PREFAULT_BYTES`` of each new segment in before handing it over (a fault on a fresh page of a
file mapping enters the filesystem, and under disk load cost more than encoding the row)."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import pytest
from test_store import full_record

from gearshift.ledger.spool import PREFAULT_BYTES, Spool

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="MADV_POPULATE_WRITE is Linux's"
)


def test_rows_journaled_into_a_prepared_segment_take_no_page_fault(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl")
    spool.on_roll = lambda segment: None
    spool.prepare()  # the writer thread's part: the next segment, faulted in
    records = [full_record(i) for i in range(200)]
    assert sum(len(str(r)) for r in records) < PREFAULT_BYTES  # all within the faulted part
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for record in records:
        assert spool.journal(record, spill=False)
    faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
    spool.close()
    # ~50 pages are written; without the prefault each one faults in on its first row
    assert faults <= 3
