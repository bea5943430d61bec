"""``gearshift train --data labelled.jsonl --out DIR``: learn a router from labelled data.

Learns one calibrated quality head per model named in the data's ``scores`` (any number of
models, any names), with k-fold cross-validation: the report in ``DIR/report.json`` and on the
terminal is measured only on prompts each fold's heads were not trained on. Use the router with
``--router DIR`` (score, eval, route) or ``predictor: DIR`` in a router's configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gearshift train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="labelled JSONL (DESIGN.md format)")
    p.add_argument("--out", required=True, help="directory to write the router into")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--c", type=float, default=0.1, help="inverse L2 regularisation strength")
    p.add_argument("--quiet", action="store_true")
    return p


def run(argv: Sequence[str]) -> int:
    if "--from-ledger" in argv:
        from gearshift.cli import learn_train

        return learn_train.run(argv)
    args = _parser().parse_args(list(argv))
    from gearshift.errors import InvalidRequest
    from gearshift.routing.formats import read_labelled
    from gearshift.routing.predictors import ROUTER_FILE
    from gearshift.routing.train import TrainOptions, train_quality_router

    if args.folds < 2:
        raise InvalidRequest("--folds must be at least 2")
    rows = read_labelled(args.data)

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"train: {msg}", file=sys.stderr)

    options = TrainOptions(folds=args.folds, seed=args.seed, c=args.c)
    model, report = train_quality_router(rows, options, progress=say)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / ROUTER_FILE)
    summary = {
        "data": str(args.data),
        "rows": len(rows),
        "models": model.heads,
        "weak": model.meta["weak"],
        "strong": model.meta["strong"],
        "mean_score": model.meta["mean_score"],
        "cross_validation": report,
    }
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return 0
