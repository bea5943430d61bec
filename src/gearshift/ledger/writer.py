"""``LedgerWriter``: ledger writes off the request path, batched, idempotent, never lost.

``submit(record)`` appends to a deque (well under a microsecond, no lock, no I/O). A background
thread drains it every ``flush_interval_s`` or as soon as ``batch_size`` rows wait, and inserts
each batch in one transaction (``INSERT ... ON CONFLICT (id) DO NOTHING``, so a retried or
replayed row never duplicates). When the database is down, batches go to the JSONL spool and
the thread retries every ``retry_interval_s``; when the database answers again, the spool is
replayed first. ``close()`` writes (or spools) everything submitted before it returns.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from gearshift.ledger.record import LedgerRecord
from gearshift.ledger.spool import Spool
from gearshift.ledger.store import LedgerStore, LedgerUnavailable

log = logging.getLogger("gearshift.ledger")


@dataclass(slots=True)
class WriterStats:
    written: int = 0  # rows inserted (duplicates of existing ids not counted)
    duplicates: int = 0  # rows skipped because their id was already in the ledger
    spooled: int = 0  # rows sent to the spool during outages
    replayed: int = 0  # rows replayed from the spool
    rejected: int = 0  # rows the database refused as data (kept in <spool>.rejected)
    batches: int = 0
    outages: int = 0


class LedgerWriter:
    def __init__(
        self,
        store: LedgerStore,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 0.05,
        retry_interval_s: float = 1.0,
        spool: Spool | None = None,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_interval_s = retry_interval_s
        if spool is None:
            if store.spool_path is None:
                raise ValueError(
                    "LedgerWriter needs a spool: pass spool= or open the store with spool_dir="
                )
            spool = Spool(store.spool_path)
        self.spool = spool
        self.stats = WriterStats()
        # Records, and flush markers (Events) that the thread sets once everything queued
        # before them is written or spooled.
        self._queue: deque[LedgerRecord | threading.Event] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._last_chance = False
        self._healthy = True
        self._next_retry = 0.0
        self._thread = threading.Thread(target=self._run, name="gearshift-ledger", daemon=True)
        self._thread.start()
        # A safety net for a process that exits without calling close(): flush at interpreter exit.
        atexit.register(self.close)

    # ---- request path ---------------------------------------------------------------------

    def submit(self, record: LedgerRecord) -> None:
        """Queue one record; returns at once. Never raises for a dead database."""
        if self._closing and not self._thread.is_alive():
            # Late arrival after close(): write it synchronously rather than drop it.
            self._write([record])
            return
        self._queue.append(record)
        if len(self._queue) >= self.batch_size:
            self._wake.set()
        if self._closing and not self._thread.is_alive():
            self._write_queued()  # close() finished between our check and the append

    # ---- control --------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return sum(1 for item in list(self._queue) if not isinstance(item, threading.Event))

    @property
    def healthy(self) -> bool:
        return self._healthy

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything submitted so far is written or spooled; False on timeout."""
        if not self._thread.is_alive():
            return not self._queue
        marker = threading.Event()
        self._queue.append(marker)
        self._wake.set()
        return marker.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write out everything queued, then stop the thread. Safe to call twice."""
        if not self._thread.is_alive():
            return
        atexit.unregister(self.close)
        self._last_chance = True  # during an outage, still try the database once before spooling
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("ledger writer still busy after %ss; %d rows queued", timeout, self.pending)
            return
        # Anything that raced past the thread's last drain.
        self._write_queued()

    # ---- background thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            closing = self._closing
            try:
                # Closing: try the database once more even mid-outage, so a spool is not left
                # behind when the database came back after the last retry.
                self._maybe_replay(force=closing)
                self._write_queued()
            except Exception:  # the thread must outlive any bug; rows stay queued
                log.exception("ledger writer: unexpected error; retrying")
                time.sleep(min(self.retry_interval_s, 1.0))
                continue
            if closing and not self._queue:
                return

    def _write_queued(self) -> None:
        queue = self._queue
        while queue:
            batch: list[LedgerRecord] = []
            markers: list[threading.Event] = []
            while queue and len(batch) < self.batch_size:
                item = queue.popleft()
                if isinstance(item, threading.Event):
                    markers.append(item)
                    break  # everything before the marker must be written before it is set
                batch.append(item)
            try:
                self._write(batch)
            except BaseException:
                # Not even the spool took them (disk full?): keep them queued, in order.
                queue.extendleft(reversed([*batch, *markers]))
                raise
            for marker in markers:
                marker.set()

    def _write(self, batch: list[LedgerRecord]) -> None:
        if not batch:
            return
        if not self._healthy and time.monotonic() < self._next_retry:
            if not self._last_chance:
                self._to_spool(batch)
                return
            self._last_chance = False
        try:
            if self.spool.pending():
                self._replay()
            self._insert_isolating(batch)
        except LedgerUnavailable as exc:
            self._outage(exc)
            self._to_spool(batch)
            return
        self._recovered()

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

    def _to_spool(self, batch: Sequence[LedgerRecord]) -> None:
        self.spool.append(batch)
        self.stats.spooled += len(batch)

    def _outage(self, exc: LedgerUnavailable) -> None:
        if self._healthy:
            self.stats.outages += 1
            log.error(
                "ledger database unavailable (%s): spooling rows to %s, retrying every %ss",
                exc,
                self.spool.path,
                self.retry_interval_s,
            )
        self._healthy = False
        self._next_retry = time.monotonic() + self.retry_interval_s

    def _recovered(self) -> None:
        if not self._healthy:
            self._healthy = True
            log.warning("ledger database reachable again; rows go straight to it")

    def _replay(self) -> None:
        replayed = self.spool.replay(self._insert_isolating, batch_size=self.batch_size)
        self.stats.replayed += replayed
        if replayed:
            log.warning("ledger: replayed %d spooled row(s) from %s", replayed, self.spool.path)

    def _maybe_replay(self, *, force: bool = False) -> None:
        """Replay the spool when the database may be back (at start, and after each retry wait)."""
        if not force and not self._healthy and time.monotonic() < self._next_retry:
            return
        if not self.spool.pending():
            return
        try:
            self._replay()
        except LedgerUnavailable as exc:
            self._outage(exc)
            return
        self._recovered()
