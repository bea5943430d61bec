"""The ledger's write-ahead spool: every row is on disk before its response is sent.

``Spool.journal(record)`` copies the record's JSON line into this process's *active segment*, a
file mapped into memory (``MAP_SHARED``): the bytes are in the OS page cache when it returns, and
the page cache survives a ``kill -9`` of the gateway (a power cut is covered by an ``msync`` every
``fsync_interval_s``). A copy into a mapping is a ``memcpy``, not a system call: it costs the
request path about a microsecond and, unlike ``write()``, never hands the GIL to the writer
thread in the middle of a request. A segment's ``SEGMENT_BYTES`` are allocated when it is created
(so a full disk is an error there, never a SIGBUS later), and a new one is started when it fills.
The database writer rotates the active segment (``seal``) and deletes a sealed segment once every
row in it is committed; it rotates once the segment holds ``SEAL_BYTES`` or is
``SEAL_INTERVAL_S`` old, so in steady state the spool holds about a second of rows.
Only the active segment stays mapped: a sealed one is unmapped (its bytes stay in the page cache)
and read back with ``pread``, so a backlog on disk never counts in the gateway's RSS.

Segments live in ``<spool>.d/``, named ``<owner>-<seq>.jsonl``; the owning process holds an
exclusive ``flock`` on each while it may still write or drain it. A segment nobody holds (its
process was killed) is an *orphan*: ``recover`` replays it with the store's idempotent insert
(``ON CONFLICT (id) DO NOTHING``, so rows already committed are skipped) and deletes it. Several
gateway processes may share one spool directory: each only ever touches its own segments and
orphans it managed to lock. A line that cannot be parsed (a torn last line after a power cut) is
moved to ``<spool>.rejected`` with a log line, never silently dropped; the unwritten (zero) tail
of a segment whose process died is skipped. The single-file spool of earlier versions
(``<spool>`` itself) is replayed the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import logging
import mmap
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from gearshift.ledger.codec import record_from_json, record_to_json_line
from gearshift.ledger.record import LedgerRecord

log = logging.getLogger("gearshift.ledger")

Insert = Callable[[list[LedgerRecord]], int]

SEGMENT_BYTES = 4 * 1024 * 1024  # ~5,000 rows; the writer seals far sooner while it keeps up
# The first this many bytes of each new segment are faulted in for writing by the writer thread
# before the request path gets the segment (``_prefault``): ~400 rows, several ticks of traffic.
PREFAULT_BYTES = 256 * 1024
# The writer rotates the active segment once it holds this many bytes (within the faulted-in
# part) or is this old, not at every tick: making, faulting in, unmapping and deleting a segment
# every 50 ms cost the gateway ~0.07 ms of CPU per request at full load. Rows committed but not
# yet rotated out are replayed after a crash like any other, and skipped as already there.
SEAL_BYTES = 192 * 1024
SEAL_INTERVAL_S = 1.0
_MADV_POPULATE_WRITE = 23  # Linux >= 5.14


@dataclass(slots=True)
class Segment:
    """One spool file of this process. ``spill_from`` is the byte offset from which its rows
    are on disk only (the in-memory queue was full); ``None`` while every row is also queued."""

    path: Path
    fd: int
    map: mmap.mmap
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
        self._next_seal = 0.0  # monotonic time from which the active segment is rotated
        self._spare: Segment | None = None  # made ready by the writer thread, off the request path
        self.on_roll: Callable[[Segment], None] | None = None  # a full segment was sealed
        self._rolled: list[Segment] = []  # sealed on the request path, still mapped
        # Sealed and unmapped, but not yet synced: ``fsync`` covers them with the active one, so
        # the power-cut window is the interval for every row on disk, not only the newest.
        self._unsynced: list[Segment] = []
        self._unconfirmed_rows = 0  # rows in our segments not yet deleted (committed)
        self.disk_bytes = 0  # bytes in this process's live segments plus orphans found
        self.spilled = 0  # rows written to disk only, because the memory queue was full

    # ---- request path (the event loop) ----------------------------------------------------

    def journal(self, record: LedgerRecord, *, spill: bool) -> bool:
        """Append one record to the active segment; with ``spill`` (the queue is full) it lives
        on disk only until the writer reads it back. Returns True when the caller must also
        queue it in memory (the segment is not spilling)."""
        line = record_to_json_line(record)
        size = len(line)
        with self._lock:
            segment = self._active
            if segment is None or segment.size + size > len(segment.map):
                segment = self._roll(segment, size)
            end = segment.size + size
            segment.map[segment.size : end] = line
            if spill and segment.spill_from is None:
                segment.spill_from = segment.size
            segment.size = end
            segment.rows += 1
            self._unconfirmed_rows += 1
            self.disk_bytes += size
            if segment.spill_from is None:
                return True
            segment.spill_rows += 1
            self.spilled += 1
            return False

    # ---- the writer thread ----------------------------------------------------------------

    def seal_due(self, now: float, max_bytes: int = SEAL_BYTES) -> bool:
        """Whether the active segment should be rotated now: it holds rows, and ``max_bytes``
        or more of them or it was started ``SEAL_INTERVAL_S`` ago."""
        segment = self._active
        if segment is None or segment.rows == 0:
            return False
        return segment.size >= max_bytes or now >= self._next_seal

    def seal(self, then: Callable[[Segment], None]) -> Segment | None:
        """Rotate: the active segment (if it holds rows) stops taking appends; ``then`` runs
        under the append lock, so the caller can queue a marker behind its last queued row."""
        self.prepare()
        with self._lock:
            old = self._active
            if old is None or old.rows == 0:
                return None
            self._active, self._spare = self._spare, None
            self._next_seal = time.monotonic() + SEAL_INTERVAL_S
            then(old)
        old.map.close()  # no more appends: see unmap_sealed()
        self._unsynced.append(old)
        return old

    def prepare(self) -> None:
        """Have the next segment ready, so the request path never creates one in a hurry."""
        if self._spare is not None:
            return
        fresh = self._new_segment(SEGMENT_BYTES)
        _prefault(fresh, PREFAULT_BYTES)
        with self._lock:
            if self._spare is None:
                self._spare = fresh
                return
        self._discard(fresh)  # another thread made one meanwhile

    def unmap_sealed(self) -> None:
        """Unmap the segments that filled up on the request path since the last call. A sealed
        segment is only ever read with ``pread``; while mapped, every page written stays in the
        process's RSS (file-backed), so a backlog of sealed segments (a slow or down database)
        would grow RSS by the backlog's size. Its bytes stay in the page cache (a ``kill -9``
        loses nothing) and dirty pages are written back as before."""
        with self._lock:
            rolled, self._rolled = self._rolled, []
        for segment in rolled:
            segment.map.close()
        self._unsynced += rolled

    def drain_spilled(self, segment: Segment, insert: Insert, batch_size: int) -> int:
        """Insert the rows of a sealed segment that were never queued in memory; returns how
        many. Whatever ``insert`` raises propagates with the segment intact."""
        if segment.spill_from is None:
            return 0
        records = self._read(segment.fd, segment.path, segment.spill_from, segment.size)
        for start in range(0, len(records), batch_size):
            insert(records[start : start + batch_size])
        return len(records)

    def delete(self, segment: Segment) -> None:
        """Every row of a sealed segment is committed: remove it (then release its lock)."""
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        segment.map.close()
        self._forget_unsynced(segment)
        os.close(segment.fd)
        with self._lock:
            self.disk_bytes -= segment.size
            self._unconfirmed_rows -= segment.rows

    def fsync(self) -> None:
        """Sync what is on disk but not yet committed: the active segment (``msync``) and the
        segments sealed since the last call (``fdatasync``; their bytes were written through
        a mapping that is closed now, so only the file descriptor can sync them)."""
        segment = self._active
        if segment is not None and segment.rows:
            with contextlib.suppress(OSError, ValueError):  # ValueError: sealed meanwhile
                segment.map.flush()
        sealed, self._unsynced = self._unsynced, []
        for done in sealed:
            with contextlib.suppress(OSError):
                os.fdatasync(done.fd)

    @property
    def unsynced_segments(self) -> int:
        """Sealed segments whose bytes may still be only in the page cache."""
        return len(self._unsynced)

    def _forget_unsynced(self, segment: Segment) -> None:
        # committed (or synced by close_sealed): no fsync needed, and its descriptor is closing
        self._unsynced = [kept for kept in self._unsynced if kept is not segment]

    def close(self) -> None:
        """Stop appending: an empty active segment is removed, one with rows stays for the next
        process to replay (its lock goes with the file descriptor)."""
        with self._lock:
            segment, self._active = self._active, None
            spare, self._spare = self._spare, None
        for unused in (spare, segment):
            if unused is not None and unused.rows == 0:
                self._discard(unused)
        if segment is not None and segment.rows:
            self.close_sealed(segment)

    def close_sealed(self, segment: Segment) -> None:
        """Leave a segment on disk for the next start (the database is still down): synced,
        and cut to the bytes written."""
        if not segment.map.closed:  # a sealed segment is unmapped already: fsync covers it
            with contextlib.suppress(OSError):
                segment.map.flush()
            segment.map.close()
        with contextlib.suppress(OSError):
            os.ftruncate(segment.fd, segment.size)
            os.fsync(segment.fd)
        self._forget_unsynced(segment)
        os.close(segment.fd)

    # ---- recovery -------------------------------------------------------------------------

    def orphans(self) -> list[Path]:
        """Segments of processes that are gone, plus the old single-file spool, oldest first."""
        found = [self.path] if self.pending_legacy() else []
        mine = f"{self._owner}-"  # ours are tracked in memory, never recovered
        with contextlib.suppress(FileNotFoundError):
            others = [p for p in self.directory.glob("*.jsonl") if not p.name.startswith(mine)]
            found += sorted(others, key=_mtime)
        return found

    def recover(self, insert: Insert, *, batch_size: int = 500) -> int:
        """Replay and delete every orphan this process can lock; returns rows replayed.
        Whatever ``insert`` raises (the database is down again) propagates; the orphan stays."""
        replayed = 0
        for path in self.orphans():
            with self._claimed(path) as fd:
                if fd is None:
                    continue  # a live process owns it (or another one is replaying it)
                records = self._read(fd, path, 0, None)
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

    # ---- inspection and the legacy single-file API ----------------------------------------

    def pending(self) -> bool:
        """True while any row on disk may not be in the database yet."""
        if self.pending_legacy() or self._unconfirmed_rows > 0:
            return True
        mine = f"{self._owner}-"
        with contextlib.suppress(FileNotFoundError):
            for path in self.directory.glob("*.jsonl"):
                if not path.name.startswith(mine) and _has_rows(path):
                    return True
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
                total += sum(1 for line in handle if line.strip(b"\0 \r\n"))
        return total

    def append(self, records: Sequence[LedgerRecord]) -> None:
        """Write records to a segment of their own, synced, for the next start to replay (a
        late submission after close() whose database write failed)."""
        if not records:
            return
        data = b"".join(record_to_json_line(r) for r in records)
        segment = self._new_segment(len(data), kind="late-")
        segment.map[: len(data)] = data
        segment.size = len(data)
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

    def _roll(self, full: Segment | None, need: int) -> Segment:
        """Start a new active segment (under the append lock): the first one, or because
        ``full`` has no room for ``need`` more bytes; ``full`` is handed to ``on_roll``."""
        spare, self._spare = self._spare, None
        if spare is None or need > len(spare.map):
            if spare is not None:
                self._discard(spare)
            spare = self._new_segment(max(SEGMENT_BYTES, need))
        self._active = spare
        if full is not None:
            if self.on_roll is None:
                raise RuntimeError("a full spool segment and no writer to seal it")
            self.on_roll(full)
            self._rolled.append(full)  # unmapped by the writer thread, off the request path
        return spare

    def _new_segment(self, capacity: int, *, kind: str = "") -> Segment:
        """A locked, allocated, mapped segment; ``kind="late-"`` names one that recovery, even
        this process's, replays (rows written after close())."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{kind}{self._owner}-{next(self._seq):08d}.jsonl"
        # Made under a name recovery never looks at, locked, then renamed: no other process can
        # take a segment for an orphan in the instant between its creation and its lock.
        staging = self.directory / f".{name}.new"
        fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # ours alone: no recovery may take it while we live
            # Blocks reserved up front (not a sparse file): on a full disk this raises ENOSPC
            # here, where it is handled, instead of SIGBUS when a page of the mapping is touched.
            os.posix_fallocate(fd, 0, capacity)
            segment = Segment(self.directory / name, fd, mmap.mmap(fd, capacity))
            os.rename(staging, segment.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
            os.close(fd)
            raise
        return segment

    @staticmethod
    def _discard(segment: Segment) -> None:
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        segment.map.close()
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

    def _read(self, fd: int, path: Path, offset: int, end: int | None) -> list[LedgerRecord]:
        """Records in bytes ``offset..end`` (to the end of the file when None: an orphan,
        whose zero tail, never written, is skipped)."""
        if end is None:
            end = os.fstat(fd).st_size
        data = os.pread(fd, max(0, end - offset), offset) if end > offset else b""
        records: list[LedgerRecord] = []
        rejected: list[bytes] = []
        for number, raw in enumerate(data.splitlines(), 1):
            line = raw.strip(b"\0 \r")  # NULs: pages never written (a crash, a power cut)
            if not line:
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


def _prefault(segment: Segment, nbytes: int) -> None:
    """Fault the first ``nbytes`` of a fresh segment in for writing (``MADV_POPULATE_WRITE``),
    on the writer thread and with the GIL released (a ctypes call), so the request path's copies
    into them take no page fault: the first write to a page of a file mapping enters the
    filesystem (ext4 maps the block and may wait for its journal), which under disk load cost
    the event loop more than the JSON encoding of the row. Best effort: on another OS or an older
    kernel the pages fault in on first write, as without it."""
    madvise = _madvise()
    if madvise is None:
        return
    import ctypes

    view = ctypes.c_char.from_buffer(segment.map)
    address = ctypes.addressof(view)
    del view  # the mapping must hold no exported buffer, or it could not be closed
    madvise(address, min(nbytes, len(segment.map)), _MADV_POPULATE_WRITE)


@functools.cache
def _madvise() -> Callable[[int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


def _has_rows(path: Path) -> bool:
    """A segment's first byte: ``{`` once a row is in it; NUL (or nothing) while it is a
    process's empty, pre-sized next segment."""
    try:
        with open(path, "rb") as handle:
            return handle.read(1) not in (b"", b"\0")
    except FileNotFoundError:
        return False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
