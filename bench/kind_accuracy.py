"""Task-kind detector accuracy: per-kind precision and recall on the hand-labelled kind set.

    .venv/bin/python bench/kind_accuracy.py [--data ../shared/data] [--folds 5] [--c 4.0]

Prints one JSON object with two measurements:

* ``cross_validation`` — k-fold over the hand-labelled ``train`` rows (stratified by kind, fixed
  folds): each fold is scored by a model trained on the other folds plus every data-source row
  (``--data``; those are always in training, never scored);
* ``heldout`` — the bundled model (``src/gearshift/routing/data/kinds.npz``, what ships) on the
  ``heldout`` rows, which no build trains on; also for the unambiguous held-out rows only;
* ``arena_bench`` — the bundled model on real chat-user prompts it never saw: 108 rows of
  ``multimodel/arena_bench_v1.jsonl`` (from ``--data``) whose kind we labelled by hand
  (``bench/data/arena_bench_kinds.json``; ids and kinds only, rows on a boundary skipped). Mostly
  code and maths, so it checks those kinds out of our own writing style, not the balance.

"Macro accuracy" is the mean of the per-kind recalls (balanced accuracy), so a kind with few rows
counts as much as one with many.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gearshift.routing import build_kinds
from gearshift.routing.build_kinds import KindRow, featurize, fit_kind_model, labelled_rows
from gearshift.routing.features import DENSE_NAMES
from gearshift.routing.kinds import KINDS, detect_kind


def per_kind(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Precision, recall and support per kind; accuracy and macro accuracy overall."""
    table: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        tp = sum(t == kind and p == kind for t, p in zip(truth, predicted, strict=True))
        n_true = sum(t == kind for t in truth)
        n_pred = sum(p == kind for p in predicted)
        table[kind] = {
            "precision": round(tp / n_pred, 3) if n_pred else 0.0,
            "recall": round(tp / n_true, 3) if n_true else 0.0,
            "support": n_true,
        }
    present = [k for k in KINDS if table[k]["support"]]
    return {
        "rows": len(truth),
        "accuracy": round(
            sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth), 3
        ),
        "macro_accuracy": round(sum(table[k]["recall"] for k in present) / len(present), 3),
        "per_kind": table,
    }


def stratified_folds(rows: Sequence[KindRow], folds: int) -> list[int]:
    """Fold of each row: rows of one kind, in id order, dealt round-robin."""
    fold = [0] * len(rows)
    seen: dict[str, int] = defaultdict(int)
    for i in sorted(range(len(rows)), key=lambda i: rows[i].id):
        fold[i] = seen[rows[i].kind] % folds
        seen[rows[i].kind] += 1
    return fold


def cross_validate(
    hand: Sequence[KindRow], sources: Sequence[KindRow], folds: int, c: float
) -> dict[str, Any]:
    hand_feats, source_feats = featurize(hand), featurize(sources)
    fold = stratified_folds(hand, folds)
    predicted = [""] * len(hand)
    for k in range(folds):
        train = [i for i in range(len(hand)) if fold[i] != k]
        rows = [hand[i] for i in train] + list(sources)
        feats = [hand_feats[i] for i in train] + source_feats
        model = fit_kind_model(rows, feats, c=c, meta={})
        for i in range(len(hand)):
            if fold[i] == k:
                f = hand_feats[i]
                p = model.probabilities(f.tokens, f.dense, DENSE_NAMES)
                predicted[i] = KINDS[int(p.argmax())]
    return per_kind([r.kind for r in hand], predicted)


ARENA_LABELS = Path(__file__).parent / "data" / "arena_bench_kinds.json"


def arena_bench(data: str) -> dict[str, Any] | None:
    """The bundled model on the hand-labelled arena-bench rows, where the data is present."""
    path = Path(data) / "multimodel" / "arena_bench_v1.jsonl"
    if not path.is_file():
        return None
    labels = json.loads(ARENA_LABELS.read_text(encoding="utf-8"))["labels"]
    truth, predicted = [], []
    with open(path, encoding="utf-8") as fh:
        for row in map(json.loads, fh):
            if row["id"] in labels:
                truth.append(labels[row["id"]])
                predicted.append(detect_kind(row["messages"][-1]["content"]))
    return per_kind(truth, predicted)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data", help="data-source folder ('' = none)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--c", type=float, default=build_kinds.C)
    parser.add_argument("--skip-cv", action="store_true", help="held-out figures only")
    args = parser.parse_args(argv)
    rows = labelled_rows()
    train = [r for r in rows if r.split == "train"]
    heldout = [r for r in rows if r.split == "heldout"]
    predicted = [detect_kind(r.text) for r in heldout]
    clear = [i for i, r in enumerate(heldout) if not r.ambiguous]
    report: dict[str, Any] = {
        "labelled_rows": {"train": len(train), "heldout": len(heldout)},
        "heldout": per_kind([r.kind for r in heldout], predicted),
        "heldout_unambiguous": per_kind(
            [heldout[i].kind for i in clear], [predicted[i] for i in clear]
        ),
        "confusions_heldout": sorted(
            f"{r.kind} -> {p}: {r.text[:70]!r}"
            for r, p in zip(heldout, predicted, strict=True)
            if r.kind != p
        ),
    }
    if args.data and (arena := arena_bench(args.data)) is not None:
        report["arena_bench"] = arena
    if not args.skip_cv:
        sources = build_kinds.source_rows(args.data) if args.data else []
        report["source_rows"] = len(sources)
        report["cross_validation"] = {
            "folds": args.folds,
            "c": args.c,
            **cross_validate(train, sources, args.folds, args.c),
        }
    json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
