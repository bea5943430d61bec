"""gearshift's own ledger as an audit input: a SQLite file or URL, a PostgreSQL URL, or a ledger
export (JSON lines of ``LedgerRecord`` fields).

The ledger keeps no prompt text, only what the router predicted for each request; so a ledger
audit replays those stored predictions under other tolerances and prices, and a request that was
sent straight to a model (no router, no predictions) is skipped with its reason counted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from gearshift.audit.entry import LogEntry, ReadStats
from gearshift.audit.readers.content import as_float, as_int, as_tags

_COLUMNS = (
    "ts, tags, predicted, difficulty, prompt_kind, served_model, chosen_model, requested_model, "
    "prompt_tokens, completion_tokens, cached_tokens, cost_usd, outcome"
)
_BATCH = 5000


def is_ledger_row(obj: dict[str, Any]) -> bool:
    return "served_model" in obj and "prompt_tokens" in obj and "requested_model" in obj


def parse_ledger_row(row: dict[str, Any]) -> LogEntry | str:
    if row.get("outcome") not in (None, "ok"):
        return f"ledger row with outcome {row.get('outcome')!r} (not served)"
    predicted = _json(row.get("predicted"))
    if not isinstance(predicted, dict) or not predicted:
        return "ledger row without predictions (sent straight to a model)"
    quality = {str(k): float(v) for k, v in predicted.items() if isinstance(v, int | float)}
    tags = _json(row.get("tags"))
    model = row.get("served_model") or row.get("chosen_model") or row.get("requested_model")
    return LogEntry(
        messages=[],
        model=str(model) if model else None,
        prompt_tokens=as_int(row.get("prompt_tokens")),
        completion_tokens=as_int(row.get("completion_tokens")),
        cached_tokens=as_int(row.get("cached_tokens")) or 0,
        logged_cost_usd=as_float(row.get("cost_usd")),
        tags=as_tags(tags),
        ts=as_float(row.get("ts")),
        predicted=quality,
        difficulty=as_float(row.get("difficulty")),
        kind=str(row["prompt_kind"]) if row.get("prompt_kind") else None,
    )


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


def sqlite_path(url_or_path: str) -> Path | None:
    """The file a ``sqlite:///`` URL names (or the path itself), when it is a SQLite file."""
    if url_or_path.startswith("sqlite:///"):
        return Path(url_or_path[len("sqlite:///") :])
    path = Path(url_or_path)
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return None
    return path if head == b"SQLite format 3\x00" else None


def read_sqlite(path: Path, stats: ReadStats) -> Iterator[LogEntry]:
    # Read-only: an audit never migrates or locks a live gateway's ledger.
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        try:
            cursor = conn.execute(f"SELECT {_COLUMNS} FROM requests")
        except sqlite3.DatabaseError as exc:
            stats.problem(str(path), f"not a gearshift ledger: {exc}", malformed=True)
            return
        yield from _rows(cursor, str(path), stats)
    finally:
        conn.close()


def read_postgres(url: str, stats: ReadStats) -> Iterator[LogEntry]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn, conn.cursor(name="audit") as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM requests")
        yield from _rows(cur, "ledger", stats)


def _rows(cursor: Any, where: str, stats: ReadStats) -> Iterator[LogEntry]:
    while True:
        rows = cursor.fetchmany(_BATCH)
        if not rows:
            return
        for row in rows:
            stats.lines += 1
            parsed = parse_ledger_row(dict(row))
            if isinstance(parsed, str):
                stats.problem(f"{where}: row {stats.lines}", parsed, malformed=False)
                continue
            stats.entries += 1
            stats.formats["gearshift-ledger"] += 1
            yield parsed
