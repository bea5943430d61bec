"""A small synchronous SQL handle over the ledger database (SQLite or PostgreSQL) for the keys
table and for seeding budget counters. Statements use ``?`` placeholders; PostgreSQL gets them
rewritten to ``%s``. psycopg is imported only for a PostgreSQL URL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from gearshift.errors import ConfigError


class Database(Protocol):
    dialect: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(self, path: str, busy_timeout_s: float = 5.0) -> None:
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open SQLite database {path}: {exc}") from None
        self._conn.execute(f"PRAGMA busy_timeout = {round(busy_timeout_s * 1000)}")
        self._lock = threading.Lock()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._lock:
            self._conn.execute(sql, tuple(params))

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._conn.execute(sql, tuple(params)).fetchone()
            return row

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, tuple(params)).fetchall())

    def close(self) -> None:
        self._conn.close()


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        import psycopg

        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to PostgreSQL ledger: {exc}") from None
        self._lock = threading.Lock()

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._lock:
            self._conn.execute(self._sql(sql), tuple(params))

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            cur = self._conn.execute(self._sql(sql), tuple(params))
            row: tuple[Any, ...] | None = cur.fetchone()
            return row

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            cur = self._conn.execute(self._sql(sql), tuple(params))
            return list(cur.fetchall())

    def close(self) -> None:
        self._conn.close()


def open_database(url: str) -> Database:
    if url.startswith("sqlite:"):
        # The ledger's own parser: the same file and options (?busy_timeout_ms=) as the ledger.
        from gearshift.ledger.sqlite_store import parse_sqlite_url

        path, busy_timeout_s = parse_sqlite_url(url)
        return SQLiteDatabase(path, busy_timeout_s)
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return PostgresDatabase(url.replace("postgresql+psycopg://", "postgresql://"))
    raise ConfigError(f"storage URL {url!r} is neither sqlite:///PATH nor postgresql://...")
