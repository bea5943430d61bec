"""``gearshift train --from-ledger --config FILE --out DIR``: a candidate router from the
bundled router plus the traffic labels in the ledger (docs/learning.md). The most recent
``--holdout-days`` of labels are left out, for ``gearshift eval --candidate``. With too few labels
to train on it says why in one line, writes nothing and exits 0 (``"trained": false``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from gearshift.cli.learning_common import add_common, open_learning

CANDIDATE_FILE = "candidate.json"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gearshift train --from-ledger", description=__doc__)
    p.add_argument("--from-ledger", action="store_true", required=True)
    add_common(p)
    p.add_argument("--out", required=True, help="directory to write the candidate into")
    p.add_argument("--holdout-days", type=float, default=7.0, help="recent days left out (7)")
    p.add_argument("--l2", type=float, default=1.0, help="pull toward the bundled router (1.0)")
    return p


def run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    from gearshift.errors import NotEnoughLabels
    from gearshift.learning.offline import (
        require_training_labels,
        split_labels,
        train_from_labels,
    )

    settings, cfg, store = open_learning(args)
    with store:
        train, held = split_labels(store, cfg.name, args.holdout_days)
    try:
        require_training_labels(cfg.name, train, held, args.holdout_days)
        candidate = train_from_labels(settings, cfg, train, l2=args.l2)
    except NotEnoughLabels as exc:
        # too early to learn is not a failure: say why, write nothing, exit 0
        print(f"train: {exc.message}", file=sys.stderr)
        untrained = {"router": cfg.name, "trained": False, "reason": exc.message}
        print(json.dumps({**untrained, "labels": len(train), "heldout_labels": len(held)}))
        return 0
    print(
        f"train: router {cfg.name}: {len(train)} label(s) to train on, {len(held)} held out "
        f"(the last {args.holdout_days:g} days)",
        file=sys.stderr,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / CANDIDATE_FILE).write_text(candidate.to_json() + "\n", encoding="utf-8")
    summary = {"router": cfg.name, "trained": True, "out": str(out / CANDIDATE_FILE)}
    summary.update(candidate.meta)
    summary["models"] = candidate.models
    print(json.dumps(summary, indent=2))
    return 0
