"""The audit report for a terminal (rich tables); plain text when output is not a terminal."""

from __future__ import annotations

from typing import IO, Any

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from gearshift.audit.report import sources_line


def _usd(value: float) -> str:
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:,.4f}"


def _pct(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{100 * share:.0f}%"


def _share(share: dict[str, float], limit: int = 3) -> str:
    top = sorted(share.items(), key=lambda kv: -kv[1])[:limit]
    return ", ".join(f"{m} {_pct(s)}" for m, s in top)


def _group_table(title: str, groups: list[dict[str, Any]], limit: int = 12) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column(title.split(" by ")[-1])
    for col in ("requests", "as logged", "routed", "saved"):
        table.add_column(col, justify="right")
    table.add_column("moved", justify="right")
    table.add_column("routed to")
    for g in groups[:limit]:
        table.add_row(
            str(g["value"]),
            f"{g['requests']:,}",
            _usd(g["actual_cost_usd"]),
            _usd(g["routed_cost_usd"]),
            f"{g['savings_pct']:.0f}%",
            f"{g['moved_pct']:.0f}%",
            _share(g["share"]),
        )
    return table


def render_text(report: dict[str, Any], out: IO[str], *, width: int | None = None) -> None:
    console = Console(file=out, width=width, highlight=False, soft_wrap=False)
    if width is None and not console.is_terminal:
        console.width = 100  # a stable layout for pipes, files and the README
    p = console.print
    period = report.get("period")
    span = f" over {period['days']:.1f} days" if period else ""
    p(Text("gearshift audit", style="bold"), f"— {sources_line(report['sources'])}")
    p(
        f"{report['requests']:,} requests{span}; router candidates: "
        + ", ".join(c["name"] for c in report["router"]["candidates"])
        + f" (predictor: {report['router']['predictor']})"
    )
    p()
    summary = Table(show_header=False, show_edge=False, pad_edge=False)
    summary.add_column()
    summary.add_column(justify="right")
    summary.add_row("cost as logged", _usd(report["actual_cost_usd"]))
    summary.add_row(
        f"cost routed (tolerance {report['tolerance']:g})", _usd(report["routed_cost_usd"])
    )
    summary.add_row(
        Text("savings", style="bold green"),
        Text(f"{_usd(report['savings_usd'])} ({report['savings_pct']:.1f}%)", style="bold green"),
    )
    if report.get("projected_30d_savings_usd") is not None:
        summary.add_row("projected per 30 days", _usd(report["projected_30d_savings_usd"]))
    q = report["quality"]
    if q["retained_pct"] is not None:
        summary.add_row("predicted quality retained", f"{q['retained_pct']:.1f}%")
    verified = report.get("verification")
    if verified and verified.get("measured_retained_pct") is not None:
        summary.add_row(
            f"measured quality retained ({verified['graded']} judged, ${verified['cost_usd']:.4f})",
            f"{verified['measured_retained_pct']:.1f}%",
        )
    summary.add_row("requests moved to another model", f"{report['moved_pct']:.1f}%")
    p(summary)
    p()

    models = Table(title="Share per model (routed)", title_justify="left", show_edge=False)
    for col, justify in (("model", "left"), ("requests", "right"), ("share", "right")):
        models.add_column(col, justify=justify)  # type: ignore[arg-type]
    models.add_column("cost", justify="right")
    for name, m in report["by_model"].items():
        models.add_row(name, f"{m['requests']:,}", f"{100 * m['share']:.1f}%", _usd(m["cost_usd"]))
    p(models)
    p()

    curve = Table(title="Tolerance / savings trade-off", title_justify="left", show_edge=False)
    curve.add_column("")
    for col in ("tolerance", "routed cost", "savings", "quality kept", "moved"):
        curve.add_column(col, justify="right")
    curve.add_column("mix", no_wrap=True, overflow="ellipsis")
    rec = report["recommended_tolerance"]["tolerance"]
    for point in report["curve"]:
        marks = []
        if point["tolerance"] == rec:
            marks.append("best")
        if point["tolerance"] == report["tolerance"]:
            marks.append("now")
        curve.add_row(
            ", ".join(marks),
            f"{point['tolerance']:g}",
            _usd(point["routed_cost_usd"]),
            f"{point['savings_pct']:.1f}%",
            f"{point['quality_retained_pct'] or 0:.1f}%",
            f"{point['moved_pct']:.0f}%",
            _share(point["share"], 2),
        )
    p(curve)
    p(
        "best: the recommended tolerance (largest savings keeping 95% of predicted quality); "
        "now: the tolerance this report uses",
        style="dim",
    )
    p()

    for key, groups in report["by_tag"].items():
        if groups and not (len(groups) == 1 and groups[0]["value"] == "(none)"):
            p(_group_table(f"Savings by {key}", groups))
            p()
    p(_group_table("Savings by prompt kind", report["by_kind"]))
    p()
    p(_group_table("Savings by difficulty", report["by_difficulty"]))
    p()

    p(Text("Which prompts moved, and why", style="bold"))
    for move in report["moves"][:6]:
        verb = "stayed on" if move["from"] == move["to"] else "→"
        head = f"{move['from']} {verb} {move['to'] if verb == '→' else ''}".rstrip()
        p(f"  {head}: {move['requests']:,} requests")
        for ex in move["examples"][:2]:
            p(f"    • “{ex['prompt'][:90]}”", style="dim", overflow="ellipsis", no_wrap=True)
            why = f"{ex['kind']}, difficulty {ex['difficulty']:.2f}: {ex['reason']}"
            p(Padding(why, (0, 0, 0, 6)))
    p()
    rec_info = report["recommended_tolerance"]
    p(
        Text("Recommended router", style="bold"),
        f"(tolerance {rec_info['tolerance']:g}: saves {rec_info['savings_pct']:.1f}%, "
        f"{rec_info['why']}) — paste into gearshift.yaml:",
    )
    # soft_wrap: never break a line of the YAML, or a wrapped comment stops it parsing once pasted
    # (a narrow terminal wraps it only on screen; a copy gives back the whole line).
    p(Text(report["recommended_config"].rstrip(), style="cyan"), soft_wrap=True)
    p()
    problems = report["malformed"] + report["skipped"]
    p(
        f"Read {report['lines']:,} lines: {report['requests']:,} audited, "
        f"{report['blank']:,} blank, {report['malformed']:,} malformed, "
        f"{report['skipped']:,} skipped; the router ran on "
        f"{report['prompts_predicted']:,} distinct prompts."
    )
    if problems:
        for reason, n in sorted(report["skipped_reasons"].items(), key=lambda kv: -kv[1])[:5]:
            p(f"  skipped {n:,}: {reason}", style="yellow")
        for example in report["problems"][:5]:
            p(f"  e.g. {example}", style="yellow")
    for note in report["assumptions"]:
        p(f"Note: {note}", style="dim")
