"""Append-only JSONL spool: where ledger rows wait while the database is unreachable.

One JSON record per line. Appends and replays take an exclusive ``flock`` on the file, so several
gateway processes sharing a ledger (and so a spool) never interleave or replay each other's rows
twice. Replay inserts with the store's idempotent insert, then truncates: a crash halfway through
replays the same rows again next time, and ``ON CONFLICT DO NOTHING`` makes that harmless. A line
that cannot be parsed (say, a torn last line after a power cut) is moved to ``<spool>.rejected``
with a log line, never silently dropped.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import orjson

from gearshift.ledger.codec import record_from_json, record_to_json_line
from gearshift.ledger.record import LedgerRecord

log = logging.getLogger("gearshift.ledger")


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rejected_path = path.with_name(path.name + ".rejected")

    @contextmanager
    def _locked(self) -> Iterator[BinaryIO]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def append(self, records: Sequence[LedgerRecord]) -> None:
        if not records:
            return
        data = b"".join(record_to_json_line(r) for r in records)
        with self._locked() as handle:
            handle.seek(0, os.SEEK_END)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def pending(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def count(self) -> int:
        if not self.pending():
            return 0
        with open(self.path, "rb") as handle:
            return sum(1 for line in handle if line.strip())

    def replay(self, insert: Callable[[list[LedgerRecord]], int], *, batch_size: int = 500) -> int:
        """Insert every spooled record, then empty the spool; returns how many were replayed.

        Whatever ``insert`` raises (the database is down again) propagates with the spool intact.
        """
        with self._locked() as handle:
            handle.seek(0)
            lines = handle.read().splitlines()
            records: list[LedgerRecord] = []
            rejected: list[bytes] = []
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    records.append(record_from_json(orjson.loads(line)))
                except (orjson.JSONDecodeError, TypeError, ValueError, ArithmeticError) as exc:
                    log.error("ledger spool %s line %d is unreadable (%s)", self.path, number, exc)
                    rejected.append(line)
            for start in range(0, len(records), batch_size):
                insert(records[start : start + batch_size])
            if rejected:
                with open(self.rejected_path, "ab") as out:
                    out.write(b"\n".join(rejected) + b"\n")
                log.error(
                    "ledger spool: %d unreadable line(s) kept in %s",
                    len(rejected),
                    self.rejected_path,
                )
            handle.seek(0)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        return len(records)

    def reject(self, records: Sequence[LedgerRecord], reason: str) -> None:
        """Keep records the database refused as data (not as an outage) for a person to inspect."""
        self.rejected_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.rejected_path, "ab") as out:
            out.write(b"".join(record_to_json_line(r) for r in records))
        log.error(
            "ledger: %d record(s) refused by the database (%s); kept in %s",
            len(records),
            reason,
            self.rejected_path,
        )
