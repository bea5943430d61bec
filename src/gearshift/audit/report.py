"""The audit's result as one JSON-ready dict; the text and HTML renderers read only this.

Money is USD rounded to 8 decimals (micro-cents: small enough that a single short request on a
light model still shows), shares and qualities to 4.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from gearshift.audit.engine import (
    ASSUMED_COMPLETION_TOKENS,
    DIFFICULTY_BUCKETS,
    Auditor,
    CurvePoint,
    merge_skips,
)
from gearshift.audit.entry import ReadStats
from gearshift.audit.groups import GroupTable
from gearshift.audit.recommend import recommend_tolerance, recommended_yaml

RETAINED_FLOOR = 0.95  # the recommended tolerance keeps at least this share of predicted quality


def sources_line(sources: list[str], shown: int = 3) -> str:
    """The audited files for a report's header: a few names, then how many more."""
    head = ", ".join(sources[:shown])
    return head if len(sources) <= shown else f"{head} and {len(sources) - shown:,} more files"


def usd(value: float) -> float:
    return round(value, 8)


def pct(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def _curve_point(a: Auditor, p: CurvePoint) -> dict[str, Any]:
    n = max(p.requests, 1)
    quality = p.quality / n
    return {
        "tolerance": p.tolerance,
        "routed_cost_usd": usd(p.routed_cost),
        "savings_usd": usd(a.actual_cost - p.routed_cost),
        "savings_pct": pct(a.actual_cost - p.routed_cost, a.actual_cost),
        "moved_pct": pct(p.moved, p.requests),
        "quality_mean": round(quality, 4),
        "quality_retained_pct": _retained(a, quality),
        "share": {
            m: round(int(c) / n, 4) for m, c in zip(a.names, p.model_requests, strict=True) if c
        },
    }


def _retained(a: Auditor, routed_mean: float) -> float | None:
    """Predicted quality routed as a share of the best candidate's on the same prompts."""
    if not a.requests or not a.quality_best:
        return None
    return round(100.0 * routed_mean / (a.quality_best / a.requests), 2)


def _groups(a: Auditor, table: GroupTable, order: list[str] | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, label in enumerate(table.labels):
        if i >= len(table.requests) or not table.requests[i]:
            continue
        n = int(table.requests[i])
        actual, routed = float(table.actual[i]), float(table.routed[i])
        out.append(
            {
                "value": label,
                "requests": n,
                "actual_cost_usd": usd(actual),
                "routed_cost_usd": usd(routed),
                "savings_usd": usd(actual - routed),
                "savings_pct": pct(actual - routed, actual),
                "moved_pct": pct(int(table.moved[i]), n),
                "quality_mean": round(float(table.quality[i]) / n, 4),
                "share": {
                    m: round(int(c) / n, 4)
                    for m, c in zip(a.names, table.model_requests[i], strict=True)
                    if c
                },
            }
        )
    if order is not None:
        out.sort(key=lambda g: order.index(str(g["value"])))
    else:
        out.sort(key=lambda g: -float(g["actual_cost_usd"]))
    return out


def _period(a: Auditor) -> dict[str, Any] | None:
    if not math.isfinite(a.ts_min):
        return None
    days = max((a.ts_max - a.ts_min) / 86400.0, 1.0 / 24)
    return {
        "start": datetime.fromtimestamp(a.ts_min, UTC).isoformat().replace("+00:00", "Z"),
        "end": datetime.fromtimestamp(a.ts_max, UTC).isoformat().replace("+00:00", "Z"),
        "days": round(days, 3),
    }


def build_report(a: Auditor, stats: ReadStats, sources: list[str]) -> dict[str, Any]:
    primary = a.curve[round(a.primary, 4)]
    routed = primary.routed_cost
    curve = [_curve_point(a, a.curve[t]) for t in a.tolerances]
    recommended = recommend_tolerance(curve, RETAINED_FLOOR)
    skipped = merge_skips(a, stats)
    period = _period(a)
    savings = a.actual_cost - routed
    n = max(a.requests, 1)
    report: dict[str, Any] = {
        "sources": sources,
        "requests": a.requests,
        "actual_cost_usd": usd(a.actual_cost),
        "routed_cost_usd": usd(routed),
        "savings_usd": usd(savings),
        "savings_pct": pct(savings, a.actual_cost),
        "tolerance": a.primary,
        "router": {
            "name": a.candidates.router.name,
            "predictor": a.router.predictor.description,
            "candidates": [
                {
                    "name": p.name,
                    "why": a.candidates.proposed.get(p.name, ""),
                    "tier": p.tier,
                    "ability": round(p.ability, 3),
                    "ability_source": p.ability_source,
                    "input_per_mtok": round(r.input.base * 1e6, 6),
                    "output_per_mtok": round(r.output.base * 1e6, 6),
                    "price_source": r.source,
                }
                for p, r in zip(a.profiles, a.rates, strict=True)
            ],
        },
        "by_model": {
            m: {"requests": int(c), "cost_usd": usd(float(cost)), "share": round(int(c) / n, 4)}
            for m, c, cost in zip(a.names, primary.model_requests, primary.model_cost, strict=True)
        },
        "as_logged": {
            m: {"requests": int(c), "cost_usd": usd(float(cost))}
            for m, c, cost in zip(a.logged_names, a.logged_requests, a.logged_cost, strict=True)
        },
        "moved_pct": pct(primary.moved, a.requests),
        "quality": {
            "predicted_routed_mean": round(primary.quality / n, 4),
            "predicted_as_logged_mean": (
                round(a.quality_logged / a.quality_logged_n, 4) if a.quality_logged_n else None
            ),
            "predicted_best_mean": round(a.quality_best / n, 4),
            "retained_pct": _retained(a, primary.quality / n),
            # against the model each request was logged on (where that model is a candidate)
            "retained_vs_logged_pct": (
                round(100.0 * a.quality_routed_on_known / a.quality_logged, 2)
                if a.quality_logged
                else None
            ),
        },
        "curve": curve,
        "recommended_tolerance": recommended,
        "by_tag": {
            name.removeprefix("tag:"): _groups(a, table)
            for name, table in a.groups.items()
            if name.startswith("tag:")
        },
        "by_kind": _groups(a, a.groups["kind"]),
        "by_difficulty": _groups(a, a.groups["difficulty"], list(DIFFICULTY_BUCKETS)),
        "moves": [
            {
                "from": src,
                "to": dst,
                "requests": count,
                "examples": a.move_samples.get((src, dst), []),
            }
            for (src, dst), count in sorted(a.moves.items(), key=lambda kv: -kv[1])
        ],
        "samples": a.kind_samples,
        "tokens": {
            "prompt": a.prompt_tokens,
            "completion": a.completion_tokens,
            "prompt_counted_requests": a.counted_prompt_tokens,
            "completion_assumed_requests": a.assumed_completion_tokens,
        },
        "assumptions": _assumptions(a),
        "period": period,
        "projected_30d_savings_usd": (
            usd(savings * 30.0 / period["days"]) if period and period["days"] >= 1 else None
        ),
        "prompts_predicted": a.predictions,
        "lines": stats.lines,
        "blank": stats.blank,
        "malformed": stats.malformed,
        "skipped": sum(skipped.values()),
        "skipped_reasons": skipped,
        "formats": dict(stats.formats),
        "problems": list(stats.examples),
    }
    report["recommended_config"] = recommended_yaml(a, recommended)
    return report


# replaced by what was measured when --verify ran (audit.verify.quality_note)
PREDICTED_QUALITY_NOTE = "Quality figures are the router's predictions, not measured answers."


def _assumptions(a: Auditor) -> list[str]:
    notes = [
        "Routed cost uses each request's prompt tokens and its completion tokens as logged: "
        "a lighter model is assumed to answer at the same length.",
        PREDICTED_QUALITY_NOTE,
    ]
    if a.assumed_completion_tokens:
        notes.append(
            f"{a.assumed_completion_tokens} request(s) had no logged completion; "
            f"{ASSUMED_COMPLETION_TOKENS} completion tokens were assumed for each."
        )
    if a.counted_prompt_tokens:
        notes.append(
            f"{a.counted_prompt_tokens} request(s) had no logged prompt token count; it was "
            "estimated from the text (about 4 bytes per token)."
        )
    unpriced = [n for n, r in zip(a.names, a.rates, strict=True) if not r.priced]
    unpriced += [n for n in a.unpriced_logged() if n not in unpriced]
    if unpriced:
        notes.append(f"No price is known for {', '.join(unpriced)}: counted as $0.")
    return notes
