"""Aggregate ledger rows into *cells*, and keep a daily rollup of them so reports stay fast.

A cell is one combination of (period, router, served model, key, tags, prompt kind, success,
eligible set) with its sums and two sparse histograms (latency, cost per request). A report is a
merge of cells, so it costs the same whether they come from raw rows or the rollup:

- Complete UTC days that ended more than ``LAG_S`` ago are rolled up once into
  ``analytics_rollup`` (one row per cell per day) and never scanned again.
- The rest of a report's range (a partial first day, today, anything not yet rolled) is
  aggregated from raw rows on the fly, by hour, through the ``requests(ts)`` index.

Money is summed exactly as integer pico-dollars (1e-12 USD): every ledger cost with at most 12
decimal places (all per-token prices with up to 6 decimals per million tokens) is summed without
rounding. Percentiles come from log-spaced histogram buckets of ratio ``BUCKET_RATIO`` that keep
a count and a sum each: a reported percentile is the mean of the values in the nearest-rank
bucket, so it is exact when they are equal (same-priced requests) and always within the bucket,
i.e. within 10% of the exact nearest-rank value.

The eligible set (``within_tol``) is the router's candidates whose predicted quality was within
the row's tolerance of the best prediction; "could have been lighter" compares their tiers with
the served model's at report time, so a tier change in the configuration applies to old rows too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from gearshift.analytics.db import LedgerDB

HOUR = 3600
DAY = 86400
LAG_S = 15 * 60  # rows are written after the request ends: leave stragglers time to land
CHUNK_DAYS = 7  # days rolled per transaction, so the write lock is never held long
PICO = 10**12
BUCKET_RATIO = 1.1
LATENCY_BASE_MS = 0.1  # bucket 0 holds latencies <= 0.1 ms
COST_BASE_USD = 1e-9  # bucket 0 holds zero cost; bucket 1 everything up to 1e-9 USD

CellKey = tuple[int, str, str, str, str, str, int, str]
Hist = dict[int, list[float]]  # bucket -> [count, sum of values]

ROLLUP_DDL = (
    """CREATE TABLE IF NOT EXISTS analytics_rollup (
        period_start BIGINT NOT NULL,
        router TEXT NOT NULL,
        served_model TEXT NOT NULL,
        key_id TEXT NOT NULL,
        tags TEXT NOT NULL,
        prompt_kind TEXT NOT NULL,
        ok INTEGER NOT NULL,
        within_tol TEXT NOT NULL,
        requests BIGINT NOT NULL,
        fallbacks BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        reasoning_tokens BIGINT NOT NULL,
        cost_pico BIGINT NOT NULL,
        counterfactual_pico BIGINT NOT NULL,
        latency_hist TEXT NOT NULL,
        cost_hist TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS analytics_rollup_period ON analytics_rollup (period_start)",
    """CREATE TABLE IF NOT EXISTS analytics_rollup_state (
        id INTEGER PRIMARY KEY,
        rolled_until BIGINT NOT NULL
    )""",
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


def hist_text(hist: Hist) -> str:
    return ",".join(f"{b}:{int(c)}:{_num(t)}" for b, (c, t) in sorted(hist.items()))


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def parse_hist(text: str) -> Hist:
    out: Hist = {}
    if text:
        for part in text.split(","):
            b, c, t = part.split(":")
            out[int(b)] = [int(c), int(t) if t.lstrip("-").isdigit() else float(t)]
    return out


def latency_bucket(ms: float) -> int:
    if ms <= LATENCY_BASE_MS:
        return 0
    return int(math.log(ms / LATENCY_BASE_MS) / math.log(BUCKET_RATIO)) + 1


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


def _aggregate_sql(dialect: str, width: int) -> str:
    """One pass over ``requests`` in [lo, hi): sums per cell and per pair of histogram buckets."""
    ln_ratio = math.log(BUCKET_RATIO)
    base_pusd = COST_BASE_USD * PICO  # the ledger keeps exact integer picodollars beside cost_usd
    if dialect == "sqlite":
        period = f"CAST(r.ts / {width} AS INTEGER) * {width}"
        best = "(SELECT max(m.value) FROM json_each(r.predicted) m)"
        within = (
            "(SELECT group_concat(k, ',') FROM (SELECT j.key AS k FROM json_each(r.predicted) j"
            f" WHERE j.value >= {best} - COALESCE(r.tolerance, 0) - 1e-9 ORDER BY j.key))"
        )
        lat = (
            f"CASE WHEN r.latency_ms IS NULL THEN NULL WHEN r.latency_ms <= {LATENCY_BASE_MS}"
            f" THEN 0 ELSE CAST(ln(r.latency_ms / {LATENCY_BASE_MS}) / {ln_ratio} AS INTEGER)"
            " + 1 END"
        )
        cb = (
            f"CASE WHEN r.cost_pusd <= 0 THEN 0 ELSE max(1, CAST(ln(r.cost_pusd / {base_pusd})"
            f" / {ln_ratio} AS INTEGER) + 1) END"
        )
    else:
        period = f"CAST(floor(r.ts / {width}) * {width} AS BIGINT)"
        each = "jsonb_each_text(CAST(r.predicted AS jsonb))"
        best = f"(SELECT max(CAST(m.value AS double precision)) FROM {each} m)"
        within = (
            f"(SELECT string_agg(j.key, ',' ORDER BY j.key) FROM {each} j"
            f" WHERE CAST(j.value AS double precision) >= {best}"
            " - COALESCE(r.tolerance, 0) - 1e-9)"
        )
        lat = (
            f"CASE WHEN r.latency_ms IS NULL THEN NULL WHEN r.latency_ms <= {LATENCY_BASE_MS}"
            f" THEN 0 ELSE CAST(floor(ln(CAST(r.latency_ms AS double precision)"
            f" / {LATENCY_BASE_MS}) / {ln_ratio}) AS INTEGER) + 1 END"
        )
        cb = (
            "CASE WHEN r.cost_pusd <= 0 THEN 0 ELSE greatest(1, CAST(floor(ln(CAST(r.cost_pusd"
            f" AS double precision) / {base_pusd}) / {ln_ratio}) AS INTEGER) + 1) END"
        )
    return f"""
        SELECT period, router, served, key_id, tags, kind, ok, within_tol, lat_b, cost_b,
               count(*), sum(fb), sum(pt), sum(ct), sum(cached), sum(rt), sum(cost), sum(cf),
               sum(lat)
        FROM (
            SELECT {period} AS period,
                   COALESCE(r.router, '') AS router,
                   COALESCE(r.served_model, '') AS served,
                   COALESCE(r.key_id, '') AS key_id,
                   COALESCE(CAST(r.tags AS TEXT), '{{}}') AS tags,
                   COALESCE(r.prompt_kind, '') AS kind,
                   CASE WHEN r.outcome = 'ok' THEN 1 ELSE 0 END AS ok,
                   COALESCE({within}, '') AS within_tol,
                   {lat} AS lat_b,
                   r.latency_ms AS lat,
                   {cb} AS cost_b,
                   CASE WHEN COALESCE(CAST(r.fallbacks AS TEXT), '[]') IN ('[]', '')
                        THEN 0 ELSE 1 END AS fb,
                   COALESCE(r.prompt_tokens, 0) AS pt,
                   COALESCE(r.completion_tokens, 0) AS ct,
                   COALESCE(r.cached_tokens, 0) AS cached,
                   COALESCE(r.reasoning_tokens, 0) AS rt,
                   COALESCE(r.cost_pusd, 0) AS cost,
                   COALESCE(r.counterfactual_cost_pusd, 0) AS cf
            FROM requests r
            WHERE r.ts >= ? AND r.ts < ?
        ) x
        GROUP BY period, router, served, key_id, tags, kind, ok, within_tol, lat_b, cost_b
    """


def aggregate(db: LedgerDB, lo: float, hi: float, width: int) -> dict[CellKey, Cell]:
    """Cells for ledger rows with ``lo <= ts < hi``, periods ``width`` seconds long."""
    cells: dict[CellKey, Cell] = {}
    for row in db.fetchall(_aggregate_sql(db.dialect, width), (lo, hi)):
        key: CellKey = (
            int(row[0]),
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            int(row[6]),
            row[7],
        )
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell()
        n = int(row[10])
        cell.requests += n
        cell.fallbacks += int(row[11])
        cell.prompt_tokens += int(row[12])
        cell.completion_tokens += int(row[13])
        cell.cached_tokens += int(row[14])
        cell.reasoning_tokens += int(row[15])
        cell.cost_pico += int(row[16])
        cell.counterfactual_pico += int(row[17])
        if row[8] is not None:
            add_to_hist(cell.latency_hist, int(row[8]), n, float(row[18]))
        add_to_hist(cell.cost_hist, int(row[9]), n, int(row[16]))
    return cells


def ensure_schema(db: LedgerDB) -> None:
    """Create the rollup tables if the ledger's migrations have not (idempotent)."""
    for statement in ROLLUP_DDL:
        db.execute(statement)


def rolled_until(db: LedgerDB, *, lock: bool = False) -> int | None:
    """The end of the rolled-up days (unix seconds), or None before the first rollup."""
    if not lock and not db.table_exists("analytics_rollup_state"):
        return None
    suffix = " FOR UPDATE" if lock and db.dialect == "postgresql" else ""
    row = db.fetchone(f"SELECT rolled_until FROM analytics_rollup_state WHERE id = 1{suffix}")
    return int(row[0]) if row else None


def refresh(db: LedgerDB, *, now: float | None = None) -> int:
    """Roll up every complete day not yet rolled; returns the new ``rolled_until``.

    Each chunk is aggregated *before* taking the write lock, then written only if nobody else
    rolled it meanwhile, so a gateway writing to the same SQLite file is never blocked for long.
    """
    ensure_schema(db)
    target = int((time.time() if now is None else now) - LAG_S) // DAY * DAY
    while True:
        state = rolled_until(db)
        start = state
        if start is None:
            row = db.fetchone("SELECT min(ts) FROM requests")
            if row is None or row[0] is None:
                return 0
            start = int(float(row[0])) // DAY * DAY
        if start >= target:
            return start
        end = min(target, start + CHUNK_DAYS * DAY)
        cells = aggregate(db, start, end, DAY)
        with db.write_transaction():
            if rolled_until(db, lock=True) != state:
                continue  # another report rolled this chunk first: re-read and go on
            _insert(db, cells.items())
            if state is None:
                db.execute(
                    "INSERT INTO analytics_rollup_state (id, rolled_until) VALUES (1, ?)", (end,)
                )
            else:
                db.execute(
                    "UPDATE analytics_rollup_state SET rolled_until = ? WHERE id = 1", (end,)
                )


def _insert(db: LedgerDB, cells: Iterable[tuple[CellKey, Cell]]) -> None:
    rows = [
        (
            *key,
            c.requests,
            c.fallbacks,
            c.prompt_tokens,
            c.completion_tokens,
            c.cached_tokens,
            c.reasoning_tokens,
            c.cost_pico,
            c.counterfactual_pico,
            hist_text(c.latency_hist),
            hist_text(c.cost_hist),
        )
        for key, c in cells
    ]
    if rows:
        db.executemany(
            "INSERT INTO analytics_rollup VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?)",
            rows,
        )


def load_rollup(db: LedgerDB, lo: int, hi: int) -> dict[CellKey, Cell]:
    """Rolled-up cells for whole days in [lo, hi)."""
    cells: dict[CellKey, Cell] = {}
    sql = (
        "SELECT period_start, router, served_model, key_id, tags, prompt_kind, ok, within_tol,"
        " requests, fallbacks, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,"
        " cost_pico, counterfactual_pico, latency_hist, cost_hist FROM analytics_rollup"
        " WHERE period_start >= ? AND period_start < ?"
    )
    for row in db.fetchall(sql, (lo, hi)):
        key: CellKey = (int(row[0]), row[1], row[2], row[3], row[4], row[5], int(row[6]), row[7])
        cell = Cell(
            int(row[8]),
            int(row[9]),
            int(row[10]),
            int(row[11]),
            int(row[12]),
            int(row[13]),
            int(row[14]),
            int(row[15]),
            parse_hist(row[16]),
            parse_hist(row[17]),
        )
        existing = cells.get(key)
        if existing is None:
            cells[key] = cell
        else:
            existing.add(cell)
    return cells
