"""``gearshift train --data labelled.jsonl --out DIR``: learn a router from labelled data.

Learns the quality of every (prompt, model) pair for every model named in the data's ``scores``
(any number of models, any names; rows may miss models; ``null`` costs are priced from list
prices): a shared difficulty learned from all models' outcomes plus what is particular to each
model (see ``gearshift.routing.quality_train``), its penalties tuned on an inner split. With
``--folds K`` (default 5; 0 skips it) the report in ``DIR/report.json`` and on the terminal is
measured only on prompts each fold's router was not trained on. Use the router with
``--router DIR`` (score, eval, route) or ``predictor: DIR`` in a router's configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

# the base help lists both modes: --from-ledger takes other options (its own --help)
MODES = """modes (docs/learning.md for the second):
  --data FILE --out DIR                  learn a router from labelled JSONL (the options above)
  --from-ledger --config FILE --out DIR  a candidate from the ledger's labels (has its own --help)
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gearshift train",
        description=__doc__.split("\n\n")[0],
        epilog=MODES.rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="labelled JSONL (DESIGN.md format)")
    p.add_argument("--out", required=True, help="directory to write the router into")
    p.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds for the report (0: none)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shared", type=float, help="L2 penalty on the shared weights (default: tuned)")
    p.add_argument(
        "--own-ratio",
        type=float,
        help="penalty on each model's own weights, times --shared (default: tuned)",
    )
    p.add_argument(
        "--answer-tokens",
        type=int,
        default=300,
        help="answer length used to price rows without costs (default 300)",
    )
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
    from gearshift.routing.quality_train import QualityOptions, train_quality_router

    if args.folds == 1 or args.folds < 0:
        raise InvalidRequest("--folds must be 0 (no report) or at least 2")
    if (args.shared is None) != (args.own_ratio is None):
        raise InvalidRequest("give both --shared and --own-ratio, or neither (tuned)")
    rows = read_labelled(args.data)

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"train: {msg}", file=sys.stderr)

    options = QualityOptions(
        folds=args.folds,
        seed=args.seed,
        shared=args.shared,
        own_ratio=args.own_ratio,
        answer_tokens=args.answer_tokens,
    )
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
        "mean_cost": model.meta["mean_cost"],
        "price_sources": model.meta["price_sources"],
        "cross_validation": report,
    }
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return 0
