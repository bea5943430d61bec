"""One ledger interface, two backends: ``open_store("sqlite:///path")`` or ``open_store("postgresql://...")``.

SQL given to ``execute_read``/``execute_write`` uses ``?`` placeholders on both backends (the
PostgreSQL store translates them), so callers such as reports and policy write one query. Where
the dialects differ, ``store.backend`` says which one is open.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from gearshift.errors import ConfigError
from gearshift.ledger.codec import COLUMNS, row_to_record
from gearshift.ledger.migrations import MIGRATIONS, Backend, Migration
from gearshift.ledger.record import LedgerRecord

log = logging.getLogger("gearshift.ledger")

SPOOL_DIR_ENV = "GEARSHIFT_LEDGER_SPOOL_DIR"

INSERT_REQUEST_SQL = (
    f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    "ON CONFLICT (id) DO NOTHING"
)
INSERT_TAG_SQL = (
    "INSERT INTO request_tags (request_id, key, value, ts) VALUES (?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)


class LedgerUnavailable(Exception):
    """The database cannot be reached or written right now (the writer spools and retries)."""


class LedgerStore(ABC):
    backend: Backend
    url: str  # without any password
    spool_path: Path | None  # where the writer spools rows while the database is down

    # ---- writes ---------------------------------------------------------------------------

    @abstractmethod
    def insert_many(self, records: Sequence[LedgerRecord]) -> int:
        """Insert records in one transaction, skipping ids already present; returns rows added.
        Raises ``LedgerUnavailable`` when the database cannot take them."""

    @abstractmethod
    def execute_write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction; returns the affected row count."""

    # ---- reads ----------------------------------------------------------------------------

    @abstractmethod
    def execute_read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query."""

    @abstractmethod
    def execute_read_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query as column -> value mappings."""

    def count(self, where: str = "", params: Sequence[Any] = ()) -> int:
        sql = "SELECT COUNT(*) FROM requests" + (f" WHERE {where}" if where else "")
        return int(self.execute_read(sql, params)[0][0])

    def get(self, request_id: str) -> LedgerRecord | None:
        rows = self.execute_read_dicts("SELECT * FROM requests WHERE id = ?", (request_id,))
        return row_to_record(rows[0]) if rows else None

    def fetch(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        where: str = "",
        params: Sequence[Any] = (),
        limit: int | None = None,
    ) -> list[LedgerRecord]:
        """Records with ``since <= ts < until`` (and an optional extra condition), oldest first."""
        clauses, args = [], []
        if since is not None:
            clauses.append("ts >= ?")
            args.append(since)
        if until is not None:
            clauses.append("ts < ?")
            args.append(until)
        if where:
            clauses.append(f"({where})")
            args.extend(params)
        sql = "SELECT * FROM requests"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY ts, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [row_to_record(r) for r in self.execute_read_dicts(sql, args)]

    def ids(self) -> set[str]:
        return {str(r[0]) for r in self.execute_read("SELECT id FROM requests")}

    def sum_cost(self, where: str = "", params: Sequence[Any] = ()) -> tuple[Decimal, Decimal]:
        """Exact (cost, counterfactual cost) over matching requests, in USD."""
        sql = "SELECT SUM(cost_pusd), SUM(counterfactual_cost_pusd) FROM requests"
        if where:
            sql += f" WHERE {where}"
        cost, counterfactual = self.execute_read(sql, params)[0]
        pico = Decimal(10) ** 12
        return Decimal(int(cost or 0)) / pico, Decimal(int(counterfactual or 0)) / pico

    # ---- schema and lifecycle -------------------------------------------------------------

    @abstractmethod
    def migrate(self, migrations: Iterable[Migration] = MIGRATIONS) -> list[str]:
        """Apply the steps not yet recorded in ``schema_migrations``; returns their names."""

    def applied_migrations(self) -> list[str]:
        rows = self.execute_read("SELECT name FROM schema_migrations ORDER BY applied_at, name")
        return [str(r[0]) for r in rows]

    @abstractmethod
    def ping(self) -> bool:
        """True when the database answers a trivial query now."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def redact_url(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def default_spool_path(url: str, spool_dir: str | os.PathLike[str] | None) -> Path:
    """``<dir>/ledger-<hash of url>.spool.jsonl``: one spool per database, found at restart."""
    directory = spool_dir or os.environ.get(SPOOL_DIR_ENV) or ".gearshift-spool"
    digest = hashlib.sha256(redact_url(url).encode()).hexdigest()[:12]
    return Path(directory) / f"ledger-{digest}.spool.jsonl"


def open_store(
    url: str,
    *,
    spool_dir: str | os.PathLike[str] | None = None,
    migrations: Iterable[Migration] | None = None,
) -> LedgerStore:
    """Open (creating if needed) the ledger at ``url`` and bring its schema up to date.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite:///:memory:``, or
    ``postgresql://user:pass@host:port/db``. ``spool_dir`` is where rows wait while the database
    is unreachable (default: next to a SQLite file; ``$GEARSHIFT_LEDGER_SPOOL_DIR`` or
    ``./.gearshift-spool`` for PostgreSQL).
    """
    steps = list(MIGRATIONS if migrations is None else migrations)
    store: LedgerStore
    if url.startswith("sqlite:"):
        from gearshift.ledger.sqlite_store import SQLiteStore

        store = SQLiteStore(url, spool_dir=spool_dir)
    elif url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from gearshift.ledger.postgres_store import PostgresStore

        store = PostgresStore(url, spool_dir=spool_dir)
    else:
        raise ConfigError(
            f"unsupported ledger storage URL {redact_url(url)!r}: use sqlite:///path/to/file.db "
            "or postgresql://user:password@host:5432/dbname"
        )
    try:
        applied = store.migrate(steps)
    except Exception:
        store.close()
        raise
    if applied:
        log.info("ledger %s: applied migrations %s", store.url, ", ".join(applied))
    return store
