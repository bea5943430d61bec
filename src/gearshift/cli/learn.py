"""``gearshift learn --config FILE``: one turn of the loop for each router with ``learning:`` —
train a candidate on labels older than ``--holdout-days``, evaluate it against the router
serving now on the rest, and promote it when ``learning.auto_promote`` is on and it wins pair
APGR by ``learning.promote_margin`` without costing more at 95% quality. Run it from cron: a run
with too few labels to learn from says why in one line (and ``promoted: false``) and exits 0."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gearshift learn", description=__doc__)
    p.add_argument("--config", required=True, help="the gateway's configuration (YAML)")
    p.add_argument("--holdout-days", type=float, default=7.0, help="recent days held out (7)")
    p.add_argument("--l2", type=float, default=1.0, help="pull toward the bundled router (1.0)")
    return p


def decide(evaluation: Any, margin: float) -> tuple[bool, str]:
    gain = evaluation.gain("pair_apgr")
    if gain is None:
        return False, "pair APGR undefined on the held-out labels"
    cur = evaluation.metrics["current"].get("cost_share_at_95")
    cand = evaluation.metrics["candidate"].get("cost_share_at_95")
    if cur is not None and cand is not None and cand > cur + 1e-9:
        return False, f"costs more at 95% quality ({cand:.3f} vs {cur:.3f})"
    if gain < margin:
        return False, f"pair APGR gain {gain:+.4f} is below the margin {margin:g}"
    return True, f"pair APGR gain {gain:+.4f} >= margin {margin:g}"


def run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    from gearshift.config import load_settings
    from gearshift.errors import GearshiftError, NotEnoughLabels
    from gearshift.learning.offline import (
        current_candidate,
        evaluate_candidate,
        promote,
        require_training_labels,
        split_labels,
        train_from_labels,
    )
    from gearshift.ledger.store import open_store

    settings = load_settings(args.config)
    results = []
    with open_store(settings.storage) as store:
        for cfg in settings.routers:
            if cfg.learning is None:
                continue
            out: dict[str, Any] = {"router": cfg.name}
            try:
                train, held = split_labels(store, cfg.name, args.holdout_days)
                out.update(train_labels=len(train), heldout_labels=len(held))
                require_training_labels(cfg.name, train, held, args.holdout_days)
                candidate = train_from_labels(settings, cfg, train, l2=args.l2).to_json()
                current = current_candidate(store, cfg.name)
                evaluation = evaluate_candidate(settings, cfg, held, candidate, current)
                ok, why = decide(evaluation, cfg.learning.promote_margin)
                out.update(evaluation=evaluation.as_dict(), wins=ok, reason=why)
                if ok and cfg.learning.auto_promote:
                    promote(store, cfg.name, candidate, evaluation.as_dict(), "auto: " + why)
                out["promoted"] = bool(ok and cfg.learning.auto_promote)
            except NotEnoughLabels as exc:
                # nothing to learn yet (a new deployment's first days): a normal nightly run
                out.update(wins=False, promoted=False, reason=exc.message)
                print(f"learn: {exc.message}", file=sys.stderr)
            except GearshiftError as exc:
                out.update(promoted=False, reason=exc.message)
            results.append(out)
    print(json.dumps(results, indent=2))
    return 0
