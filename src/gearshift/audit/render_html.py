"""The audit report as one self-contained HTML file: inline CSS and SVG plots, no script, no CDN."""

from __future__ import annotations

from html import escape
from typing import Any

from gearshift.audit.report import sources_line

_PALETTE = (
    "#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
)  # fmt: skip
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#111827;padding:0 1rem}h1{font-size:1.6rem;margin:0}
h2{font-size:1.15rem;margin-top:2rem}
.sub{color:#6b7280}.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1.2rem 0}
.card{border:1px solid #e5e7eb;border-radius:8px;padding:.7rem 1rem;min-width:150px}
.card b{display:block;font-size:1.35rem}.good{color:#15803d}
table{border-collapse:collapse;width:100%}
th,td{padding:.3rem .5rem;border-bottom:1px solid #f3f4f6;text-align:right}
th:first-child,td:first-child{text-align:left}th{color:#6b7280;font-weight:600}
pre{background:#f9fafb;border:1px solid #e5e7eb;padding:1rem;overflow:auto}
.ex{color:#374151;font-size:.9rem;margin:.2rem 0 .6rem 1rem}.ex i{color:#6b7280}
svg text{font:12px system-ui,sans-serif;fill:#374151}.legend span{margin-right:1rem}
"""


def _usd(value: float) -> str:
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:,.4f}"


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def curve_svg(curve: list[dict[str, Any]], recommended: float, width: int = 640) -> str:
    """Savings % and predicted quality retained % against tolerance."""
    height, left, right, top, bottom = 280, 48, 16, 16, 40
    tmax = max((p["tolerance"] for p in curve), default=1.0) or 1.0
    ys = [p["savings_pct"] for p in curve] + [p["quality_retained_pct"] or 0 for p in curve]
    ymin = min(0.0, min(ys, default=0.0))

    def x(t: float) -> float:
        return left + (width - left - right) * t / tmax

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - ymin) / (100 - ymin or 1))

    parts = [f'<svg role="img" aria-label="trade-off curve" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    for v in range(0, 101, 25):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            f'stroke="#e5e7eb"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
            f'text-anchor="end">{v}%</text>'
        )
    for p in curve:
        parts.append(
            f'<text x="{x(p["tolerance"]):.1f}" y="{height - bottom + 16}" '
            f'text-anchor="middle">{p["tolerance"]:g}</text>'
        )
    parts.append(
        f'<text x="{(width + left) / 2:.0f}" y="{height - 4}" text-anchor="middle">'
        "quality tolerance</text>"
    )
    series = (("savings_pct", _color(1), "savings"), ("quality_retained_pct", _color(0), "quality"))
    for key, color, name in series:
        points = " ".join(f"{x(p['tolerance']):.1f},{y(p[key] or 0):.1f}" for p in curve)
        parts.append(
            f'<polyline class="series" data-series="{name}" fill="none" stroke="{color}" '
            f'stroke-width="2.5" points="{points}"/>'
        )
        for p in curve:
            parts.append(
                f'<circle cx="{x(p["tolerance"]):.1f}" cy="{y(p[key] or 0):.1f}" r="3.5" '
                f'fill="{color}"><title>{name} {p[key] or 0:.1f}% at tolerance '
                f"{p['tolerance']:g}</title></circle>"
            )
    rx = x(recommended)
    parts.append(
        f'<line x1="{rx:.1f}" x2="{rx:.1f}" y1="{top}" y2="{height - bottom}" stroke="#9ca3af" '
        f'stroke-dasharray="4 3"/><text x="{rx + 4:.1f}" y="{top + 12}">recommended</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def bars_svg(groups: list[dict[str, Any]], width: int = 640, limit: int = 12) -> str:
    """Cost as logged (grey) and routed (colour) per group, horizontal bars."""
    rows = groups[:limit]
    label_w, bar_h, gap = 150, 12, 10
    height = max(len(rows) * (2 * bar_h + gap) + 10, 30)
    vmax = max((g["actual_cost_usd"] for g in rows), default=0.0) or 1.0
    span = width - label_w - 90
    parts = [f'<svg role="img" aria-label="cost by group" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    for i, g in enumerate(rows):
        top = 5 + i * (2 * bar_h + gap)
        a = span * g["actual_cost_usd"] / vmax
        r = span * g["routed_cost_usd"] / vmax
        parts.append(
            f'<text x="{label_w - 8}" y="{top + bar_h + 4}" text-anchor="end">'
            f"{escape(str(g['value'])[:22])}</text>"
            f'<rect class="bar-logged" x="{label_w}" y="{top}" width="{a:.1f}" height="{bar_h}" '
            f'fill="#d1d5db"><title>as logged {_usd(g["actual_cost_usd"])}</title></rect>'
            f'<rect class="bar-routed" x="{label_w}" y="{top + bar_h}" width="{r:.1f}" '
            f'height="{bar_h}" fill="{_color(1)}"><title>routed {_usd(g["routed_cost_usd"])}'
            f"</title></rect>"
            f'<text x="{label_w + a + 6:.1f}" y="{top + bar_h - 2}">{_usd(g["actual_cost_usd"])}'
            f'</text><text x="{label_w + r + 6:.1f}" y="{top + 2 * bar_h - 2}">'
            f"−{g['savings_pct']:.0f}%</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def share_svg(by_model: dict[str, dict[str, Any]], width: int = 640) -> str:
    """One stacked bar: the share of requests each model would get."""
    parts = [f'<svg role="img" aria-label="share per model" width="{width}" height="34" '
             f'viewBox="0 0 {width} 34" xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    x = 0.0
    for i, (name, m) in enumerate(by_model.items()):
        w = width * m["share"]
        if w <= 0:
            continue
        parts.append(
            f'<rect class="share" x="{x:.1f}" y="0" width="{w:.1f}" height="34" '
            f'fill="{_color(i)}"><title>{escape(name)} {100 * m["share"]:.1f}%</title></rect>'
        )
        x += w
    parts.append("</svg>")
    legend = "".join(
        f'<span style="color:{_color(i)}">■</span> {escape(n)} {100 * m["share"]:.1f}% '
        for i, (n, m) in enumerate(by_model.items())
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _table(groups: list[dict[str, Any]], label: str) -> str:
    head = (
        f"<tr><th>{escape(label)}</th><th>requests</th><th>as logged</th><th>routed</th>"
        "<th>saved</th><th>moved</th><th>routed to</th></tr>"
    )
    rows = []
    for g in groups:
        ordered = sorted(g["share"].items(), key=lambda kv: -kv[1])
        mix = ", ".join(
            f"{escape(m)} {'<1' if s < 0.005 else f'{100 * s:.0f}'}%" for m, s in ordered
        )
        rows.append(
            f"<tr><td>{escape(str(g['value']))}</td><td>{g['requests']:,}</td>"
            f"<td>{_usd(g['actual_cost_usd'])}</td><td>{_usd(g['routed_cost_usd'])}</td>"
            f"<td>{g['savings_pct']:.1f}%</td><td>{g['moved_pct']:.0f}%</td><td>{mix}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def render_html(report: dict[str, Any]) -> str:
    r = report
    rec = r["recommended_tolerance"]
    q = r["quality"]["retained_pct"]
    period = r.get("period")
    cards = [
        ("requests", f"{r['requests']:,}"),
        ("cost as logged", _usd(r["actual_cost_usd"])),
        (f"cost routed (tolerance {r['tolerance']:g})", _usd(r["routed_cost_usd"])),
        ("savings", f"{_usd(r['savings_usd'])} ({r['savings_pct']:.1f}%)"),
        ("predicted quality retained", f"{q:.1f}%" if q is not None else "n/a"),
    ]
    if r.get("projected_30d_savings_usd") is not None:
        cards.append(("projected per 30 days", _usd(r["projected_30d_savings_usd"])))
    card_html = "".join(
        f'<div class="card"><span class="sub">{escape(k)}</span>'
        f'<b class="{"good" if k == "savings" else ""}">{escape(v)}</b></div>'
        for k, v in cards
    )
    curve_rows = "".join(
        f"<tr><td>{p['tolerance']:g}{' ◀' if p['tolerance'] == rec['tolerance'] else ''}</td>"
        f"<td>{_usd(p['routed_cost_usd'])}</td><td>{p['savings_pct']:.1f}%</td>"
        f"<td>{p['quality_retained_pct'] or 0:.1f}%</td><td>{p['moved_pct']:.0f}%</td></tr>"
        for p in r["curve"]
    )
    tags = "".join(
        f"<h2>Savings by {escape(key)}</h2>{bars_svg(groups)}{_table(groups, key)}"
        for key, groups in r["by_tag"].items()
        if groups and not (len(groups) == 1 and groups[0]["value"] == "(none)")
    )
    moves = []
    for move in r["moves"]:
        verb = "stayed on" if move["from"] == move["to"] else "→"
        target = "" if verb == "stayed on" else escape(move["to"])
        moves.append(
            f"<h3>{escape(move['from'])} {verb} {target}: {move['requests']:,} requests</h3>"
        )
        for ex in move["examples"]:
            moves.append(
                f'<div class="ex">“{escape(ex["prompt"])}”<br><i>{escape(ex["kind"])}, '
                f"difficulty {ex['difficulty']:.2f}: {escape(ex['reason'])}</i></div>"
            )
    samples = []
    for kind, items in r["samples"].items():
        samples.append(f"<h3>{escape(kind)}</h3>")
        samples.extend(
            f'<div class="ex">“{escape(ex["prompt"])}” → <b>{escape(ex["routed_model"])}</b></div>'
            for ex in items
        )
    notes = "".join(f"<li>{escape(n)}</li>" for n in r["assumptions"])
    skipped = "".join(
        f"<li>{n:,} skipped: {escape(why)}</li>" for why, n in r["skipped_reasons"].items()
    )
    span = f" over {period['days']:.1f} days" if period else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gearshift audit</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>gearshift audit</h1>
<p class="sub">{escape(sources_line(r["sources"]))}: {r["requests"]:,} requests{span}. Candidates:
{escape(", ".join(c["name"] for c in r["router"]["candidates"]))}
(predictor: {escape(r["router"]["predictor"])}).</p>
<div class="cards">{card_html}</div>
<h2>Share per model, routed</h2>{share_svg(r["by_model"])}
<h2>Tolerance / savings trade-off</h2>
<div class="legend"><span style="color:{_color(1)}">■ savings %</span>
<span style="color:{_color(0)}">■ predicted quality retained %</span></div>
{curve_svg(r["curve"], rec["tolerance"])}
<table><tr><th>tolerance</th><th>routed cost</th><th>savings</th><th>quality kept</th>
<th>moved</th></tr>{curve_rows}</table>
{tags}
<h2>Savings by prompt kind</h2>{bars_svg(r["by_kind"])}{_table(r["by_kind"], "kind")}
<h2>Savings by difficulty</h2>{_table(r["by_difficulty"], "difficulty")}
<h2>Which prompts moved, and why</h2>{"".join(moves)}
<h2>Sample prompts of each kind</h2>{"".join(samples)}
<h2>Recommended router</h2>
<p>Tolerance {rec["tolerance"]:g}: saves {rec["savings_pct"]:.1f}% ({escape(rec["why"])}).</p>
<pre>{escape(r["recommended_config"])}</pre>
<h2>Input</h2>
<p>{r["lines"]:,} lines read: {r["requests"]:,} audited, {r["blank"]:,} blank,
{r["malformed"]:,} malformed, {r["skipped"]:,} skipped.</p><ul>{skipped}</ul>
<h2>Assumptions</h2><ul>{notes}</ul>
</body></html>
"""
