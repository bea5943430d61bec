"""``gearshift eval --candidate DIR --config FILE``: the candidate against the router serving now,
on the most recent ``--holdout-days`` of labels (which ``train --from-ledger`` left out)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gearshift.cli.learning_common import add_common, open_learning

METRICS = (
    ("pair_apgr", "pair APGR (light vs reference)"),
    ("cost_share_at_95", "cost share at 95% of reference quality"),
    ("reference_share", "share sent to the reference"),
    ("quality_retained", "measured quality retained"),
    ("regret", "regret (vs best per prompt)"),
    ("cost_per_request_usd", "cost per request (USD)"),
    ("savings_vs_reference", "savings vs the reference"),
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gearshift eval --candidate", description=__doc__)
    p.add_argument("--candidate", required=True, help="DIR written by train --from-ledger")
    add_common(p)
    p.add_argument("--holdout-days", type=float, default=7.0, help="recent days to evaluate (7)")
    p.add_argument("--json", action="store_true", help="print JSON only")
    return p


def read_candidate(path: str) -> str:
    from gearshift.cli.learn_train import CANDIDATE_FILE
    from gearshift.errors import ConfigError

    p = Path(path)
    if p.is_dir():
        p = p / CANDIDATE_FILE
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read candidate {p}: {exc.strerror}") from None


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['rows']} held-out label(s); light {result['light']}, "
        f"reference {result['reference']}; decisions agree on {result['agreement']:.0%}",
        f"{'metric':<42} {'current':>12} {'candidate':>12}",
    ]
    for key, label in METRICS:
        cur, cand = result["current"].get(key), result["candidate"].get(key)
        lines.append(f"{label:<42} {_fmt(cur):>12} {_fmt(cand):>12}")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"


def run(argv: Sequence[str]) -> int:
    if "-h" in argv or "--help" in argv:  # also for a bare `eval --candidate --help`
        _parser().print_help()
        return 0
    args = _parser().parse_args(list(argv))
    from gearshift.learning.offline import current_candidate, evaluate_candidate, split_labels

    candidate = read_candidate(args.candidate)
    settings, cfg, store = open_learning(args)
    with store:
        _, held = split_labels(store, cfg.name, args.holdout_days)
        current = current_candidate(store, cfg.name)
    result = evaluate_candidate(settings, cfg, held, candidate, current).as_dict()
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0
