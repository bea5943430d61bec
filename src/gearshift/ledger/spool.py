"""The ledger's write-ahead spool: every row is on disk before its response is sent.

``Spool.journal(record)`` appends the record's JSON line to this process's *active segment* with
one ``write()``: the bytes are in the OS page cache when it returns, and the page cache survives a
``kill -9`` of the gateway (a power cut is covered by an ``fsync`` every ``fsync_interval_s``).
The database writer rotates the active segment (``seal``) and deletes a sealed segment once every
row in it is committed, so in steady state the spool holds about one flush interval of rows.

Segments live in ``<spool>.d/``, named ``<owner>-<seq>.jsonl``; the owning process holds an
exclusive ``flock`` on each while it may still write or drain it. A segment nobody holds (its
process was killed) is an *orphan*: ``recover`` replays it with the store's idempotent insert
(``ON CONFLICT (id) DO NOTHING``, so rows already committed are skipped) and deletes it. Several
gateway processes may share one spool directory: each only ever touches its own segments and
orphans it managed to lock. A line that cannot be parsed (a torn last line after a power cut) is
moved to ``<spool>.rejected`` with a log line, never silently dropped. The single-file spool of
earlier versions (``<spool>`` itself) is replayed the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from gearshift.ledger.codec import record_from_json, record_to_json_line
from gearshift.ledger.record import LedgerRecord

log = logging.getLogger("gearshift.ledger")

Insert = Callable[[list[LedgerRecord]], int]


@dataclass(slots=True)
class Segment:
    """One spool file of this process. ``spill_from`` is the byte offset from which its rows
    are on disk only (the in-memory queue was full); ``None`` while every row is also queued."""

    path: Path
    fd: int
    size: int = 0
    rows: int = 0
    spill_from: int | None = None
    spill_rows: int = 0


class Spool:
    def __init__(self, path: Path, *, fsync_interval_s: float = 1.0) -> None:
        self.path = path  # the single-file spool of earlier versions, replayed if present
        self.rejected_path = path.with_name(path.name + ".rejected")
        self.directory = path.with_name(path.name.removesuffix(".jsonl") + ".d")
        self.fsync_interval_s = fsync_interval_s
        self._owner = f"{os.getpid()}x{os.urandom(3).hex()}"
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._active: Segment | None = None
        self.disk_bytes = 0  # bytes in this process's live segments plus orphans found
        self.spilled = 0  # rows written to disk only, because the memory queue was full

    # ---- request path (the event loop) ----------------------------------------------------

    def journal(self, record: LedgerRecord, *, spill: bool) -> bool:
        """Append one record to the active segment; with ``spill`` (the queue is full) it lives
        on disk only until the writer reads it back. Returns True when the caller must also
        queue it in memory (the segment is not spilling)."""
        line = record_to_json_line(record)
        with self._lock:
            segment = self._active or self._open_active()
            os.write(segment.fd, line)
            if spill and segment.spill_from is None:
                segment.spill_from = segment.size
            segment.size += len(line)
            segment.rows += 1
            self.disk_bytes += len(line)
            if segment.spill_from is None:
                return True
            segment.spill_rows += 1
            self.spilled += 1
            return False

    # ---- the writer thread ----------------------------------------------------------------

    def seal(self, then: Callable[[Segment], None]) -> Segment | None:
        """Rotate: the active segment (if it holds rows) stops taking appends; ``then`` runs
        under the append lock, so the caller can queue a marker behind its last queued row."""
        fresh = self._new_segment()
        with self._lock:
            old = self._active
            if old is None or old.rows == 0:
                self._discard(fresh)
                return None
            self._active = fresh
            then(old)
        return old

    def drain_spilled(self, segment: Segment, insert: Insert, batch_size: int) -> int:
        """Insert the rows of a sealed segment that were never queued in memory; returns how
        many. Whatever ``insert`` raises propagates with the segment intact."""
        if segment.spill_from is None:
            return 0
        records = self._read(segment.fd, segment.path, segment.spill_from)
        for start in range(0, len(records), batch_size):
            insert(records[start : start + batch_size])
        return len(records)

    def delete(self, segment: Segment) -> None:
        """Every row of a sealed segment is committed: remove it (then release its lock)."""
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        os.close(segment.fd)
        with self._lock:
            self.disk_bytes -= segment.size

    def fsync(self) -> None:
        segment = self._active
        if segment is not None and segment.rows:
            with contextlib.suppress(OSError):
                os.fsync(segment.fd)

    def close(self) -> None:
        """Stop appending: an empty active segment is removed, one with rows stays for the next
        process to replay (its lock goes with the file descriptor)."""
        with self._lock:
            segment, self._active = self._active, None
        if segment is None:
            return
        if segment.rows == 0:
            self._discard(segment)
        else:
            with contextlib.suppress(OSError):
                os.fsync(segment.fd)
            os.close(segment.fd)

    def close_sealed(self, segment: Segment) -> None:
        """Leave a sealed segment on disk for the next start (the database is still down)."""
        with contextlib.suppress(OSError):
            os.fsync(segment.fd)
        os.close(segment.fd)

    # ---- recovery -------------------------------------------------------------------------

    def orphans(self) -> list[Path]:
        """Segments of processes that are gone, plus the old single-file spool, oldest first."""
        found = [self.path] if self.pending_legacy() else []
        with contextlib.suppress(FileNotFoundError):
            found += sorted(self.directory.glob("*.jsonl"), key=_mtime)
        return found

    def recover(self, insert: Insert, *, batch_size: int = 500) -> int:
        """Replay and delete every orphan this process can lock; returns rows replayed.
        Whatever ``insert`` raises (the database is down again) propagates; the orphan stays."""
        replayed = 0
        for path in self.orphans():
            with self._claimed(path) as fd:
                if fd is None:
                    continue  # a live process owns it (or another one is replaying it)
                records = self._read(fd, path, 0)
                for start in range(0, len(records), batch_size):
                    insert(records[start : start + batch_size])
                size = os.fstat(fd).st_size
                if path == self.path:
                    os.ftruncate(fd, 0)  # the legacy spool stays, empty, like before
                else:
                    path.unlink()
                replayed += len(records)
                with self._lock:
                    self.disk_bytes = max(0, self.disk_bytes - size)
        return replayed

    def count_orphan_bytes(self) -> int:
        """At start: the bytes other (dead) processes left, counted against ``max_bytes``."""
        total = 0
        for path in self.orphans():
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        with self._lock:
            self.disk_bytes += total
        return total

    # ---- inspection and the legacy single-file API ----------------------------------------

    def pending(self) -> bool:
        """True while any row on disk may not be in the database yet."""
        if self.pending_legacy():
            return True
        with contextlib.suppress(FileNotFoundError):
            return any(p.stat().st_size > 0 for p in self.directory.glob("*.jsonl"))
        return False

    def pending_legacy(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def count(self) -> int:
        """Rows on disk (in every segment and the legacy file) not yet confirmed written."""
        total = 0
        files = [self.path]
        if self.directory.exists():
            files += self.directory.glob("*.jsonl")
        for file in files:
            with contextlib.suppress(FileNotFoundError), open(file, "rb") as handle:
                total += sum(1 for line in handle if line.strip())
        return total

    def append(self, records: Sequence[LedgerRecord]) -> None:
        """Write records to a segment of their own, synced, for the next start to replay (a
        late submission after close() whose database write failed)."""
        if not records:
            return
        segment = self._new_segment()
        os.write(segment.fd, b"".join(record_to_json_line(r) for r in records))
        self.close_sealed(segment)

    def replay(self, insert: Insert, *, batch_size: int = 500) -> int:
        """Replay every orphan segment (and the legacy file); kept for callers of old."""
        return self.recover(insert, batch_size=batch_size)

    def reject(self, records: Sequence[LedgerRecord], reason: str) -> None:
        """Keep records the database refused as data (not as an outage) for a person to inspect."""
        self._keep_aside([record_to_json_line(r) for r in records])
        log.error(
            "ledger: %d record(s) refused by the database (%s); kept in %s",
            len(records),
            reason,
            self.rejected_path,
        )

    # ---- internals ------------------------------------------------------------------------

    def _open_active(self) -> Segment:
        self._active = self._new_segment()
        return self._active

    def _new_segment(self) -> Segment:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self._owner}-{next(self._seq):08d}.jsonl"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # ours alone: no recovery may take it while we live
        return Segment(path, fd)

    @staticmethod
    def _discard(segment: Segment) -> None:
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        os.close(segment.fd)

    @contextlib.contextmanager
    def _claimed(self, path: Path) -> Iterator[int | None]:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            yield None
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            if os.fstat(fd).st_nlink == 0:  # replayed and deleted while we waited
                yield None
                return
            yield fd
        finally:
            os.close(fd)

    def _read(self, fd: int, path: Path, offset: int) -> list[LedgerRecord]:
        size = os.fstat(fd).st_size
        data = os.pread(fd, max(0, size - offset), offset) if size > offset else b""
        records: list[LedgerRecord] = []
        rejected: list[bytes] = []
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(record_from_json(orjson.loads(line)))
            except (orjson.JSONDecodeError, TypeError, ValueError, ArithmeticError) as exc:
                log.error("ledger spool %s line %d is unreadable (%s)", path, number, exc)
                rejected.append(line + b"\n")
        if rejected:
            self._keep_aside(rejected)
            log.error(
                "ledger spool: %d unreadable line(s) kept in %s", len(rejected), self.rejected_path
            )
        return records

    def _keep_aside(self, lines: list[bytes]) -> None:
        self.rejected_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.rejected_path, "ab") as out:
            out.write(b"".join(lines))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
