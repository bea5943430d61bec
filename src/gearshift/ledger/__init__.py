"""The request ledger: one row per request, SQLite or PostgreSQL, written off the request path.

``open_store(url)`` opens a store and applies pending migrations; ``LedgerWriter(store)`` batches
writes in a background thread and spools to JSONL while the database is down. psycopg is imported
only when a PostgreSQL URL is opened.
"""

from gearshift.ledger.codec import record_from_json, record_to_json
from gearshift.ledger.migrations import MIGRATIONS, Migration
from gearshift.ledger.record import LedgerRecord, Outcome
from gearshift.ledger.spool import Spool
from gearshift.ledger.store import LedgerStore, LedgerUnavailable, open_store
from gearshift.ledger.writer import LedgerWriter, WriterStats

__all__ = [
    "MIGRATIONS",
    "LedgerRecord",
    "LedgerStore",
    "LedgerUnavailable",
    "LedgerWriter",
    "Migration",
    "Outcome",
    "Spool",
    "WriterStats",
    "open_store",
    "record_from_json",
    "record_to_json",
]
