"""Cubes of ledger aggregates, and the hourly and daily rollups that keep reports fast.

A cube holds, keyed by (period, router, served model, key, tags, ...):

- ``cells``: + outcome (``OUTCOME_CODES``, in the column named ``ok``); sums (requests,
  fallbacks, tokens, cost, counterfactual);
- ``hists``: latency and cost-per-request histograms per cell key, for percentiles;
- ``kinds`` and ``kind_hists``: the same, split by the router's prompt kind too (a kind key is a
  cell key + kind). Reports by or filtered by kind use them, so they show every figure the
  others do; the rest use the coarser cells, which are several times fewer;
- ``lighter``: + the *eligible set* of a successful request (the candidates whose predicted
  quality was within the row's tolerance of the best prediction) + prompt kind. "Could have
  been lighter" compares their tiers with the served model's at report time, so a tier change
  in the configuration applies to old rows too.

A report merges cubes, so it costs the same whether they come from raw rows or the rollup.
``refresh`` rolls every complete hour that ended more than ``LAG_S`` ago up from raw rows
(``rows.aggregate_rows``), then every complete day from those hours, inside the database, into
the ``analytics_rollup*`` tables. Rolled hours are only aggregated again when a row lands late in
one of the last ``reconcile.RECHECK_S`` (``reconcile``: per-hour counts are compared on every
refresh; a differing hour and its day are replaced). ``load_rollup`` reads them back,
letting the database merge periods (``collapse``) and histograms (``hist_dims``) down to what a
report needs, so Python sees a few thousand rows whatever the ledger's size.

Money is summed exactly as integer picodollars (the ledger's ``cost_pusd`` columns). Percentiles
come from log-spaced histogram buckets of ratio ``BUCKET_RATIO`` that keep a count and a sum each:
a reported percentile is the mean of the values in the nearest-rank bucket, so it is exact when
they are equal (same-priced requests) and always within that bucket (10% wide).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from gearshift.analytics.db import LedgerDB

HOUR = 3600
DAY = 86400
LAG_S = 15 * 60  # rows are written after the request ends: leave stragglers time to land
CHUNK_DAYS = 7  # days rolled per transaction, so the write lock is never held long
PICO = 10**12
BUCKET_RATIO = 1.1
LATENCY_BASE_MS = 0.1  # bucket 0 holds latencies <= 0.1 ms
COST_BASE_PUSD = 1000  # 1e-9 USD; bucket 0 holds zero cost, bucket 1 anything up to this

CellKey = tuple[int, str, str, str, str, int]  # period, router, served, key, tags, outcome
# The ledger's outcomes as the rollup's ``ok`` column stores them (since migration m009; before
# it every failure was 0). A row with an outcome this version does not know counts as an error.
OUTCOME_CODES = {
    "ok": 1,
    "cache_hit": 2,
    "error": 3,
    "client_disconnect": 4,
    "rejected": 5,
    "invalid": 6,
}
OUTCOME_NAMES = {code: name for name, code in OUTCOME_CODES.items()}
SUCCESS_CODES = (OUTCOME_CODES["ok"], OUTCOME_CODES["cache_hit"])
ERROR_CODE = OUTCOME_CODES["error"]
HIST_DIMS = ("router", "served_model", "key_id", "tags", "ok")  # a cell key's columns
KindKey = tuple[int, str, str, str, str, int, str]  # ... + prompt kind
# period, router, served, key, tags, eligible set, prompt kind
LighterKey = tuple[int, str, str, str, str, str, str]
Hist = dict[int, list[float]]  # bucket -> [count, sum of values]

_CELL_COLUMNS = """
    width INTEGER NOT NULL, period_start BIGINT NOT NULL, router TEXT NOT NULL,
    served_model TEXT NOT NULL, key_id TEXT NOT NULL, tags TEXT NOT NULL"""
ROLLUP_DDL = (
    f"""CREATE TABLE IF NOT EXISTS analytics_rollup ({_CELL_COLUMNS}, ok INTEGER NOT NULL,
        requests BIGINT NOT NULL, fallbacks BIGINT NOT NULL, prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL, cached_tokens BIGINT NOT NULL,
        reasoning_tokens BIGINT NOT NULL, cost_pico BIGINT NOT NULL,
        counterfactual_pico BIGINT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS analytics_rollup_hist ({_CELL_COLUMNS}, ok INTEGER NOT NULL,
        metric TEXT NOT NULL, bucket INTEGER NOT NULL, n BIGINT NOT NULL,
        total DOUBLE PRECISION NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS analytics_rollup_kind ({_CELL_COLUMNS}, ok INTEGER NOT NULL,
        prompt_kind TEXT NOT NULL, requests BIGINT NOT NULL, cost_pico BIGINT NOT NULL,
        counterfactual_pico BIGINT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS analytics_rollup_lighter ({_CELL_COLUMNS},
        within_tol TEXT NOT NULL, requests BIGINT NOT NULL, cost_pico BIGINT NOT NULL)""",
    *(
        f"CREATE INDEX IF NOT EXISTS {t}_wp ON {t} (width, period_start)"
        for t in ("analytics_rollup", "analytics_rollup_hist", "analytics_rollup_kind")
    ),
    "CREATE INDEX IF NOT EXISTS analytics_rollup_lighter_wp"
    " ON analytics_rollup_lighter (width, period_start)",
    """CREATE TABLE IF NOT EXISTS analytics_rollup_state (
        width INTEGER PRIMARY KEY, rolled_until BIGINT NOT NULL)""",
)
_SUM_COLUMNS = """requests BIGINT NOT NULL, fallbacks BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
        cost_pico BIGINT NOT NULL, counterfactual_pico BIGINT NOT NULL"""
# Ledger migration m008 (the same text): kinds get every sum and their own histograms, the
# eligible sets a prompt kind; the rollup is emptied, so the next report rolls the (never
# deleted) raw rows up again, in the new shape.
ROLLUP_BY_KIND_DDL = (
    "DROP TABLE IF EXISTS analytics_rollup_kind",
    "DROP TABLE IF EXISTS analytics_rollup_lighter",
    f"""CREATE TABLE IF NOT EXISTS analytics_rollup_kind ({_CELL_COLUMNS}, ok INTEGER NOT NULL,
        prompt_kind TEXT NOT NULL, {_SUM_COLUMNS})""",
    f"""CREATE TABLE IF NOT EXISTS analytics_rollup_kind_hist ({_CELL_COLUMNS},
        ok INTEGER NOT NULL, prompt_kind TEXT NOT NULL, metric TEXT NOT NULL,
        bucket INTEGER NOT NULL, n BIGINT NOT NULL, total DOUBLE PRECISION NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS analytics_rollup_lighter ({_CELL_COLUMNS},
        within_tol TEXT NOT NULL, prompt_kind TEXT NOT NULL, requests BIGINT NOT NULL,
        cost_pico BIGINT NOT NULL)""",
    *(
        f"CREATE INDEX IF NOT EXISTS {t}_wp ON {t} (width, period_start)"
        for t in ("analytics_rollup_kind", "analytics_rollup_kind_hist", "analytics_rollup_lighter")
    ),
    "DELETE FROM analytics_rollup",
    "DELETE FROM analytics_rollup_hist",
    "DELETE FROM analytics_rollup_state",
)
# Ledger migration m009 (the same text): the ``ok`` column keeps each failure's own outcome
# (``OUTCOME_CODES``) instead of 0 for all of them; emptied, so the rollup is rebuilt from the rows.
ROLLUP_OUTCOMES_DDL = (
    "DELETE FROM analytics_rollup",
    "DELETE FROM analytics_rollup_hist",
    "DELETE FROM analytics_rollup_kind",
    "DELETE FROM analytics_rollup_kind_hist",
    "DELETE FROM analytics_rollup_lighter",
    "DELETE FROM analytics_rollup_state",
)
ROLLUP_OUTCOMES_STEP = "m009_rollup_outcomes"
ROLLUP_TABLES = (
    "analytics_rollup",
    "analytics_rollup_hist",
    "analytics_rollup_kind",
    "analytics_rollup_kind_hist",
    "analytics_rollup_lighter",
)


@dataclass(slots=True)
class Cell:
    requests: int = 0
    fallbacks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_pico: int = 0
    counterfactual_pico: int = 0
    latency_hist: Hist = field(default_factory=dict)  # milliseconds
    cost_hist: Hist = field(default_factory=dict)  # picodollars

    def add(self, other: Cell) -> None:
        self.requests += other.requests
        self.fallbacks += other.fallbacks
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.cost_pico += other.cost_pico
        self.counterfactual_pico += other.counterfactual_pico
        merge_hist(self.latency_hist, other.latency_hist)
        merge_hist(self.cost_hist, other.cost_hist)


@dataclass(slots=True)
class Cube:
    cells: dict[CellKey, Cell] = field(default_factory=dict)
    kinds: dict[KindKey, Cell] = field(default_factory=dict)  # cells split by prompt kind
    lighter: dict[LighterKey, list[int]] = field(default_factory=dict)  # [requests, cost]
    # Latency and cost histograms per cell (kind) key; dimensions a report does not need may be
    # projected away ("*", ok = -1) so the database merges them instead of Python.
    hists: dict[CellKey, tuple[Hist, Hist]] = field(default_factory=dict)
    kind_hists: dict[KindKey, tuple[Hist, Hist]] = field(default_factory=dict)

    def merge(self, other: Cube) -> None:
        _merge_cells(self.cells, other.cells)
        _merge_cells(self.kinds, other.kinds)
        _merge_hists(self.hists, other.hists)
        _merge_hists(self.kind_hists, other.kind_hists)
        for k, sums in other.lighter.items():
            _add_sums(self.lighter, k, sums)


def _merge_cells(into: dict[Any, Cell], other: dict[Any, Cell]) -> None:
    for key, cell in other.items():
        mine = into.get(key)
        if mine is None:
            into[key] = cell
        else:
            mine.add(cell)


def _merge_hists(into: dict[Any, tuple[Hist, Hist]], other: dict[Any, tuple[Hist, Hist]]) -> None:
    for key, (lat, cost) in other.items():
        have = into.get(key)
        if have is None:
            into[key] = (lat, cost)
        else:
            merge_hist(have[0], lat)
            merge_hist(have[1], cost)


def _add_sums(table: dict[Any, list[int]], key: Any, sums: list[int]) -> None:
    mine = table.get(key)
    if mine is None:
        table[key] = list(sums)
    else:
        for i, v in enumerate(sums):
            mine[i] += v


def merge_hist(into: Hist, other: Hist) -> None:
    for bucket, (count, total) in other.items():
        add_to_hist(into, bucket, count, total)


def add_to_hist(hist: Hist, bucket: int, count: float, total: float) -> None:
    slot = hist.get(bucket)
    if slot is None:
        hist[bucket] = [count, total]
    else:
        slot[0] += count
        slot[1] += total


def percentile(hist: Hist, q: float) -> float | None:
    """Nearest-rank percentile ``q`` in (0, 1]: the mean of the values in its bucket."""
    total = sum(c for c, _ in hist.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0.0
    for bucket in sorted(hist):
        count, value_sum = hist[bucket]
        seen += count
        if seen >= rank:
            return float(value_sum / count)
    return None


def _cell_key(r: tuple[Any, ...]) -> CellKey:
    return (int(r[0]), r[1], r[2], r[3], r[4], int(r[5]))


def _fold_hist(
    hists: dict[Any, tuple[Hist, Hist]], rows: Iterable[tuple[Any, ...]], *, kind: bool = False
) -> None:
    """Rows of (cell key..., [prompt kind,] metric 'l'|'c', bucket, count, sum) into ``hists``."""
    at = 7 if kind else 6  # where the metric column is
    for r in rows:
        key: tuple[Any, ...] = (*_cell_key(r), r[6]) if kind else _cell_key(r)
        pair = hists.get(key)
        if pair is None:
            pair = hists[key] = ({}, {})
        metric, bucket, n, total = r[at : at + 4]
        add_to_hist(pair[0] if metric == "l" else pair[1], int(bucket), int(n), float(total))


def aggregate(db: LedgerDB, lo: float, hi: float, width: int) -> Cube:
    """The cube of raw ledger rows with ``lo <= ts < hi``, periods ``width`` seconds long."""
    from gearshift.analytics.rows import aggregate_rows  # rows builds on this module's types

    return aggregate_rows(db, lo, hi, width)


def ensure_schema(db: LedgerDB) -> None:
    """Create or upgrade the rollup tables if the ledger's migrations have not (a ledger last
    opened by an older gearshift); a no-op on a migrated ledger."""
    if db.table_exists("analytics_rollup_kind_hist") and _outcomes_step_done(db):
        return
    with db.write_transaction():
        _serialise(db)
        if db.dialect == "postgresql":  # the ledger store's own lock for schema changes
            from gearshift.ledger.postgres_store import MIGRATION_LOCK_ID

            db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_ID,))
        if not db.table_exists("analytics_rollup_kind_hist"):
            if not db.table_exists("analytics_rollup_state"):
                for statement in ROLLUP_DDL:
                    db.execute(statement)
            for statement in ROLLUP_BY_KIND_DDL:
                db.execute(statement)
        if _outcomes_step_done(db):
            return  # another report upgraded it first
        for statement in ROLLUP_OUTCOMES_DDL:
            db.execute(statement)
        if db.table_exists("schema_migrations"):  # as the store's migrate would: it skips it now
            db.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                (ROLLUP_OUTCOMES_STEP, time.time()),
            )


def _outcomes_step_done(db: LedgerDB) -> bool:
    """Whether migration m009 ran (the rollup holds each failure's own outcome)."""
    if not db.table_exists("schema_migrations"):
        return False
    found = db.fetchone("SELECT 1 FROM schema_migrations WHERE name = ?", (ROLLUP_OUTCOMES_STEP,))
    return found is not None


def rolled_until(db: LedgerDB, width: int = DAY, *, lock: bool = False) -> int | None:
    """Where the rollup of ``width``-long periods ends (unix seconds); None before the first."""
    if not lock and not db.table_exists("analytics_rollup_state"):
        return None
    suffix = " FOR UPDATE" if lock and db.dialect == "postgresql" else ""
    row = db.fetchone(
        f"SELECT rolled_until FROM analytics_rollup_state WHERE width = ?{suffix}", (width,)
    )
    return int(row[0]) if row else None


def refresh(
    db: LedgerDB, *, now: float | None = None, progress: Callable[[str], None] | None = None
) -> dict[int, int]:
    """Roll up every complete hour, then every complete day, not yet rolled; returns
    ``{HOUR: rolled_until, DAY: rolled_until}``.

    Hours are aggregated from raw rows (in chunks, *before* taking the write lock, then written
    only if nobody else rolled them meanwhile, so a gateway writing to the same SQLite file is
    never blocked for long); recent rolled hours that rows landed in late are replaced
    (``reconcile``); days are summed from the hours inside the database.
    """
    from gearshift.analytics.reconcile import reconcile  # it builds on this module

    ensure_schema(db)
    now = time.time() if now is None else now
    hours = _roll_hours(db, int(now - LAG_S) // HOUR * HOUR, progress)
    reconcile(db, hours)  # before the days roll, so new days are summed from corrected hours
    days = _roll_days(db, min(hours, int(now - LAG_S) // DAY * DAY))
    return {HOUR: hours, DAY: days}


def _first_period(db: LedgerDB, width: int) -> int | None:
    row = db.fetchone("SELECT min(ts) FROM requests")
    return None if row is None or row[0] is None else int(float(row[0])) // width * width


def _roll_hours(db: LedgerDB, target: int, progress: Callable[[str], None] | None) -> int:
    while True:
        state = rolled_until(db, HOUR)
        start = state if state is not None else _first_period(db, HOUR)
        if start is None:
            return target
        if start >= target:
            return start
        end = min(target, start + CHUNK_DAYS * DAY)
        if progress is not None and target - start > 2 * DAY:
            left = (target - start) / DAY
            progress(f"rolling up the ledger for fast reports (once): {left:.0f} days to go")
        cube = aggregate(db, start, end, HOUR)
        with db.write_transaction():
            _serialise(db)
            if rolled_until(db, HOUR, lock=True) != state:
                continue  # another report rolled this chunk first: re-read and go on
            _insert(db, HOUR, cube)
            _set_state(db, HOUR, state, end)


def _roll_days(db: LedgerDB, target: int) -> int:
    current = rolled_until(db, DAY)
    if current is not None and current >= target:
        return current  # up to date: no write lock taken (a gateway may be writing)
    with db.write_transaction():
        _serialise(db)
        state = rolled_until(db, DAY, lock=True)
        start = state if state is not None else _first_period(db, DAY)
        if start is None:
            return target
        if start >= target:
            return start
        _days_from_hours(db, start, target)
        _set_state(db, DAY, state, target)
        return target


def _serialise(db: LedgerDB) -> None:
    """Concurrent reports extend the rollup one at a time. SQLite's BEGIN IMMEDIATE already
    does this; PostgreSQL's row lock cannot cover the first run (no state row yet), so take a
    transaction-scoped advisory lock."""
    if db.dialect == "postgresql":
        db.execute("SELECT pg_advisory_xact_lock(4172020401)")


def _set_state(db: LedgerDB, width: int, old: int | None, new: int) -> None:
    if old is None:
        db.execute(
            "INSERT INTO analytics_rollup_state (width, rolled_until) VALUES (?, ?)", (width, new)
        )
    else:
        db.execute(
            "UPDATE analytics_rollup_state SET rolled_until = ? WHERE width = ?", (new, width)
        )


_SUMS = (
    "sum(requests), sum(fallbacks), sum(prompt_tokens), sum(completion_tokens),"
    " sum(cached_tokens), sum(reasoning_tokens), sum(cost_pico), sum(counterfactual_pico)"
)


def _days_from_hours(db: LedgerDB, start: int, end: int) -> None:
    day = f"(period_start / {DAY}) * {DAY}"  # integer division truncates on both backends
    dims = "router, served_model, key_id, tags"
    spec = {
        "analytics_rollup": ("ok", _SUMS),
        "analytics_rollup_hist": ("ok, metric, bucket", "sum(n), sum(total)"),
        "analytics_rollup_kind": ("ok, prompt_kind", _SUMS),
        "analytics_rollup_kind_hist": ("ok, prompt_kind, metric, bucket", "sum(n), sum(total)"),
        "analytics_rollup_lighter": ("within_tol, prompt_kind", "sum(requests), sum(cost_pico)"),
    }
    for table, (extra, sums) in spec.items():
        db.execute(
            f"INSERT INTO {table} SELECT {DAY}, {day}, {dims}, {extra}, {sums} FROM {table}"
            f" WHERE width = {HOUR} AND period_start >= ? AND period_start < ?"
            f" GROUP BY {day}, {dims}, {extra}",
            (start, end),
        )


def _cell_from(values: tuple[Any, ...]) -> Cell:
    n, fb, pt, ct, cached, rt, cost, cf = (int(v) for v in values)
    return Cell(n, fb, pt, ct, cached, rt, cost, cf)


def _sums(c: Cell) -> tuple[int, ...]:
    return (
        c.requests,
        c.fallbacks,
        c.prompt_tokens,
        c.completion_tokens,
        c.cached_tokens,
        c.reasoning_tokens,
        c.cost_pico,
        c.counterfactual_pico,
    )


def _hist_rows(width: int, hists: dict[Any, tuple[Hist, Hist]]) -> list[tuple[Any, ...]]:
    return [
        (width, *key, metric, bucket, int(n), total)
        for key, (lat, cost) in hists.items()
        for metric, h in (("l", lat), ("c", cost))
        for bucket, (n, total) in h.items()
    ]


def _insert(db: LedgerDB, width: int, cube: Cube) -> None:
    cells = [(width, *key, *_sums(c)) for key, c in cube.cells.items()]
    kinds = [(width, *key, *_sums(c)) for key, c in cube.kinds.items()]
    lighter = [(width, *key, *sums) for key, sums in cube.lighter.items()]
    kind_hists = _hist_rows(width, cube.kind_hists)
    batches = (cells, _hist_rows(width, cube.hists), kinds, kind_hists, lighter)
    for table, rows in zip(ROLLUP_TABLES, batches, strict=True):
        if rows:
            marks = ", ".join("?" for _ in rows[0])
            db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def load_rollup(
    db: LedgerDB,
    width: int,
    lo: int,
    hi: int,
    *,
    as_width: int | None = None,
    collapse: bool = False,
    hist_dims: Collection[str] = HIST_DIMS,
    by_kind: bool = True,
) -> Cube:
    """The rolled-up cube of ``width``-long periods in [lo, hi), merged into ``as_width``-long
    periods (hours into days, say). ``collapse`` merges all periods (reported as one, ``lo``)
    for reports that do not look at time; histograms keep only ``hist_dims`` of
    ``HIST_DIMS``. Without ``by_kind`` (a report neither by nor filtered by prompt kind) the
    kinds' histograms are left out and eligible sets are merged across kinds. The database does
    the merging."""
    as_width = as_width or width
    if collapse:
        period = str(int(lo))
    elif as_width == width:
        period = "period_start"
    else:
        period = f"(period_start / {as_width}) * {as_width}"
    dims = f"{period}, router, served_model, key_id, tags"
    group = "router, served_model, key_id, tags" + ("" if collapse else f", {period}")
    where = "WHERE width = ? AND period_start >= ? AND period_start < ?"
    bounds = (width, lo, hi)
    cube = Cube()
    for r in db.fetchall(
        f"SELECT {dims}, ok, {_SUMS} FROM analytics_rollup {where} GROUP BY {group}, ok", bounds
    ):
        cube.cells[_cell_key(r)] = _cell_from(r[6:14])
    for r in db.fetchall(
        f"SELECT {dims}, ok, prompt_kind, {_SUMS} FROM analytics_rollup_kind {where}"
        f" GROUP BY {group}, ok, prompt_kind",
        bounds,
    ):
        cube.kinds[(*_cell_key(r), r[6])] = _cell_from(r[7:15])
    kept = ", ".join(c if c in hist_dims else ("-1" if c == "ok" else "'*'") for c in HIST_DIMS)
    periods = [] if collapse else [period]
    hist_group = [*(c for c in HIST_DIMS if c in hist_dims), *periods]

    def grouped_by(*columns: str) -> str:
        return ", ".join([*hist_group, *columns])

    _fold_hist(
        cube.hists,
        db.fetchall(
            f"SELECT {period}, {kept}, metric, bucket, sum(n), sum(total)"
            f" FROM analytics_rollup_hist {where} GROUP BY {grouped_by('metric', 'bucket')}",
            bounds,
        ),
    )
    if by_kind:
        _fold_hist(
            cube.kind_hists,
            db.fetchall(
                f"SELECT {period}, {kept}, prompt_kind, metric, bucket, sum(n), sum(total)"
                f" FROM analytics_rollup_kind_hist {where}"
                f" GROUP BY {grouped_by('prompt_kind', 'metric', 'bucket')}",
                bounds,
            ),
            kind=True,
        )
    kind = "prompt_kind" if by_kind else "''"
    for r in db.fetchall(
        f"SELECT {dims}, within_tol, {kind}, sum(requests), sum(cost_pico)"
        f" FROM analytics_rollup_lighter {where}"
        f" GROUP BY {group}, within_tol{', prompt_kind' if by_kind else ''}",
        bounds,
    ):
        cube.lighter[(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6])] = [int(r[7]), int(r[8])]
    return cube
