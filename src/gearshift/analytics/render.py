"""Render a report (``queries.build_report``'s dict) as JSON, CSV or terminal tables.

JSON keeps money exact: ``Decimal`` values are written as plain JSON numbers with every digit
(``json.loads(text, parse_float=Decimal)`` reads them back unchanged).
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

# Every figure of a JSON group, in order, as CSV columns (``tier_share`` becomes one
# ``tier_<n>_share`` column per tier seen).
CSV_COLUMNS = (
    "requests",
    "errors",
    "cache_hits",
    "fallbacks",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "counterfactual_cost_usd",
    "savings_usd",
    "savings_pct",
    "avg_cost_usd",
    "p95_cost_usd",
    "latency_p50_ms",
    "latency_p80_ms",
    "latency_p95_ms",
    "lighter_requests",
    "lighter_cost_usd",
)


def money(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def to_json(value: Any) -> str:
    """JSON text; ``Decimal`` as an exact number literal."""
    if isinstance(value, Decimal):
        return money(value)
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(str(k))}: {to_json(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


def to_csv(report: dict[str, Any], by: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    tiers = sorted({t for g in report["groups"] for t in g["tier_share"]})
    writer.writerow([by, *CSV_COLUMNS, *(f"tier_{t}_share" for t in tiers)])
    for row in [*report["groups"], {by: "TOTAL", **report["totals"]}]:
        cells = [_plain(row.get(c)) for c in CSV_COLUMNS]
        shares = [_plain(row["tier_share"].get(t, 0.0)) for t in tiers]
        writer.writerow([row[by], *cells, *shares])
    return buf.getvalue()


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return money(value)
    return str(value)


def _tier(label: str) -> str:
    return f"t{label}" if label.isdigit() else "?"


def _usd(value: Decimal) -> str:
    """Fixed-point dollars, never scientific notation (a FinOps reader compares columns):
    cents for large amounts, four decimals down to a cent, three significant digits below."""
    if value == 0:
        return "$0"
    if abs(value) >= 100:
        return f"${value:,.2f}"
    if abs(value) >= Decimal("0.01"):
        return f"${value:,.4f}"
    step = Decimal(1).scaleb(value.adjusted() - 2)  # the third significant digit's place
    return "$" + money(value.quantize(step))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def to_text(report: dict[str, Any], by: str, *, width: int = 160) -> str:
    """The terminal tables as plain text."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, force_terminal=False)
    print_tables(report, by, console)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def print_tables(report: dict[str, Any], by: str, console: Any) -> None:
    """Rich tables on ``console`` (a ``rich.console.Console``; colour when it is a terminal)."""
    from rich.table import Table

    totals = report["totals"]
    span = f"{totals['since'] or 'start of ledger'} → {totals['until'] or 'now'}"
    table = Table(title=f"Spend by {by} ({span})", title_justify="left")
    for header in (by, "requests", "cost", "would cost", "saved", "saved %", "avg", "p95"):
        table.add_column(header, justify="left" if header == by else "right")
    for header in ("lat p50", "p80", "p95 ms", "tiers", "lighter"):
        table.add_column(header, justify="right")
    last = report["groups"][-1] if report["groups"] else None
    for row in [*report["groups"], {by: "TOTAL", **totals}]:
        tiers = " ".join(f"{_tier(t)}:{share:.0%}" for t, share in row["tier_share"].items())
        table.add_row(
            str(row[by]),
            f"{row['requests']:,}",
            _usd(row["cost_usd"]),
            _usd(row["counterfactual_cost_usd"]),
            _usd(row["savings_usd"]),
            f"{row['savings_pct']:.1f}%",
            _usd(row["avg_cost_usd"]),
            _usd(row["p95_cost_usd"]),
            _ms(row["latency_p50_ms"]),
            _ms(row["latency_p80_ms"]),
            _ms(row["latency_p95_ms"]),
            tiers or "-",
            f"{row['lighter_requests']:,}",
            end_section=row is last,
        )
    console.print(table)
    drivers = Table(title="Top cost drivers", title_justify="left")
    for header in ("by", "name", "requests", "cost", "share"):
        drivers.add_column(header, justify="left" if header in ("by", "name") else "right")
    for dim, entries in totals["top_cost_drivers"].items():
        for i, entry in enumerate(entries):
            drivers.add_row(
                dim if i == 0 else "",
                entry["name"],
                f"{entry['requests']:,}",
                _usd(entry["cost_usd"]),
                f"{entry['share_pct']:.1f}%",
                end_section=i == len(entries) - 1,
            )
    console.print(drivers)
    if report.get("feedback"):
        rated = Table(title="Application feedback by model and kind", title_justify="left")
        for header in ("model", "kind", "ratings", "mean score", "positive"):
            rated.add_column(header, justify="left" if header in ("model", "kind") else "right")
        for entry in report["feedback"]:
            rated.add_row(
                entry["model"],
                entry["kind"],
                f"{entry['ratings']:,}",
                f"{entry['mean_score']:.2f}",
                f"{entry['positive_share']:.0%}",
            )
        console.print(rated)
    if totals["lighter_requests"]:
        console.print(
            f"Could have been lighter: {totals['lighter_requests']:,} requests "
            f"({_usd(totals['lighter_cost_usd'])}) went to a heavier model although a lighter "
            "candidate was predicted within the router's tolerance."
        )
