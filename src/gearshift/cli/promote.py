"""``gearshift promote DIR --config FILE``: every gateway on this ledger switches to the candidate
within seconds, without a restart; ``gearshift promote --rollback --config FILE`` goes back to
what served before. Each promotion is recorded with its evaluation on held-out labels."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from gearshift.cli.learning_common import add_common, open_learning


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gearshift promote", description=__doc__)
    p.add_argument("candidate", nargs="?", help="DIR written by train --from-ledger")
    p.add_argument("--rollback", action="store_true", help="undo the latest promotion")
    add_common(p)
    p.add_argument("--holdout-days", type=float, default=7.0, help="days evaluated (7)")
    return p


def run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    from gearshift.errors import ConfigError, GearshiftError
    from gearshift.learning.offline import (
        current_candidate,
        evaluate_candidate,
        promote,
        rollback,
        split_labels,
    )

    if bool(args.candidate) == bool(args.rollback):
        raise ConfigError("give a candidate DIR to promote, or --rollback (not both)")
    settings, cfg, store = open_learning(args)
    with store:
        if args.rollback:
            back = rollback(store, cfg.name)
            what = "its configured predictor" if back is None else "the previous candidate"
            print(f"promote: router {cfg.name} rolled back to {what}")
            return 0
        from gearshift.cli.learn_eval import read_candidate, table

        candidate = read_candidate(args.candidate)
        evaluation = None
        _, held = split_labels(store, cfg.name, args.holdout_days)
        try:
            result = evaluate_candidate(
                settings, cfg, held, candidate, current_candidate(store, cfg.name)
            )
            evaluation = result.as_dict()
            print(table(evaluation))
        except GearshiftError as exc:
            print(f"promote: no evaluation recorded: {exc.message}")
        promote(store, cfg.name, candidate, evaluation, f"gearshift promote {args.candidate}")
    print(f"promote: router {cfg.name} now serves {args.candidate} (gateways switch within ~1 s)")
    if evaluation is not None:
        print(json.dumps({"evaluation": evaluation}))
    return 0
