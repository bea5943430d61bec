"""``LedgerWriter``: ledger writes off the request path, durable before the response, bounded.

``submit(record)`` copies the record's JSON line into the memory-mapped write-ahead spool (so
the row survives a ``kill -9`` from that moment: see ``spool.py``) and, while the in-memory
queue holds fewer than ``queue_max_rows``, queues the record itself too. A background thread
drains the queue every ``flush_interval_s`` or as soon as ``batch_size`` rows wait, inserting each
batch in one transaction (``INSERT ... ON CONFLICT (id) DO NOTHING``: a retried or replayed row
never duplicates), then deletes the spool segments whose rows are all committed.

When the queue is full (the database is slower than traffic, or down), rows stay on disk only and
the thread reads them back once it has caught up, so memory stays bounded whatever the backlog;
the disk backlog is bounded by ``spool_max_bytes``, past which ``admit()`` is False and the
gateway refuses new requests with a 503 (counted in ``stats.refused``). When the database is down
the thread retries every ``retry_interval_s``; at start it replays segments a crashed process left.
``close()`` writes everything submitted before it returns, or leaves it in the spool for the next
start when the database is still down.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from gearshift.ledger.record import LedgerRecord
from gearshift.ledger.spool import SEAL_BYTES, Segment, Spool
from gearshift.ledger.store import LedgerStore, LedgerUnavailable

log = logging.getLogger("gearshift.ledger")

ORPHAN_SCAN_INTERVAL_S = 60.0  # how often to look for segments a crashed sibling process left


@dataclass(slots=True)
class WriterStats:
    written: int = 0  # rows inserted (duplicates of existing ids not counted)
    duplicates: int = 0  # rows skipped because their id was already in the ledger
    replayed: int = 0  # rows inserted from disk: spilled rows and segments of a crashed process
    rejected: int = 0  # rows the database refused as data (kept in <spool>.rejected)
    refused: int = 0  # requests refused (503) because the spool reached spool_max_bytes
    batches: int = 0
    outages: int = 0


@dataclass(slots=True)
class _Sealed:
    """Queue marker: every row queued before it belongs to ``segment``, which can be deleted
    once they (and its spilled rows) are committed."""

    segment: Segment


class LedgerWriter:
    def __init__(
        self,
        store: LedgerStore,
        *,
        batch_size: int = 2000,
        flush_interval_s: float = 0.05,
        retry_interval_s: float = 1.0,
        spool: Spool | None = None,
        queue_max_rows: int = 20_000,
        spool_max_bytes: int = 1024 * 1024 * 1024,
        fsync_interval_s: float = 1.0,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_interval_s = retry_interval_s
        self.queue_max_rows = queue_max_rows
        self.spool_max_bytes = spool_max_bytes
        if spool is None:
            if store.spool_path is None:
                raise ValueError(
                    "LedgerWriter needs a spool: pass spool= or open the store with spool_dir="
                )
            spool = Spool(store.spool_path, fsync_interval_s=fsync_interval_s)
        self.spool = spool
        self.stats = WriterStats()
        # Records, seal markers and flush markers (Events the thread sets once everything
        # queued before them is written, or safely on disk while the database is down).
        self._queue: deque[LedgerRecord | _Sealed | threading.Event] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._last_chance = False
        self._healthy = True
        self._full_logged = False
        self._next_retry = 0.0
        self._next_fsync = time.monotonic() + spool.fsync_interval_s
        self._spilled_drained = 0
        self._next_orphan_scan = 0.0  # at once: replay what a crashed process left
        # A segment that fills up between two ticks is sealed by the request path, in order.
        spool.on_roll = lambda segment: self._queue.append(_Sealed(segment))
        self._spool_error: str | None = None  # set while the spool cannot be written (disk full)
        with contextlib.suppress(OSError):  # a full disk at start: journal() will say so
            spool.prepare()
        self._thread = threading.Thread(target=self._run, name="gearshift-ledger", daemon=True)
        self._thread.start()
        # A safety net for a process that exits without calling close(): flush at interpreter exit.
        atexit.register(self.close)

    # ---- request path ---------------------------------------------------------------------

    def submit(self, record: LedgerRecord) -> None:
        """Spool one record (into the page cache) and queue it; never raises for a dead
        database."""
        if self._closing and not self._thread.is_alive():
            # Late arrival after close(): write it synchronously rather than drop it.
            self._write_now([record])
            return
        queue = self._queue
        try:
            keep = self.spool.journal(record, spill=len(queue) >= self.queue_max_rows)
        except OSError as exc:
            keep = True  # a full disk: hold the row in memory (admit() bounds how many)
            self._spool_failed(exc)
        if keep:
            queue.append(record)
            if len(queue) >= self.batch_size:
                self._wake.set()
        if self._closing and not self._thread.is_alive():
            self._write_queued()  # close() finished between our check and the append

    def admit(self) -> bool:
        """False (and counted) while the spool is at ``spool_max_bytes``: the gateway refuses
        new requests rather than serve ones it could not record."""
        spool_ok = self._spool_error is None or len(self._queue) < self.queue_max_rows
        if spool_ok and self.spool.disk_bytes < self.spool_max_bytes:
            if self._full_logged:
                self._full_logged = False
                log.warning("ledger spool below its limit again; accepting requests")
            return True
        self.stats.refused += 1
        if not self._full_logged:
            self._full_logged = True
            log.error(
                "ledger spool %s holds %d MB (ledger.spool_max_mb)%s: refusing new requests "
                "with 503 until the database catches up",
                self.spool.directory,
                self.spool.disk_bytes // (1024 * 1024),
                f" and cannot be written ({self._spool_error})" if self._spool_error else "",
            )
        return False

    def _spool_failed(self, exc: OSError) -> None:
        if self._spool_error is None:
            log.error(
                "ledger spool %s cannot be written (%s): rows are held in memory, not safe "
                "from a crash, until it can",
                self.spool.directory,
                exc,
            )
        self._spool_error = str(exc)

    # ---- control --------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Rows submitted but not yet known to be in the database (in memory or spilled)."""
        queued = sum(1 for item in list(self._queue) if isinstance(item, LedgerRecord))
        return queued + self.backlog_on_disk

    @property
    def backlog_on_disk(self) -> int:
        """Rows held on disk only (spilled while the queue was full), not yet read back."""
        return self.spool.spilled - self._spilled_drained

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def spilled(self) -> int:
        return self.spool.spilled

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything submitted so far is written (or, while the database is down,
        safely in the spool); False on timeout."""
        if not self._thread.is_alive():
            return not any(isinstance(i, LedgerRecord) for i in list(self._queue))
        self._seal()
        marker = threading.Event()
        self._queue.append(marker)
        self._wake.set()
        return marker.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write out everything queued, then stop the thread. Safe to call twice."""
        if not self._thread.is_alive():
            return
        atexit.unregister(self.close)
        self._last_chance = True  # during an outage, still try the database once
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("ledger writer still busy after %ss; %d rows queued", timeout, self.pending)
            return
        # Anything that raced past the thread's last drain (it is in the spool as well).
        self._write_queued()

    # ---- background thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            closing = self._closing
            try:
                self._tick(closing)
            except Exception:  # the thread must outlive any bug; rows stay queued and spooled
                log.exception("ledger writer: unexpected error; retrying")
                time.sleep(min(self.retry_interval_s, 1.0))
                continue
            if closing and (not self._queue or not self._healthy):
                self._leave_for_next_start()
                return

    def _tick(self, closing: bool) -> None:
        self.spool.unmap_sealed()  # even while the database is down: the backlog is on disk
        now = time.monotonic()
        if now >= self._next_fsync:
            self._next_fsync = now + self.spool.fsync_interval_s
            self.spool.fsync()
        waiting = not self._healthy and now < self._next_retry
        if waiting and not (closing and self._last_chance):
            self._release_flush_markers()  # their rows are on disk; nothing more to do now
            return
        if closing:
            self._last_chance = False
        try:
            if closing or now >= self._next_orphan_scan:
                self._next_orphan_scan = now + ORPHAN_SCAN_INTERVAL_S
                self._recover_orphans()
            # Rotating the spool segment is not free: done when it is big or old enough (or
            # when closing), not at every tick; flush() rotates at once.
            seal_bytes = min(SEAL_BYTES, max(self.spool_max_bytes // 8, 1))
            if closing or (self._healthy and self.spool.seal_due(now, seal_bytes)):
                self._seal()
            self._write_queued()
        except LedgerUnavailable as exc:
            self._outage(exc)
            self._release_flush_markers()
            return
        self._recovered()

    def _seal(self) -> None:
        try:
            self.spool.seal(lambda segment: self._queue.append(_Sealed(segment)))
        except OSError as exc:  # no room for the next segment: keep appending to this one
            self._spool_failed(exc)
            return
        if self._spool_error is not None:
            self._spool_error = None
            log.warning("ledger spool %s writable again", self.spool.directory)

    def _write_queued(self) -> None:
        queue = self._queue
        while queue:
            batch: list[LedgerRecord] = []
            while queue and len(batch) < self.batch_size and isinstance(queue[0], LedgerRecord):
                batch.append(queue.popleft())  # type: ignore[arg-type]
            if batch:
                try:
                    self._insert_isolating(batch)
                except BaseException:
                    queue.extendleft(reversed(batch))  # keep them, in order, for the retry
                    raise
                continue
            item = queue[0]
            if isinstance(item, _Sealed):
                # Its queued rows are committed; its spilled rows are read back from disk.
                drained = self.spool.drain_spilled(
                    item.segment, self._insert_isolating, self.batch_size
                )
                self.stats.replayed += drained
                self._spilled_drained += item.segment.spill_rows
                queue.popleft()
                self.spool.delete(item.segment)
            else:
                queue.popleft()
                item.set()  # type: ignore[union-attr]

    def _write_now(self, batch: list[LedgerRecord]) -> None:
        try:
            self._insert_isolating(batch)
        except LedgerUnavailable as exc:
            self._outage(exc)
            self.spool.append(batch)

    def _insert_isolating(self, batch: list[LedgerRecord]) -> int:
        """Insert a batch; if the database refuses it *as data*, insert row by row and keep the
        refused rows aside, so one bad record never blocks (or loses) the others."""
        try:
            added = self.store.insert_many(batch)
        except LedgerUnavailable:
            raise
        except Exception as exc:
            if len(batch) == 1:
                self.spool.reject(batch, f"{type(exc).__name__}: {exc}")
                self.stats.rejected += 1
                return 0
            return sum(self._insert_isolating([r]) for r in batch)
        self.stats.written += added
        self.stats.duplicates += len(batch) - added
        self.stats.batches += 1
        return added

    def _recover_orphans(self) -> None:
        replayed = self.spool.recover(self._insert_isolating, batch_size=self.batch_size)
        if replayed:
            self.stats.replayed += replayed
            log.warning(
                "ledger: replayed %d spooled row(s) left in %s", replayed, self.spool.directory
            )

    def _release_flush_markers(self) -> None:
        for item in list(self._queue):
            if isinstance(item, threading.Event):
                item.set()

    def _leave_for_next_start(self) -> None:
        """Closing with the database still down: every queued row is in a spool segment; close
        the segments (releasing their locks) so the next process replays them."""
        for item in list(self._queue):
            if isinstance(item, _Sealed):
                self.spool.close_sealed(item.segment)
        self._queue.clear()
        self.spool.close()
        if self.spool.pending():
            log.error(
                "ledger database unavailable at shutdown: %d row(s) left in %s for the next start",
                self.spool.count(),
                self.spool.directory,
            )

    def _outage(self, exc: LedgerUnavailable) -> None:
        if self._healthy:
            self.stats.outages += 1
            log.error(
                "ledger database unavailable (%s): spooling rows to %s, retrying every %ss",
                exc,
                self.spool.directory,
                self.retry_interval_s,
            )
        self._healthy = False
        self._next_retry = time.monotonic() + self.retry_interval_s

    def _recovered(self) -> None:
        if not self._healthy:
            self._healthy = True
            log.warning("ledger database reachable again; rows go straight to it")
