"""The data behind ``/dashboard``: one JSON document per (time range, filter) with everything the
page draws, built from the same cells as ``gearshift report`` so both always agree."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gearshift.analytics import queries
from gearshift.analytics.db import LedgerDB
from gearshift.analytics.queries import Cells, TagCache, dimension, matches, usd
from gearshift.config import BudgetConfig, Settings

SERIES_LIMIT = 8  # spend-over-time charts show the top N series and lump the rest as "other"
FILTER_TAGS_LIMIT = 50  # distinct values offered per tag in the filter list


def _timeseries(
    data: Cells, by: str, filters: Mapping[str, str] | None
) -> tuple[list[int], dict[str, list[float]], list[float], list[float]]:
    """Periods, cost per period for each value of ``by``, and cost / counterfactual per period."""
    tag_cache = TagCache()
    per: dict[str, dict[int, int]] = {}
    cost: dict[int, int] = {}
    counterfactual: dict[int, int] = {}
    for key, cell in data.cells_for([by, *(filters or {})]).items():
        tags = tag_cache(key[4])
        if filters and not matches(key, tags, filters):
            continue
        period = key[0]
        series = per.setdefault(dimension(key, tags, by), {})
        series[period] = series.get(period, 0) + cell.cost_pico
        cost[period] = cost.get(period, 0) + cell.cost_pico
        counterfactual[period] = counterfactual.get(period, 0) + cell.counterfactual_pico
    periods = _periods(data, set(cost))
    ranked = sorted(per, key=lambda name: (-sum(per[name].values()), name))
    shown, rest = ranked[:SERIES_LIMIT], ranked[SERIES_LIMIT:]
    out = {name: [_f(per[name].get(p, 0)) for p in periods] for name in shown}
    if rest:
        out["other"] = [_f(sum(per[n].get(p, 0) for n in rest)) for p in periods]
    return (
        periods,
        out,
        [_f(cost.get(p, 0)) for p in periods],
        [_f(counterfactual.get(p, 0)) for p in periods],
    )


def _periods(data: Cells, present: set[int]) -> list[int]:
    """Every period of the range (gaps as zeros), bounded by the data when the range is open."""
    if not present:
        return []
    width = data.width
    first = int(data.since // width * width) if data.since > 0 else min(present)
    until = int((data.until - 1e-6) // width * width)  # the range's end is exclusive
    last = min(until, max(max(present), int(time.time()) // width * width))
    first = min(first, min(present))
    if (last - first) // width > 2000:  # an open range over years: only the populated periods
        return sorted(present)
    return list(range(first, last + 1, width))


def _f(pico: int) -> float:
    return pico / 10**12


def tag_values(data: Cells, limit: int = FILTER_TAGS_LIMIT) -> dict[str, list[str]]:
    """Tag name -> values seen in the range (for the filter list), most frequent first."""
    tag_cache = TagCache()
    counts: dict[str, dict[str, int]] = {}
    for key, cell in data.cells.items():
        for name, value in tag_cache(key[4]).items():
            bucket = counts.setdefault(name, {})
            bucket[value] = bucket.get(value, 0) + cell.requests
    return {
        name: [v for v, _ in sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]
        for name, values in sorted(counts.items())
    }


def budget_burndown(db: LedgerDB, budgets: list[BudgetConfig], now: float) -> list[dict[str, Any]]:
    """Spend of each budget's current period, cumulated by day, against its limits."""
    if not budgets:
        return []
    from gearshift.policy.periods import period_end, period_start

    starts = {b.name: period_start(now, b.period).timestamp() for b in budgets}
    scopes = {name for b in budgets for name in b.scope}
    data = queries.collect(db, min(starts.values()), now + 1, now=now, dimensions=scopes)
    tag_cache = TagCache()
    out = []
    for budget in budgets:
        start = starts[budget.name]
        end = period_end(now, budget.period).timestamp()
        per_day: dict[int, int] = {}
        for key, cell in data.cells.items():
            if key[0] < start or not matches(key, tag_cache(key[4]), budget.scope):
                continue
            day = int((key[0] - start) // 86400)
            per_day[day] = per_day.get(day, 0) + cell.cost_pico
        days = round((end - start) / 86400)
        today = int((now - start) // 86400)
        cumulative, running = [], 0
        for d in range(today + 1):
            running += per_day.get(d, 0)
            cumulative.append(_f(running))
        spent = usd(running)
        limit = Decimal(str(budget.limit_usd))
        out.append(
            {
                "name": budget.name,
                "scope": dict(budget.scope),
                "period": budget.period,
                "period_start": _day(start),
                "resets": _day(end),
                "days_in_period": days,
                "limit_usd": limit,
                "soft_limit_usd": budget.soft_limit_usd,
                "spent_usd": spent,
                "spent_pct": round(float(spent / limit * 100), 2),
                "cumulative_usd": cumulative,
            }
        )
    return out


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


def dashboard_data(
    db: LedgerDB,
    settings: Settings | None,
    since: float | None,
    until: float | None,
    filters: Mapping[str, str] | None = None,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    now = time.time() if now is None else now
    queries.check_filters(filters or {})
    dims = ["model", "feature", *(filters or {})]
    data = queries.collect(db, since, until, now=now, dimensions=dims)
    by_model = queries.build_report(data, "model", settings, filters)
    by_feature = queries.build_report(data, "feature", settings, filters)
    periods, spend_by_model, cost, counterfactual = _timeseries(data, "model", filters)
    _, spend_by_feature, _, _ = _timeseries(data, "feature", filters)
    budgets = settings.policy.budgets if settings else []
    return {
        "range": {
            "since": by_model["totals"]["since"],
            "until": by_model["totals"]["until"],
            "period_seconds": data.width,
        },
        "filters": dict(filters or {}),
        "totals": by_model["totals"],
        "by_model": by_model["groups"],
        "by_feature": by_feature["groups"],
        "series": {
            "periods": periods,
            "spend_by_model": spend_by_model,
            "spend_by_feature": spend_by_feature,
            "cost": cost,
            "counterfactual": counterfactual,
            "savings": [round(c - s, 12) for s, c in zip(cost, counterfactual, strict=True)],
        },
        "tags": tag_values(data),
        "budgets": budget_burndown(db, list(budgets), now),
    }
