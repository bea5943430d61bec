"""Routing quality on ../shared/data, cross-validated, next to RouteLLM's published anchors.

    .venv/bin/python bench/routing_quality.py --data ../shared/data [--folds 5] [--skip-cv]

Prints one JSON object:

* ``default_router_cv`` — the default router's training procedure (build_default) run k-fold:
  every prompt is scored by a router trained without it. APGR, CPT(50%), CPT(80%) per source
  (MMLU and GSM8K: weak Mixtral-8x7B, strong GPT-4; RouterArena: weak claude-3-haiku, strong
  gemini-2.0-flash), computed as RouteLLM's evaluate.py does.
* ``trained_router_30pct`` — ``gearshift train`` on 30% of a labelled set, evaluated on the other
  70%: the cost at which routing reaches 95% of the best single model's quality, as a share of
  that model's cost. On the RouterArena split (2 models) and on a synthetic 4-model set.

The synthetic 4-model set is built from the RouteLLM outcomes (MMLU + GSM8K), so its labels
depend on real prompts: ``tiny`` = Mixtral's outcome with a further 30% of its right answers
turned wrong (seeded), ``mixtral`` and ``gpt-4`` as recorded, and ``ensemble`` = right when
either Mixtral or GPT-4 was right (an upper-tier model). Costs per call = estimated prompt tokens
× input price + answer tokens × output price with prices (USD/Mtok, in/out) tiny 0.1/0.1,
mixtral 0.6/0.6, gpt-4 10/30, ensemble 30/60; answer tokens 200 (GSM8K) or 2 (MMLU).
Skips cleanly (``{"skipped": ...}``) when the data directory is absent.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ANCHORS = {
    "routellm_best": {
        "mmlu": {"apgr": 0.603, "cpt50": 0.354, "cpt80": 0.703},
        "gsm8k": {"apgr": 0.622, "cpt50": 0.336, "cpt80": 0.633},
    },
    "random": {"apgr": 0.5},
    "bars": {"mmlu_apgr": 0.70, "gsm8k_apgr": 0.68},
}
SYNTH_PRICES = {
    "tiny": (0.1, 0.1),
    "mixtral": (0.6, 0.6),
    "gpt-4": (10.0, 30.0),
    "ensemble": (30.0, 60.0),
}
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"


def default_router_cv(data: Path, folds: int) -> dict[str, Any]:
    from gearshift.routing.build_default import (
        DEFAULT_C,
        DEFAULT_MAX_VOCAB,
        cross_validate,
        difficulty_data,
        load_rows,
    )
    from gearshift.routing.train import TrainOptions, featurize

    rows, digest = load_rows([data])
    dd = difficulty_data(rows)
    feats = featurize(dd.rows)
    _, report, _ = cross_validate(
        dd,
        feats,
        TrainOptions(folds=folds, c=DEFAULT_C, max_vocab=DEFAULT_MAX_VOCAB),
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    return {"folds": folds, "rows": len(dd.rows), "data_sha256": digest, "per_source": report}


def synthetic_rows(rows: list[Any], seed: int = 0) -> list[Any]:
    from gearshift.routing.formats import LabelledRow
    from gearshift.routing.tokens import estimate_tokens

    rng = random.Random(seed)
    out = []
    for r in rows:
        if WEAK not in r.scores or STRONG not in r.scores:
            continue
        w, s = r.scores[WEAK], r.scores[STRONG]
        scores = {
            "tiny": w if w == 0.0 or rng.random() >= 0.3 else 0.0,
            "mixtral": w,
            "gpt-4": s,
            "ensemble": max(w, s),
        }
        p_tok = estimate_tokens(r.request.last_user_text())
        a_tok = 200 if r.id.startswith("gsm8k") else 2
        costs = {m: (p_tok * pi + a_tok * po) / 1e6 for m, (pi, po) in SYNTH_PRICES.items()}
        out.append(LabelledRow(r.id, r.request, scores, costs))
    return out


def trained_30pct(rows: list[Any], label: str) -> dict[str, Any]:
    from gearshift.routing.evaluate import evaluate, split_predict, truth_matrices

    models = list(dict.fromkeys(m for r in rows for m in r.scores))
    test, preds = split_predict(rows, models, 0.3, seed=0)
    scores, costs = truth_matrices(test, models)
    means = scores.mean(axis=0)
    report = evaluate(
        preds, scores, costs, weak=models[int(means.argmin())], strong=models[int(means.argmax())]
    )
    n = report["n_models"]
    return {
        "set": label,
        "train_rows": len(rows) - len(test),
        "test_rows": len(test),
        "models": models,
        "best_single_model": n["best_single_model"],
        "best_single_quality": n["best_single_quality"],
        "quality_target_95pct": n["target_quality"],
        "cost_share_at_95pct": n["cost_share_at_target"],
        "pair_apgr": report["pair"]["apgr"],
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--skip-cv", action="store_true", help="only the trained-router figures")
    args = p.parse_args()
    if not args.data.is_dir():
        print(json.dumps({"skipped": f"{args.data} not found"}))
        return 0
    started = time.time()
    result: dict[str, Any] = {"anchors": ANCHORS}
    if not args.skip_cv:
        result["default_router_cv"] = default_router_cv(args.data, args.folds)
    from gearshift.routing.build_default import load_rows

    arena_dir = args.data / "routerarena"
    arena, _ = load_rows([arena_dir])
    routellm, _ = load_rows([args.data / "routellm"])
    result["trained_router_30pct"] = [
        trained_30pct(arena, "routerarena (haiku, gemini-flash)"),
        trained_30pct(synthetic_rows(routellm), "synthetic 4-model (from RouteLLM outcomes)"),
    ]
    result["seconds"] = round(time.time() - started, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
