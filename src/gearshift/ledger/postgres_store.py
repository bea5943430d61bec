"""PostgreSQL ledger (psycopg 3, imported only when a ``postgresql://`` URL is opened).

Shared by several gateway replicas: inserts are idempotent on ``id``, migrations run under an
advisory lock so replicas starting together apply each step once. A broken connection is dropped
and re-opened on the next call, so the writer recovers by itself when the server comes back.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from gearshift.errors import ConfigError
from gearshift.ledger.codec import COLUMNS, record_to_row
from gearshift.ledger.migrations import MIGRATIONS, Migration
from gearshift.ledger.record import LedgerRecord
from gearshift.ledger.store import (
    LedgerStore,
    LedgerUnavailable,
    default_spool_path,
    redact_url,
)

CONNECT_TIMEOUT_S = 5
MIGRATION_LOCK_ID = 0x6765617273  # "gears": one advisory lock for schema changes

_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?|%")


def to_pyformat(sql: str) -> str:
    """``?`` placeholders -> psycopg's ``%s`` (and a literal ``%`` -> ``%%``), outside quotes."""

    def swap(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token.replace("%", "%%")

    return _PLACEHOLDER.sub(swap, sql)


# COPY into per-connection staging tables, then one INSERT ... SELECT ... ON CONFLICT DO NOTHING:
# far cheaper than a statement per row, and idempotent on id like every other write path.
STAGING_SQL = (
    "CREATE TEMP TABLE IF NOT EXISTS ledger_incoming "
    "(LIKE requests INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS ledger_incoming_tags "
    "(LIKE request_tags INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
)
COPY_REQUESTS_SQL = f"COPY ledger_incoming ({', '.join(COLUMNS)}) FROM STDIN"
COPY_TAGS_SQL = "COPY ledger_incoming_tags (request_id, key, value, ts) FROM STDIN"
COPY_DIRECT_REQUESTS_SQL = f"COPY requests ({', '.join(COLUMNS)}) FROM STDIN"
COPY_DIRECT_TAGS_SQL = "COPY request_tags (request_id, key, value, ts) FROM STDIN"
MERGE_REQUESTS_SQL = (
    f"INSERT INTO requests ({', '.join(COLUMNS)}) "
    f"SELECT {', '.join(COLUMNS)} FROM ledger_incoming ON CONFLICT (id) DO NOTHING"
)
MERGE_TAGS_SQL = (
    "INSERT INTO request_tags (request_id, key, value, ts) "
    "SELECT request_id, key, value, ts FROM ledger_incoming_tags ON CONFLICT DO NOTHING"
)


class PostgresStore(LedgerStore):
    backend = "postgresql"

    def __init__(self, url: str, *, spool_dir: Any = None) -> None:
        import psycopg

        self._psycopg = psycopg
        self._dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.url = redact_url(url)
        self.spool_path = default_spool_path(url, spool_dir)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._writer: Any = None
        self._staged: Any = None  # the connection whose staging tables exist
        self._reader: Any = None
        self._closed = False
        try:
            self._writer = self._connect()
        except LedgerUnavailable as exc:
            raise ConfigError(f"cannot open PostgreSQL ledger {self.url}: {exc}") from None

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        except self._psycopg.Error as exc:
            raise LedgerUnavailable(str(exc).strip()) from exc

    def _writer_conn(self) -> Any:
        if self._writer is None or self._writer.closed or self._writer.broken:
            self._writer = self._connect()
        return self._writer

    def _reader_conn(self) -> Any:
        if self._reader is None or self._reader.closed or self._reader.broken:
            self._reader = self._connect()
        return self._reader

    def _drop(self, conn: Any) -> None:
        with contextlib.suppress(self._psycopg.Error):
            conn.close()

    # ---- writes ---------------------------------------------------------------------------

    def insert_many(self, records: Sequence[LedgerRecord]) -> int:
        if not records:
            return 0
        rows = [record_to_row(r, money_as_text=False) for r in records]
        tags = [(r.id, k, str(v), r.ts) for r in records for k, v in r.tags.items()]
        with self._write_lock:
            if self._closed:  # not bad data: the rows stay in the spool for the next start
                raise LedgerUnavailable(f"PostgreSQL ledger {self.url} is closed")
            conn = self._writer_conn()
            try:
                if self._staged is not conn:  # temp tables live as long as their connection
                    for statement in STAGING_SQL:
                        conn.execute(statement)  # autocommit: they outlive any rollback
                    self._staged = conn
                with conn.transaction(), conn.cursor() as cur:
                    try:
                        with conn.transaction():  # a savepoint: a conflict undoes only this
                            added = self._copy_direct(cur, rows, tags)
                    except self._psycopg.errors.UniqueViolation:
                        # A replayed or retried row: merge idempotently through staging.
                        added = self._copy_in(cur, rows, tags)
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
                self._drop(conn)
                raise LedgerUnavailable(f"PostgreSQL ledger {self.url}: {exc}") from exc
        return max(added, 0)

    @staticmethod
    def _copy_direct(cur: Any, rows: list[tuple[Any, ...]], tags: list[tuple[Any, ...]]) -> int:
        """COPY straight into the tables: the common case (fresh ids), about twice as fast as
        the staging merge, which a duplicate id falls back to."""
        with cur.copy(COPY_DIRECT_REQUESTS_SQL) as copy:
            for row in rows:
                copy.write_row(row)
        if tags:
            with cur.copy(COPY_DIRECT_TAGS_SQL) as copy:
                for tag in tags:
                    copy.write_row(tag)
        return len(rows)

    @staticmethod
    def _copy_in(cur: Any, rows: list[tuple[Any, ...]], tags: list[tuple[Any, ...]]) -> int:
        # A row with a value of the wrong type must fail here, as data, not as an outage.
        with cur.copy(COPY_REQUESTS_SQL) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(MERGE_REQUESTS_SQL)
        added = int(cur.rowcount)
        if tags:
            with cur.copy(COPY_TAGS_SQL) as copy:
                for tag in tags:
                    copy.write_row(tag)
            cur.execute(MERGE_TAGS_SQL)
        return added

    def execute_write(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._write_lock:
            conn = self._writer_conn()
            try:
                with conn.cursor() as cur:
                    cur.execute(to_pyformat(sql), tuple(params))
                    return int(cur.rowcount)
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
                self._drop(conn)
                raise LedgerUnavailable(f"PostgreSQL ledger {self.url}: {exc}") from exc

    # ---- reads ----------------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._read_lock:
            conn = self._reader_conn()
            try:
                with conn.cursor() as cur:
                    cur.execute(to_pyformat(sql), tuple(params))
                    names = [d.name for d in cur.description or ()]
                    return names, list(cur.fetchall())
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
                self._drop(conn)
                raise LedgerUnavailable(f"PostgreSQL ledger {self.url}: {exc}") from exc

    def execute_read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._read(sql, params)[1]

    def sum_cost(self, where: str = "", params: Sequence[Any] = ()) -> tuple[Decimal, Decimal]:
        # NUMERIC sums are exact in PostgreSQL itself.
        sql = "SELECT SUM(cost_usd), SUM(counterfactual_cost_usd) FROM requests"
        if where:
            sql += f" WHERE {where}"
        total, counterfactual = self.execute_read(sql, params)[0]
        return Decimal(total or 0), Decimal(counterfactual or 0)

    def execute_read_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        names, rows = self._read(sql, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    # ---- schema and lifecycle -------------------------------------------------------------

    def migrate(self, migrations: Iterable[Migration] = MIGRATIONS) -> list[str]:
        applied: list[str] = []
        with self._write_lock:
            conn = self._writer_conn()
            conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
                )
                done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
                for step in migrations:
                    if step.name in done:
                        continue
                    with conn.transaction():
                        for statement in step.statements("postgresql"):
                            conn.execute(statement)
                        if step.apply is not None:
                            step.apply(conn, "postgresql")
                        conn.execute(
                            "INSERT INTO schema_migrations (name, applied_at) VALUES (%s, %s)",
                            (step.name, time.time()),
                        )
                    applied.append(step.name)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
        return applied

    def ping(self) -> bool:
        try:
            self.execute_read("SELECT 1")
        except LedgerUnavailable:
            return False
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._read_lock:
            if self._reader is not None:
                self._drop(self._reader)
        with self._write_lock:
            if self._writer is not None:
                self._drop(self._writer)
