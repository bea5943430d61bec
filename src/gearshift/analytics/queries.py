"""FinOps questions answered from the ledger: spend, savings, routing mix, latency, cost drivers.

``collect`` gathers the cells of a time range (rolled-up days plus raw edges, see ``rollup``);
``build_report`` merges them into groups along one dimension. Money stays exact (``Decimal``
from integer pico-dollars); percentiles come from histograms (precision in ``rollup``'s doc).
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gearshift.analytics import rollup, rows
from gearshift.analytics.db import LedgerDB
from gearshift.analytics.rollup import (
    DAY,
    HOUR,
    OUTCOME_CODES,
    OUTCOME_NAMES,
    SUCCESS_CODES,
    Cell,
    Cube,
    Hist,
)

if TYPE_CHECKING:  # pydantic's import is a third of a report's start-up: only when configured
    from gearshift.config import Settings

FOREVER = 1e11  # "no upper bound" for a time range, far beyond any ledger row
HOURLY_MAX_RANGE_S = 3 * DAY  # shorter ranges are reported by hour, for finer time series
BUILTIN_DIMENSIONS = ("model", "router", "key", "day", "hour", "kind", "outcome")
DRIVER_DIMENSIONS = ("kind", "feature", "key", "model")
TOP_DRIVERS = 5
_DIMENSION_NAME = re.compile(r"^(tag:)?[A-Za-z0-9_.\-]+$")


@dataclass(slots=True)
class Cells:
    cube: Cube
    width: int  # seconds per period in the cells' keys (HOUR or DAY)
    since: float
    until: float

    @property
    def cells(self) -> dict[rollup.CellKey, Cell]:
        return self.cube.cells

    def cells_for(self, names: Iterable[str]) -> Mapping[tuple[Any, ...], Cell]:
        """The cells to group or filter by dimensions ``names``: split by prompt kind when one
        of them is ``kind`` (the same sums, finer keys), the coarser cells otherwise."""
        return self.cube.kinds if "kind" in names else self.cube.cells

    def hists_for(self, names: Iterable[str]) -> Mapping[tuple[Any, ...], tuple[Hist, Hist]]:
        """The histograms matching ``cells_for(names)``."""
        return self.cube.kind_hists if "kind" in names else self.cube.hists


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` -> seconds."""
    units = {"s": 1, "m": 60, "h": HOUR, "d": DAY, "w": 7 * DAY}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units:
        raise ValueError(f"bad duration {text!r}: use a number and a unit, e.g. 7d, 12h, 30m")
    try:
        number = float(text[:-1])
    except ValueError:
        raise ValueError(f"bad duration {text!r}: use a number and a unit, e.g. 7d, 12h") from None
    if number < 0 or not math.isfinite(number):
        raise ValueError(f"bad duration {text!r}: must be a positive number")
    return number * units[text[-1]]


def parse_time(text: str, *, now: float) -> float:
    """A relative duration back from ``now`` (``7d``), an ISO date/time (UTC if no zone), or a
    unix timestamp."""
    text = text.strip()
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"bad time {text!r}: use a duration back from now (7d, 12h), an ISO date "
            "(2025-01-31, 2025-01-31T12:00) or a unix timestamp"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


Segment = tuple[int, int, int]  # (rollup width, start, end)


def plan(
    since: float, until: float, rolled: Mapping[int, int | None], widths: tuple[int, ...]
) -> tuple[list[Segment], list[tuple[float, float]]]:
    """Cover [since, until) with the coarsest rolled-up periods that fit (``widths``, coarsest
    first), then finer ones at the edges, then raw rows for what is left."""
    if until <= since:
        return [], []
    if not widths:
        return [], [(since, until)]
    width, finer = widths[0], widths[1:]
    end = rolled.get(width)
    first: int = math.ceil(since / width) * width
    last: int = min(int(until // width) * width, end if end is not None else first)
    if last <= first:
        return plan(since, until, rolled, finer)
    left_rolled, left_raw = plan(since, float(first), rolled, finer)
    right_rolled, right_raw = plan(float(last), until, rolled, finer)
    return [*left_rolled, (width, first, last), *right_rolled], [*left_raw, *right_raw]


def collect(
    db: LedgerDB,
    since: float | None = None,
    until: float | None = None,
    *,
    now: float | None = None,
    refresh: bool = True,
    collapse: bool = False,
    dimensions: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Cells:
    """The cube of [since, until). ``collapse``: the caller ignores periods (not a time series),
    so the database may merge the rolled-up days. ``dimensions``: every dimension the caller
    will group or filter by (None: any), so histograms can be merged by the database too."""
    now = time.time() if now is None else now
    lo = 0.0 if since is None else since
    hi = FOREVER if until is None else until
    if hi <= lo:
        raise ValueError("the time range is empty: --until must be after --since")
    if refresh:
        rolled: dict[int, int | None] = dict(rollup.refresh(db, now=now, progress=progress))
    else:
        rolled = {w: rollup.rolled_until(db, w) for w in (HOUR, DAY)}
    hourly = min(hi, now) - lo <= HOURLY_MAX_RANGE_S  # e.g. "since 24h": a time series by hour
    width = HOUR if hourly else DAY
    dims = None if dimensions is None else list(dimensions)
    hist_dims = rollup.HIST_DIMS if dims is None else histogram_dims(dims)
    by_kind = dims is None or "kind" in dims
    segments, raw_ranges = plan(lo, hi, rolled, (HOUR,) if hourly else (DAY, HOUR))
    cube = Cube()
    for seg_width, a, b in segments:
        cube.merge(
            rollup.load_rollup(
                db,
                seg_width,
                a,
                b,
                as_width=width,
                collapse=collapse,
                hist_dims=hist_dims,
                by_kind=by_kind,
            )
        )
    for start, end in raw_ranges:
        cube.merge(rows.aggregate_rows(db, start, end, width))
    return Cells(cube, width, lo, hi)


def histogram_dims(dimensions: Iterable[str]) -> set[str]:
    """The cell-key columns that reports by (or filtered by) ``dimensions`` need."""
    columns = {"model": "served_model", "router": "router", "key": "key_id", "outcome": "ok"}
    needed = set()
    for dim in dimensions:
        if dim in ("day", "hour", "kind"):
            continue  # the period is kept anyway, the kind by the kinds' histograms
        needed.add(columns.get(dim, "tags"))
    return needed


class TagCache:
    """Parses each distinct tags text once (a report meets the same few hundred many times)."""

    def __init__(self) -> None:
        self._parsed: dict[str, dict[str, str]] = {}

    def __call__(self, text: str) -> dict[str, str]:
        tags = self._parsed.get(text)
        if tags is None:
            try:
                loaded = json.loads(text) if text else {}
            except ValueError:
                loaded = {}
            tags = {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
            self._parsed[text] = tags
        return tags


def dimension(key: tuple[Any, ...], tags: Mapping[str, str], by: str) -> str:
    """The value of dimension ``by`` for a cell, kind or lighter key (the last two hold the
    prompt kind at index 6)."""
    if by == "model":
        return key[2] or "(none)"
    if by == "router":
        return key[1] or "(direct)"
    if by == "key":
        return key[3] or "(anonymous)"
    if by == "day":
        return _utc(key[0], "%Y-%m-%d")
    if by == "hour":
        return _utc(key[0], "%Y-%m-%dT%H:00Z")
    if by == "kind":
        return (key[6] or "(unknown)") if len(key) == 7 else "(unknown)"
    if by == "outcome":
        code = key[5]  # a lighter key holds its eligible set there: only successes have one
        return "ok" if isinstance(code, str) else OUTCOME_NAMES.get(code, "error")
    tag = by.removeprefix("tag:")
    return tags.get(tag, "(untagged)")


@functools.lru_cache(maxsize=4096)
def _utc(ts: int, fmt: str) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime(fmt)


def tier_lookup(settings: Settings | None) -> Callable[[str], int | None]:
    """Model name -> tier (1 = lightest): config first, then the built-in catalogue."""
    configured: dict[str, int | None] = {}
    for m in settings.models if settings else ():
        tier = m.tier
        if tier is None:
            tier = _catalogue_tier(m.upstream_model) or _catalogue_tier(m.name)
        configured[m.name] = tier
    cache: dict[str, int | None] = {}

    def tier_of(name: str) -> int | None:
        if name in configured:
            return configured[name]
        if name not in cache:
            cache[name] = _catalogue_tier(name) if name else None
        return cache[name]

    return tier_of


def _catalogue_tier(name: str) -> int | None:
    from gearshift.catalogue import lookup

    entry = lookup(name)
    return entry.tier if entry else None


@dataclass(slots=True)
class Group:
    cell: Cell = field(default_factory=Cell)
    errors: int = 0
    cache_hits: int = 0  # answered from a router's response cache
    tier_requests: dict[str, int] = field(default_factory=dict)
    lighter_requests: int = 0
    lighter_cost_pico: int = 0

    def add(self, served: str, ok: int, cell: Cell, tier_of: Callable[[str], int | None]) -> None:
        self.cell.add(cell)
        if ok not in SUCCESS_CODES:
            self.errors += cell.requests
            return
        if ok == OUTCOME_CODES["cache_hit"]:
            self.cache_hits += cell.requests
        tier = tier_of(served) if served else None
        label = str(tier) if tier is not None else "unknown"
        self.tier_requests[label] = self.tier_requests.get(label, 0) + cell.requests

    def add_eligible(
        self, served: str, within: str, sums: list[int], tier_of: Callable[[str], int | None]
    ) -> None:
        """Successful requests whose eligible set was ``within``: lighter if any eligible
        candidate has a lower tier than the model that served them."""
        tier = tier_of(served) if served else None
        if tier is None:
            return
        if any((t := tier_of(m)) is not None and t < tier for m in within.split(",")):
            self.lighter_requests += sums[0]
            self.lighter_cost_pico += sums[1]


def usd(pico: int) -> Decimal:
    return Decimal(pico).scaleb(-12).normalize() if pico else Decimal(0)


def _avg(pico: int, n: int) -> Decimal:
    """Exact mean when it terminates within 1e-15 USD (always, for sums of ledger prices)."""
    if not n:
        return Decimal(0)
    return (Decimal(pico).scaleb(-12) / n).quantize(Decimal("1e-15")).normalize()


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def summarise(group: Group) -> dict[str, Any]:
    c = group.cell
    savings = c.counterfactual_pico - c.cost_pico
    served = sum(group.tier_requests.values())
    p95_cost = rollup.percentile(c.cost_hist, 0.95)
    return {
        "requests": c.requests,
        "errors": group.errors,
        "cache_hits": group.cache_hits,
        "fallbacks": c.fallbacks,
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "cached_tokens": c.cached_tokens,
        "reasoning_tokens": c.reasoning_tokens,
        "cost_usd": usd(c.cost_pico),
        "counterfactual_cost_usd": usd(c.counterfactual_pico),
        "savings_usd": usd(savings),
        "savings_pct": round(100 * savings / c.counterfactual_pico, 2)
        if c.counterfactual_pico
        else 0.0,
        "avg_cost_usd": _avg(c.cost_pico, c.requests),
        "p95_cost_usd": usd(round(p95_cost)) if p95_cost is not None else Decimal(0),
        "latency_p50_ms": _ms(rollup.percentile(c.latency_hist, 0.50)),
        "latency_p80_ms": _ms(rollup.percentile(c.latency_hist, 0.80)),
        "latency_p95_ms": _ms(rollup.percentile(c.latency_hist, 0.95)),
        "tier_share": {
            t: round(n / served, 4) for t, n in sorted(group.tier_requests.items()) if served
        },
        "lighter_requests": group.lighter_requests,
        "lighter_cost_usd": usd(group.lighter_cost_pico),
    }


def check_by(by: str, flag: str = "by") -> None:
    """``flag`` names the option in errors."""
    if not _DIMENSION_NAME.match(by):
        raise ValueError(
            f"bad {flag} {by!r}: group by {', '.join(BUILTIN_DIMENSIONS)}, or a tag name (feature, "
            "team, ...; 'tag:NAME' also works)"
        )


def parse_where(items: Iterable[str], flag: str = "--where") -> dict[str, str]:
    """``["team=support", "model=large"]`` -> filters; ``flag`` names the option in errors."""
    filters: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"bad {flag} {item!r}: use NAME=VALUE, e.g. {flag} team=support")
        filters[name.strip()] = value.strip()
    return filters


def check_filters(filters: Mapping[str, str]) -> None:
    """A filter on a value that no row can have is a mistake, not an empty report: say so."""
    wanted = filters.get("outcome")
    if wanted is not None and wanted not in OUTCOME_CODES:
        raise ValueError(
            f"unknown outcome {wanted!r}: the ledger's outcomes are {', '.join(OUTCOME_CODES)}"
        )


def matches(key: tuple[Any, ...], tags: Mapping[str, str], filters: Mapping[str, str]) -> bool:
    return all(dimension(key, tags, name) == wanted for name, wanted in filters.items())


def grouped(
    data: Cells,
    by: str,
    settings: Settings | None,
    filters: Mapping[str, str] | None = None,
) -> dict[str, Group]:
    tag_cache = TagCache()
    tier_of = tier_lookup(settings)
    groups: dict[str, Group] = {}

    def group_of(key: tuple[Any, ...]) -> Group | None:
        tags = tag_cache(key[4])
        if filters and not matches(key, tags, filters):
            return None
        name = dimension(key, tags, by)
        group = groups.get(name)
        if group is None:
            group = groups[name] = Group()
        return group

    names = [by, *(filters or {})]
    for key, cell in data.cells_for(names).items():
        if (g := group_of(key)) is not None:
            g.add(key[2], key[5], cell, tier_of)
    for lkey, sums in data.cube.lighter.items():
        if (g := group_of(lkey)) is not None:
            g.add_eligible(lkey[2], lkey[5], sums, tier_of)
    for hkey, (latency_hist, cost_hist) in data.hists_for(names).items():
        if (g := group_of(hkey)) is not None:
            rollup.merge_hist(g.cell.latency_hist, latency_hist)
            rollup.merge_hist(g.cell.cost_hist, cost_hist)
    return groups


def top_drivers(data: Cells, filters: Mapping[str, str] | None) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    tag_cache = TagCache()
    for dim in DRIVER_DIMENSIONS:
        costs: dict[str, list[int]] = {}
        for key, cell in data.cells_for([dim, *(filters or {})]).items():
            tags = tag_cache(key[4])
            if filters and not matches(key, tags, filters):
                continue
            entry = costs.setdefault(dimension(key, tags, dim), [0, 0])
            entry[0] += cell.cost_pico
            entry[1] += cell.requests
        total = sum(v[0] for v in costs.values())
        ranked = sorted(costs.items(), key=lambda kv: (-kv[1][0], kv[0]))[:TOP_DRIVERS]
        out[dim] = [
            {
                "name": name,
                "requests": n,
                "cost_usd": usd(pico),
                "share_pct": round(100 * pico / total, 2) if total else 0.0,
            }
            for name, (pico, n) in ranked
        ]
    return out


def build_report(
    data: Cells,
    by: str,
    settings: Settings | None = None,
    filters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The report's JSON contract: ``{"groups": [{<by>: name, ...}], "totals": {...}}``."""
    check_filters(filters or {})
    groups = grouped(data, by, settings, filters)
    total = Group()
    for g in groups.values():
        total.cell.add(g.cell)
        total.errors += g.errors
        total.cache_hits += g.cache_hits
        for t, n in g.tier_requests.items():
            total.tier_requests[t] = total.tier_requests.get(t, 0) + n
        total.lighter_requests += g.lighter_requests
        total.lighter_cost_pico += g.lighter_cost_pico
    if by in ("day", "hour"):
        order: Iterable[str] = sorted(groups)
    else:
        order = sorted(groups, key=lambda n: (-groups[n].cell.cost_pico, n))
    rows = [{by: name, **summarise(groups[name])} for name in order]
    totals = summarise(total)
    totals["top_cost_drivers"] = top_drivers(data, filters)
    totals["since"] = _iso(data.since) if data.since > 0 else None
    totals["until"] = _iso(data.until) if data.until < FOREVER else None
    return {"groups": rows, "totals": totals}


def full_report(
    db: LedgerDB,
    by: str,
    since: float | None,
    until: float | None,
    filters: Mapping[str, str],
    settings: Settings | None,
    *,
    now: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The JSON of ``gearshift report --format json`` and of ``GET /api/report`` (one function,
    so they stay the same): ``build_report``'s groups and totals, and the application feedback
    of the time range (``feedback.feedback_summary``; ``filters`` do not narrow it)."""
    from gearshift.analytics.feedback import feedback_summary

    check_by(by)
    check_filters(filters)
    cells = collect(
        db,
        since,
        until,
        now=now,
        collapse=by not in ("day", "hour"),
        dimensions=[by, *filters],
        progress=progress,
    )
    report = build_report(cells, by, settings, filters)
    report["feedback"] = feedback_summary(db, since, until)
    return report


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
