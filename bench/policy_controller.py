"""Replay a 20,000-request mixed workload through the targets controller, offline (no HTTP).

Prompts come from ../shared/data (MMLU, GSM8K, RouterArena) through the routing package's
default router; each model gets a fake price and a fake latency. Every request is decided with
the controller's advice exactly as the gateway does (``router.decide(request, tolerance=...,
allowed=...)``), priced, timed, and fed back through ``observe`` (what ``settle`` does).

Scenarios (all on the same 20,000 requests):

* mixed-3 (small/medium/large): unconstrained router; cost target alone; cost + light share;
  cost + latency p80 and cost + light share + latency p80 (the large model is too slow for the
  latency target); targets that cannot be met (cost below the quality floor; a latency no model
  has), which the controller must report rather than drift.
* routellm-pair (small = Mixtral-8x7B, large = GPT-4, true 0/1 scores from RouteLLM's data): a
  cost target, with true accuracy against the unconstrained router and against random routing
  at the same share of large-model calls.

Run: ``.venv/bin/python bench/policy_controller.py [--data ../shared/data] [--requests 20000]``
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gearshift.chat import ChatRequest
from gearshift.config import RouterTargets, parse_settings
from gearshift.policy.controller import Outcome, TargetsController
from gearshift.policy.tiers import light_models, model_ranks, prior_costs
from gearshift.routing import build_router
from gearshift.routing.convert import convert_path
from gearshift.routing.formats import row_to_request
from gearshift.routing.tokens import estimate_request_tokens

PRICES = {  # USD per million tokens (input, output)
    "small": (0.25, 1.25),
    "medium": (3.0, 15.0),
    "large": (15.0, 75.0),
}
LATENCY_MS = {"small": 350.0, "medium": 700.0, "large": 1400.0}  # median at 200 output tokens
PAIR_LABELS = {"small": "mistralai/Mixtral-8x7B-Instruct-v0.1", "large": "gpt-4-1106-preview"}


@dataclass
class Item:
    request: ChatRequest
    prompt_tokens: int
    completion_tokens: int
    latency_noise: float
    scores: dict[str, float]
    source: str


def load(data: Path, n: int, seed: int) -> tuple[list[Item], list[Item]]:
    rows = list(convert_path(data))
    rng = random.Random(seed)
    mixed = [rng.choice(rows) for _ in range(n)]
    pair_rows = [r for r in rows if all(m in r["scores"] for m in PAIR_LABELS.values())]
    pair = [rng.choice(pair_rows) for _ in range(n)]
    return [_item(r, rng) for r in mixed], [_item(r, rng) for r in pair]


def _item(row: dict[str, Any], rng: random.Random) -> Item:
    request = row_to_request(row)
    source = row["id"].split("/")[0]
    # Answer lengths by kind: a letter for MMLU, worked solutions for the others.
    typical = {"mmlu": 30, "gsm8k": 220, "routerarena": 450}.get(source, 200)
    completion = max(5, int(typical * rng.lognormvariate(0, 0.5)))
    return Item(
        request,
        estimate_request_tokens(request),
        completion,
        rng.lognormvariate(0, 0.25),
        {m: row["scores"].get(label, math.nan) for m, label in PAIR_LABELS.items()},
        source,
    )


def cost_of(model: str, item: Item) -> float:
    inp, out = PRICES[model]
    return (item.prompt_tokens * inp + item.completion_tokens * out) / 1e6


def latency_of(model: str, item: Item) -> float:
    return LATENCY_MS[model] * (0.5 + item.completion_tokens / 400) * item.latency_noise


def settings_for(models: list[str], tolerance: float) -> Any:
    return parse_settings(
        {
            "models": [
                {
                    "name": m,
                    "tier": {"small": 1, "medium": 2, "large": 3}[m],
                    "price": {"input_per_mtok": PRICES[m][0], "output_per_mtok": PRICES[m][1]},
                }
                for m in models
            ],
            "routers": [
                {"name": "auto", "models": models, "quality_tolerance": tolerance, "sticky": False}
            ],
        }
    )


def replay(
    items: list[Item], models: list[str], tolerance: float, targets: RouterTargets | None
) -> dict[str, Any]:
    settings = settings_for(models, tolerance)
    router = build_router(settings, settings.routers[0])
    ranks = model_ranks(settings, models)
    light = light_models(ranks)
    ctl = None
    if targets is not None:
        ctl = TargetsController(
            "auto",
            models,
            tolerance,
            targets,
            light=light,
            prior_cost=prior_costs(settings, models),
        )
    chosen: list[str] = []
    costs, lats, preds, trues, tols = [], [], [], [], []
    ctl_s = 0.0
    for item in items:
        t0 = time.process_time()
        advice = ctl.advise() if ctl is not None else None
        ctl_s += time.process_time() - t0
        decision = router.decide(
            item.request,
            tolerance=advice.tolerance if advice else None,
            allowed=advice.allowed if advice else None,
        )
        model = decision.chosen
        cost, lat = cost_of(model, item), latency_of(model, item)
        if ctl is not None:
            t0 = time.process_time()
            ctl.observe(Outcome(decision.predicted, model, cost, lat, decision.tolerance))
            ctl_s += time.process_time() - t0
        chosen.append(model)
        costs.append(cost)
        lats.append(lat)
        preds.append(decision.predicted[model])
        trues.append(item.scores.get(model, math.nan))
        tols.append(decision.tolerance)
    n = len(items)
    out: dict[str, Any] = {
        "requests": n,
        "avg_cost_usd": float(np.mean(costs)),
        "avg_cost_usd_after_warmup": float(np.mean(costs[1000:])),
        "light_share": sum(m in light for m in chosen) / n,
        "share": {m: round(chosen.count(m) / n, 4) for m in models},
        "latency_p80_ms": float(np.percentile(lats, 80)),
        "predicted_quality": float(np.mean(preds)),
        "final_tolerance": tols[-1],
        "controller_cpu_us_per_request": round(ctl_s / n * 1e6, 2) if ctl else None,
    }
    true = np.array(trues, dtype=float)
    if all(m in PAIR_LABELS for m in models) and not np.isnan(true).all():
        out["true_quality"] = float(np.nanmean(true))
        # Random routing that sends the same share to each model, on the same prompts.
        per_model = {m: np.array([it.scores[m] for it in items], dtype=float) for m in models}
        out["random_same_mix_true_quality"] = float(
            sum(out["share"][m] * np.nanmean(per_model[m]) for m in models)
        )
    if ctl is not None:
        status = ctl.status()
        out["controller"] = {k: status[k] for k in ("state", "messages", "latency_allowed")}
    return out


def check(result: dict[str, Any], targets: RouterTargets) -> dict[str, Any]:
    """Whether each target held over the whole replay (cost also: error against its target)."""
    verdict: dict[str, Any] = {}
    if targets.avg_cost_per_request_usd is not None:
        t = targets.avg_cost_per_request_usd
        verdict["cost_error_pct"] = round(100 * (result["avg_cost_usd"] - t) / t, 2)
        verdict["cost_within_5pct"] = result["avg_cost_usd"] <= t * 1.05
    if targets.light_share_min is not None:
        verdict["light_share_met"] = result["light_share"] >= targets.light_share_min - 0.01
    if targets.latency_p80_ms is not None:
        verdict["latency_p80_met"] = result["latency_p80_ms"] <= targets.latency_p80_ms
    return verdict


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    mixed, pair = load(Path(args.data), args.requests, args.seed)
    three = ["small", "medium", "large"]
    base_tol = 0.05
    free = replay(mixed, three, base_tol, None)
    c0 = free["avg_cost_usd"]
    scenarios: dict[str, Any] = {"unconstrained": free}
    specs = {
        "cost": RouterTargets(avg_cost_per_request_usd=0.5 * c0, max_quality_tolerance=0.5),
        "cost+light": RouterTargets(
            avg_cost_per_request_usd=0.5 * c0, light_share_min=0.4, max_quality_tolerance=0.6
        ),
        "cost+latency": RouterTargets(
            avg_cost_per_request_usd=0.5 * c0, latency_p80_ms=800, max_quality_tolerance=0.6
        ),
        "cost+light+latency": RouterTargets(
            avg_cost_per_request_usd=0.5 * c0,
            light_share_min=0.4,
            latency_p80_ms=800,
            max_quality_tolerance=0.6,
        ),
        "infeasible-latency": RouterTargets(latency_p80_ms=100, max_quality_tolerance=0.6),
        "infeasible-cost": RouterTargets(
            avg_cost_per_request_usd=0.05 * c0, max_quality_tolerance=0.25
        ),
    }
    for name, targets in specs.items():
        res = replay(mixed, three, base_tol, targets)
        res["targets"] = targets.model_dump(exclude_none=True)
        res["verdict"] = check(res, targets)
        res["predicted_quality_vs_unconstrained"] = round(
            res["predicted_quality"] - free["predicted_quality"], 4
        )
        scenarios[name] = res
    pair_free = replay(pair, ["small", "large"], base_tol, None)
    pair_targets = RouterTargets(
        avg_cost_per_request_usd=0.5 * pair_free["avg_cost_usd"], max_quality_tolerance=0.6
    )
    pair_res = replay(pair, ["small", "large"], base_tol, pair_targets)
    pair_res["targets"] = pair_targets.model_dump(exclude_none=True)
    pair_res["verdict"] = check(pair_res, pair_targets)
    result = {
        "bench": "policy_controller",
        "requests": args.requests,
        "prices_per_mtok": PRICES,
        "latency_median_ms": LATENCY_MS,
        "mixed_3": scenarios,
        "routellm_pair": {"unconstrained": pair_free, "cost": pair_res},
        "seconds": round(time.perf_counter() - started, 1),
    }
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
