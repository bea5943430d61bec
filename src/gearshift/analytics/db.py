"""A small read/write handle on the ledger database for analytics (SQLite or PostgreSQL).

Reports run in their own process, beside a running gateway or without one, so they open the ledger
by URL themselves rather than through the gateway's batched writer. Only the analytics tables are
ever written here (the rollup); the ``requests`` table is read-only to this package.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from gearshift.errors import ConfigError

Dialect = Literal["sqlite", "postgresql"]


def sqlite_path(url: str) -> str:
    """``sqlite:///./x.db`` -> ``./x.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``."""
    rest = url.split("://", 1)[1] if "://" in url else url
    rest = rest.split("?", 1)[0]  # options such as ?busy_timeout_ms= belong to the gateway
    return rest[1:] if rest.startswith("/") else rest


class LedgerDB:
    """One connection; ``?`` placeholders in SQL work on both backends."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect: Dialect
        self._conn: Any
        if url.startswith("sqlite:") or "://" not in url:
            path = sqlite_path(url)
            if path != ":memory:" and not Path(path).exists():
                raise ConfigError(
                    f"ledger database {path} does not exist; start the gateway once "
                    "(gearshift serve) or pass the right --storage / --config"
                )
            self.dialect = "sqlite"
            # Autocommit mode: we open transactions explicitly (BEGIN IMMEDIATE for the rollup).
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout = 10000")
        elif url.startswith(("postgresql:", "postgres:")):
            import psycopg  # lazy: only reports on PostgreSQL pay for it

            self.dialect = "postgresql"
            try:
                self._conn = psycopg.connect(url, autocommit=True)
            except psycopg.OperationalError as exc:
                raise ConfigError(f"cannot connect to ledger database: {exc}") from None
        else:
            raise ConfigError(
                f"unsupported storage URL {url!r}; use sqlite:///path.db or postgresql://..."
            )

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def _params(self, params: Sequence[Any]) -> tuple[Any, ...] | None:
        # psycopg parses '%' in the SQL only when given parameters: none means literal SQL.
        if not params and self.dialect == "postgresql":
            return None
        return tuple(params)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._conn.execute(self._sql(sql), self._params(params))
        rows: list[tuple[Any, ...]] = cur.fetchall()
        return rows

    def iterate(
        self, sql: str, params: Sequence[Any] = (), *, batch: int = 20_000
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of a large result without holding them all: SQLite steps its cursor; PostgreSQL
        uses a server-side cursor (inside a transaction, as it requires)."""
        if self.dialect == "sqlite":
            cur = self._conn.execute(sql, tuple(params))
            while chunk := cur.fetchmany(batch):
                yield from chunk
            return
        with self._conn.transaction(), self._conn.cursor(name="gearshift_rows") as cur:
            cur.itersize = batch
            cur.execute(self._sql(sql), self._params(params))
            yield from cur

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(
            self._sql(sql), self._params(params)
        ).fetchone()
        return row

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(self._sql(sql), self._params(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.dialect == "sqlite":
            self._conn.executemany(sql, rows)
        else:
            with self._conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)

    @contextmanager
    def write_transaction(self) -> Iterator[None]:
        """A transaction that holds the write lock from its start (so concurrent reports that
        both try to extend the rollup serialise instead of double counting)."""
        if self.dialect == "sqlite":
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        else:
            with self._conn.transaction():
                yield

    def table_exists(self, name: str) -> bool:
        if self.dialect == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = "SELECT 1 FROM information_schema.tables WHERE table_name = ?"
        return self.fetchone(sql, (name,)) is not None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LedgerDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
