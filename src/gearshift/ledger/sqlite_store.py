"""SQLite ledger: WAL journal, ``synchronous=NORMAL``, one writer connection, a reader per thread.

WAL lets reports read while the gateway writes; NORMAL sync keeps commits cheap and loses at most
the last transactions on power loss (never on a process crash). Several gateway processes may
share one file: writes serialise on SQLite's lock with a generous busy timeout.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from gearshift.errors import ConfigError
from gearshift.ledger.codec import INT64_MAX, PICO, record_to_row
from gearshift.ledger.migrations import MIGRATIONS, Migration
from gearshift.ledger.record import LedgerRecord
from gearshift.ledger.store import (
    INSERT_REQUEST_SQL,
    INSERT_TAG_SQL,
    LedgerStore,
    LedgerUnavailable,
    default_spool_path,
)

T = TypeVar("T")

BUSY_TIMEOUT_S = 30.0
_DATA_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
)


MIGRATION_WAIT_S = 60.0


def _retry_locked(action: Callable[[], T], wait_s: float) -> T:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            locked = "locked" in str(exc) or "busy" in str(exc)
            if not locked or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class _DecimalSum:
    """``dsum(text)``: an exact SQL sum of decimal text (SQLite's SUM would go through floats)."""

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: Any) -> None:
        if value is not None:
            self.total += Decimal(str(value))

    def finalize(self) -> str:
        return format(self.total, "f")


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already: on a full disk (SQLITE_FULL)
    it rolls back by itself, and a second ROLLBACK would replace "database or disk is full" by
    "cannot rollback - no transaction is active" in the error the operator sees."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def parse_sqlite_url(url: str) -> tuple[str, float]:
    """(path, busy timeout in seconds) of ``sqlite:///path[?busy_timeout_ms=N]``."""
    prefix = "sqlite:///"
    path, _, query = url.partition("?")
    if not path.startswith(prefix) or len(path) == len(prefix):
        raise ConfigError(
            f"bad SQLite ledger URL {url!r}: use sqlite:///relative/file.db or "
            "sqlite:////absolute/file.db"
        )
    busy_timeout = BUSY_TIMEOUT_S
    for name, value in parse_qsl(query):
        if name != "busy_timeout_ms":
            raise ConfigError(f"SQLite ledger URL {url!r}: unknown option {name!r}")
        try:
            busy_timeout = float(value) / 1000
        except ValueError:
            raise ConfigError(
                f"SQLite ledger URL {url!r}: busy_timeout_ms must be a number"
            ) from None
    return path[len(prefix) :], busy_timeout


class SQLiteStore(LedgerStore):
    backend = "sqlite"

    def __init__(self, url: str, *, spool_dir: Any = None) -> None:
        self.url = url
        path, self._busy_timeout = parse_sqlite_url(url)
        self._uri = False
        if path == ":memory:":
            # A named shared-cache database, so the reader connections see the writer's rows.
            path = f"file:gearshift-ledger-{uuid.uuid4().hex}?mode=memory&cache=shared"
            self._uri = True
            self.spool_path = default_spool_path(url, spool_dir) if spool_dir else None
        else:
            file = Path(path)
            file.parent.mkdir(parents=True, exist_ok=True)
            self.spool_path = (
                default_spool_path(url, spool_dir)
                if spool_dir
                else file.with_name(file.name + ".spool.jsonl")
            )
        self._path = path
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self._writer = self._connect()
        if not self._uri:
            mode = _retry_locked(
                lambda: self._writer.execute("PRAGMA journal_mode=WAL").fetchone()[0],
                MIGRATION_WAIT_S,
            )
            if str(mode).lower() != "wal":
                raise ConfigError(f"SQLite ledger {path}: could not enable WAL (got {mode})")
        self._writer.execute("PRAGMA synchronous=NORMAL")

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._path,
                uri=self._uri,
                timeout=self._busy_timeout,
                isolation_level=None,  # autocommit; transactions are explicit BEGIN/COMMIT
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open SQLite ledger {self._path}: {exc}") from None
        conn.create_aggregate("dsum", 1, _DecimalSum)  # type: ignore[arg-type]
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    # ---- writes ---------------------------------------------------------------------------

    def insert_many(self, records: Sequence[LedgerRecord]) -> int:
        if not records:
            return 0
        rows = [record_to_row(r, money_as_text=True) for r in records]
        tags = [(r.id, k, str(v), r.ts) for r in records for k, v in r.tags.items()]
        with self._write_lock:
            if self._closed:  # not bad data: the rows stay in the spool for the next start
                raise LedgerUnavailable(f"SQLite ledger {self._path} is closed")
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    cur = conn.executemany(INSERT_REQUEST_SQL, rows)
                    added = cur.rowcount
                    if tags:
                        conn.executemany(INSERT_TAG_SQL, tags)
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
            except _DATA_ERRORS:
                raise  # a bad record, not a dead database: the writer isolates it
            except sqlite3.Error as exc:
                raise LedgerUnavailable(f"SQLite ledger {self._path}: {exc}") from exc
        return max(added, 0)

    def execute_write(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._write_lock:
            try:
                cur = self._writer.execute(sql, tuple(params))
            except sqlite3.OperationalError as exc:
                raise LedgerUnavailable(f"SQLite ledger {self._path}: {exc}") from exc
            return cur.rowcount

    # ---- reads ----------------------------------------------------------------------------

    def execute_read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._reader().execute(sql, tuple(params)).fetchall())

    def sum_cost(self, where: str = "", params: Sequence[Any] = ()) -> tuple[Decimal, Decimal]:
        try:
            total, counterfactual = super().sum_cost(where, params)
        except sqlite3.OperationalError:  # integer overflow: beyond $9.2M in one sum
            total = counterfactual = Decimal(-1)
        if max(total, counterfactual) * PICO < INT64_MAX and total >= 0:
            return total, counterfactual
        # Saturated picodollars: sum the exact decimal text instead (slower, always exact).
        sql = "SELECT dsum(cost_usd), dsum(counterfactual_cost_usd) FROM requests"
        if where:
            sql += f" WHERE {where}"
        exact_total, exact_counterfactual = self.execute_read(sql, params)[0]
        return Decimal(exact_total), Decimal(exact_counterfactual)

    def execute_read_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self._reader().execute(sql, tuple(params))
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # ---- schema and lifecycle -------------------------------------------------------------

    def migrate(self, migrations: Iterable[Migration] = MIGRATIONS) -> list[str]:
        steps = list(migrations)
        # Several processes may open a fresh file at once (``serve --workers N``): whoever loses
        # the race for the write lock waits for the winner's schema, however short the busy
        # timeout configured for request-path writes.
        return _retry_locked(lambda: self._migrate(steps), MIGRATION_WAIT_S)

    def _migrate(self, migrations: list[Migration]) -> list[str]:
        applied: list[str] = []
        with self._write_lock:
            conn = self._writer
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            # IMMEDIATE: another process opening the same file waits instead of racing us.
            conn.execute("BEGIN IMMEDIATE")
            try:
                done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
                for step in migrations:
                    if step.name in done:
                        continue
                    for statement in step.statements("sqlite"):
                        conn.execute(statement)
                    if step.apply is not None:
                        step.apply(conn, "sqlite")
                    conn.execute(
                        "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                        (step.name, time.time()),
                    )
                    applied.append(step.name)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        return applied

    def ping(self) -> bool:
        try:
            self._reader().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._write_lock:
            self._writer.close()
