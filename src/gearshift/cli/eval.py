"""``gearshift eval --data labelled.jsonl``: measure a router.

Prints APGR, CPT(50%) and CPT(80%) for a weak/strong pair (default: the lowest and highest
scoring models in the data), and the N-model cost-quality curve with the cost, as a share of the
best single model's, at which the router reaches 95% and 100% of that model's quality. Costs a
row does not record (``null``) are estimated from list prices (``gearshift.routing.row_costs``);
rows that do not score every evaluated model are left out (``--models`` picks fewer models).
``--plot`` writes a PNG with the random and oracle curves. ``--router`` scores with an existing
router (the default one, or a DIR from ``gearshift train``); ``--train-share 0.3`` instead
trains a fresh router on that share of the data and evaluates on the rest, so no prompt is
scored by a router trained on it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

# the base help lists both modes: --candidate takes other options (its own --help)
MODES = """modes (docs/learning.md for the second):
  --data FILE [--router DIR]     measure a router on labelled JSONL (the options above)
  --candidate DIR --config FILE  a candidate vs the serving router on held-out labels (own --help)
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gearshift eval",
        description=__doc__.split("\n\n")[0],
        epilog=MODES.rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="labelled JSONL (DESIGN.md format)")
    p.add_argument("--router", default="default", help="'default' or a DIR from 'gearshift train'")
    p.add_argument("--models", help="comma-separated models to evaluate (default: all scored)")
    p.add_argument("--weak", help="weak model of the pair (default: lowest mean score)")
    p.add_argument("--strong", help="strong model of the pair (default: highest mean score)")
    p.add_argument("--train-share", type=float, help="train on this share, evaluate on the rest")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", help="write a PNG plot here")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    return p


def run(argv: Sequence[str]) -> int:
    if any(a == "--candidate" or a.startswith("--candidate=") for a in argv):
        from gearshift.cli import learn_eval

        return learn_eval.run(argv)
    args = _parser().parse_args(list(argv))
    from gearshift.errors import InvalidRequest
    from gearshift.routing.evaluate import (
        evaluate,
        plot,
        predict_rows,
        split_predict,
        truth_matrices,
    )
    from gearshift.routing.formats import read_labelled
    from gearshift.routing.row_costs import fill_missing_costs

    rows = read_labelled(args.data)
    if args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
    else:
        models = list(dict.fromkeys(m for r in rows for m in r.scores))
    rows = [r for r in rows if all(m in r.scores for m in models)]
    price_sources = fill_missing_costs(rows, models) if rows else {}
    if len(models) < 2:
        raise InvalidRequest("evaluation needs scores for at least two models")
    if len(rows) < 10:
        raise InvalidRequest("fewer than 10 rows score every model; nothing to evaluate")
    if args.train_share is not None:
        if not 0.0 < args.train_share < 1.0:
            raise InvalidRequest("--train-share must be between 0 and 1")
        rows, preds = split_predict(rows, models, args.train_share, args.seed)
        source = f"trained on {args.train_share:.0%} of the data, evaluated on the rest"
    else:
        preds = predict_rows(args.router, rows, models)
        source = f"router {args.router}"
    scores, costs = truth_matrices(rows, models)
    means = scores.mean(axis=0)
    weak = args.weak or models[int(means.argmin())]
    strong = args.strong or models[int(means.argmax())]
    for name in (weak, strong):
        if name not in models:
            raise InvalidRequest(
                f"model {name!r} is not among the evaluated models: {', '.join(models)}"
            )
    if weak == strong:
        raise InvalidRequest("the weak and strong models must differ (give --weak and --strong)")
    report = evaluate(preds, scores, costs, weak=weak, strong=strong)
    report["source"] = source
    report["price_sources"] = price_sources
    if args.plot:
        plot(report, args.plot, title=f"{args.data}: {source}")
        report["plot"] = args.plot
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_text(report))
    return 0


def _text(report: dict[str, Any]) -> str:
    pair = report["pair"]
    lines = [
        f"{report['rows']} prompts, {len(report['models'])} models ({report['source']})",
        f"pair {pair['weak']} (weak) / {pair['strong']} (strong)",
        f"  APGR      {pair['apgr']:.3f}   (random 0.500, oracle {pair['oracle_apgr']:.3f})",
        f"  CPT(50%)  {pair['cpt50']:.1%} strong calls",
        f"  CPT(80%)  {pair['cpt80']:.1%} strong calls",
    ]
    n = report.get("n_models")
    if n:
        lines.append(
            f"cost-quality ({len(report['models'])} models): best single model "
            f"{n['best_single_model']} quality {n['best_single_quality']:.3f}"
        )
        for target in (95, 100):
            share = n[f"cost_share_at_{target}"]
            reach = "never" if share is None else f"{share:.1%} of its cost"
            lines.append(f"  router reaches {target}% of its quality at {reach}")
        estimated = sorted(m for m, src in report["price_sources"].items() if src != "recorded")
        if estimated:
            lines.append(f"  (costs estimated from list prices for {len(estimated)} models)")
    if "plot" in report:
        lines.append(f"plot written to {report['plot']}")
    return "\n".join(lines)
