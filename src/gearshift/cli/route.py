"""``gearshift route "prompt"``: explain the routing decision for one prompt.

With ``--config`` it uses a configured router (``--router NAME``, else the first one). Without a
configuration it routes with the default router over ``--models a,b,...`` (catalogue names such
as ``gpt-4o-mini``), or over a built-in demo pair. ``-`` reads the prompt from standard input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gearshift.errors import ConfigError, NotFound

if TYPE_CHECKING:
    from gearshift.routing.decision import Decision


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gearshift route", description=__doc__.split("\n\n")[0])
    p.add_argument("prompt", help="the prompt text ('-' reads standard input)")
    p.add_argument("--config", help="gearshift.yaml with models and routers")
    p.add_argument("--router", help="router name in the config (default: the first)")
    p.add_argument("--models", help="comma-separated model names, when there is no config")
    p.add_argument("--predictor", default="default", help="'default' or a trained router DIR")
    p.add_argument("--tolerance", type=float, help="quality tolerance for this decision")
    p.add_argument("--system", help="a system prompt to route with")
    p.add_argument("--max-tokens", type=int, help="max_tokens of the request")
    p.add_argument("--json", action="store_true", help="print the decision as JSON")
    return p


def run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    from gearshift.routing import DEMO_MODELS, build_router, prompt_request, router_for_models

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if args.tolerance is not None and not 0.0 <= args.tolerance <= 1.0:
        raise ConfigError("--tolerance must be between 0 and 1")
    if args.config:
        from gearshift.config import load_settings

        settings = load_settings(args.config)
        if not settings.routers:
            raise ConfigError(f"{args.config} defines no routers")
        cfg = settings.router(args.router) if args.router else settings.routers[0]
        if cfg is None:
            names = ", ".join(r.name for r in settings.routers)
            raise NotFound(f"no router named {args.router!r} in {args.config}; routers: {names}")
        engine = build_router(settings, cfg)
    else:
        models = args.models.split(",") if args.models else list(DEMO_MODELS)
        engine = router_for_models(
            models,
            tolerance=0.1 if args.tolerance is None else args.tolerance,
            predictor=args.predictor,
        )
    request = prompt_request(prompt, system=args.system, model=engine.name)
    request.max_tokens = args.max_tokens
    decision = engine.decide(request, tolerance=args.tolerance)
    predictor = engine.predictor
    sources_of = getattr(predictor, "quality_sources", None)  # not every predictor says
    sources: dict[str, str] = sources_of(engine.profiles) if sources_of is not None else {}
    if args.json:
        print(json.dumps(as_json(decision, predictor.description, sources), indent=2))
        return 0
    print(render(decision, predictor.description))
    return 0


def _models(d: Decision) -> list[str]:
    """The candidates in configured order, then a fallback from outside them."""
    return list(d.predicted) + [m for m in d.ranked if m not in d.predicted]


def as_json(d: Decision, predictor: str, sources: dict[str, str]) -> dict[str, object]:
    """The whole ``Decision``, with the predictor, where each quality came from, and
    ``est_cost_usd`` null for a model that could serve but has no known price."""
    from dataclasses import asdict

    out: dict[str, object] = asdict(d)
    out["est_cost_usd"] = {
        m: d.est_cost_usd.get(m) for m in _models(d) if m in d.est_cost_usd or m not in d.excluded
    }
    out["predictor"] = predictor
    out["quality_sources"] = sources
    return out


def render(d: Decision, predictor: str = "") -> str:
    # Where each quality came from is in --json only: "profile (unknown (mid-tier assumed) ability
    # 0.76)" would push the table past 100 columns.
    lines = [
        f"router      {d.router}" + (f" (predictor: {predictor})" if predictor else ""),
        f"prompt      kind {d.kind} ({d.kind_confidence:.2f}), difficulty {d.difficulty:.2f} "
        "(predicted chance that a mid-range model answers poorly)",
        f"rule        {d.reason}",
        "",
        f"  {'model':<28} {'predicted':>9} {'est. cost':>12}  decision",
    ]
    fallback_rank = {m: i for i, m in enumerate(d.ranked)}
    unpriced = []
    for m in _models(d):
        q = d.predicted.get(m)
        cost = d.est_cost_usd.get(m)
        if m == d.chosen:
            verdict = "CHOSEN"
        elif m in d.excluded:
            verdict = "excluded: " + d.excluded[m]
        elif m in fallback_rank:
            verdict = f"fallback {fallback_rank[m]}"
        else:
            verdict = ""
        q_text = f"{q:.3f}" if q is not None else "-"
        if cost is not None:
            cost_text = f"${cost:.6f}"
        elif m in d.excluded:
            cost_text = "-"
        else:
            cost_text = "unknown"
            unpriced.append(m)
        lines.append(f"  {m:<28} {q_text:>9} {cost_text:>12}  {verdict}".rstrip())
    chosen_cost = d.est_cost_usd.get(d.chosen)
    top_cost = d.est_cost_usd.get(d.most_capable)
    if chosen_cost is not None and top_cost and d.most_capable != d.chosen:
        saved = 1 - chosen_cost / top_cost
        lines += ["", f"saves about {saved:.0%} against {d.most_capable} (the most capable model)"]
    if unpriced:
        lines += [
            "",
            f"{', '.join(unpriced)}: no known price, so ranked as the most expensive "
            "(give it a price: in the config)",
        ]
    return "\n".join(lines)
