"""Re-roll recent hours whose raw ledger rows changed after they were rolled up.

``rollup._roll_hours`` rolls an hour once it ended ``LAG_S`` ago and never aggregates it again.
A row can still land later with a ``ts`` in that hour: the ledger writer replaying its disk spool
after a database outage longer than the lag, or a stream that outlived it. Such a row is in the
ledger, and the promise is that reports agree with the ledger, so every refresh compares, for the
hours in the ``RECHECK_S`` before the hourly watermark, the raw row count per hour (a count over
the ``requests(ts)`` index) with the rollup's ``sum(requests)`` per hour. Ledger rows are never
updated or deleted, so the count is a sufficient fingerprint. An hour that differs is aggregated
again from its raw rows (before taking the write lock, like ``_roll_hours``), and its hour rows in
all four rollup tables are replaced under the write lock; then the day rows of its day, if days
that far are rolled, are summed again from the hours. Replacing (delete + insert) under the lock
makes concurrent reports safe: whichever runs second finds the hour already right and skips it,
and even a redundant replacement cannot double count.

When nothing differs (the common case) this costs two small reads and takes no write lock.
A row landing more than ``RECHECK_S`` (+ ``LAG_S``) after its hour ended is still missed
(documented limit, docs/finops.md).
"""

from __future__ import annotations

from gearshift.analytics.db import LedgerDB
from gearshift.analytics.rollup import (
    DAY,
    HOUR,
    ROLLUP_TABLES,
    Cube,
    _days_from_hours,
    _insert,
    _serialise,
    aggregate,
    rolled_until,
)

# How far behind the hourly watermark late rows are looked for. Two days covers the spool replay
# after a database outage of up to two days and stays cheap: at 5M rows a month (~170k rows a day)
# it counts ~330k index entries per report (measured: 12 ms SQLite, 19 ms PostgreSQL at 33k).
RECHECK_S = 48 * HOUR


def _hour_of_ts(db: LedgerDB) -> str:
    """SQL for the hour index of ``ts``, floored exactly as ``rows.aggregate_rows`` floors it.
    PostgreSQL's CAST of a double rounds to nearest, hence floor() first; SQLite's truncates
    (ts is positive) and its floor() needs the optional math functions."""
    if db.dialect == "postgresql":
        return f"CAST(floor(ts) AS BIGINT) / {HOUR}"
    return f"CAST(ts AS INTEGER) / {HOUR}"


def _raw_counts(db: LedgerDB, lo: int, hi: int) -> dict[int, int]:
    rows = db.fetchall(
        f"SELECT {_hour_of_ts(db)}, count(*) FROM requests WHERE ts >= ? AND ts < ? GROUP BY 1",
        (lo, hi),
    )
    return {int(h) * HOUR: int(n) for h, n in rows}


def _rolled_counts(db: LedgerDB, lo: int, hi: int) -> dict[int, int]:
    rows = db.fetchall(
        "SELECT period_start, sum(requests) FROM analytics_rollup"
        " WHERE width = ? AND period_start >= ? AND period_start < ? GROUP BY period_start",
        (HOUR, lo, hi),
    )
    return {int(p): int(n) for p, n in rows}


def stale_hours(db: LedgerDB, hours_until: int) -> list[int]:
    """Rolled hours in the recheck window whose raw row count differs from the rollup's."""
    lo = hours_until - RECHECK_S
    raw = _raw_counts(db, lo, hours_until)
    rolled = _rolled_counts(db, lo, hours_until)
    return sorted(h for h in raw.keys() | rolled.keys() if raw.get(h, 0) != rolled.get(h, 0))


def _delete(db: LedgerDB, width: int, lo: int, hi: int) -> None:
    for table in ROLLUP_TABLES:
        db.execute(
            f"DELETE FROM {table} WHERE width = ? AND period_start >= ? AND period_start < ?",
            (width, lo, hi),
        )


def reconcile(db: LedgerDB, hours_until: int) -> list[int]:
    """Bring the rolled hours of the recheck window (and their rolled days) back in line with
    the raw rows; returns the hours replaced."""
    stale = stale_hours(db, hours_until)
    if not stale:
        return []
    # Aggregate outside the lock, as _roll_hours does, so a gateway writing to the same SQLite
    # file is not blocked while raw rows are read.
    cubes: dict[int, Cube] = {h: aggregate(db, h, h + HOUR, HOUR) for h in stale}
    fixed: list[int] = []
    with db.write_transaction():
        _serialise(db)
        now_rolled = _rolled_counts(db, stale[0], stale[-1] + HOUR)  # after the lock: current
        for hour, cube in cubes.items():
            n = sum(cell.requests for cell in cube.cells.values())
            if now_rolled.get(hour, 0) == n:
                continue  # another report replaced it first
            _delete(db, HOUR, hour, hour + HOUR)
            _insert(db, HOUR, cube)
            fixed.append(hour)
        days_until = rolled_until(db, DAY, lock=True)
        for day in sorted({h // DAY * DAY for h in fixed}):
            if days_until is not None and day < days_until:  # later days roll from the hours
                _delete(db, DAY, day, day + DAY)
                _days_from_hours(db, day, day + DAY)
    return fixed
