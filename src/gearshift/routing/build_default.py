"""Build the bundled default router from labelled data (``make router``).

    python -m gearshift.routing.build_default --data ../shared/data --out src/gearshift/routing/data

The default router must not know the models it will meet, so it learns one thing per prompt:
its *difficulty*, the probability that a strong model is needed. Every labelled row scores a
weaker and a stronger model (per data set: the lowest and highest mean score among the models
it scores); the target is "the strong model answered well and the weak one did not"
(``strong · (1 − weak)`` for fractional scores). The head is a logistic regression over n-grams
of the final question and structural features (see ``features.py``), calibrated by isotonic
regression on 5-fold out-of-fold predictions. The cross-validated APGR per data source is
written next to the model, in ``default_router.json``, with the data's provenance.

Nothing here looks at which data set a row came from, except to pick its weak/strong pair and to
report per-source numbers: there are no data-set features.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gearshift.routing.formats import LabelledRow, iter_rows
from gearshift.routing.predictors import DEFAULT_MODEL_FILE

__all__ = ["build", "difficulty_targets", "main"]

FloatArray = npt.NDArray[np.float64]


def source_of(row_id: str) -> str:
    return row_id.split("/", 1)[0]


def difficulty_targets(rows: Sequence[LabelledRow]) -> tuple[FloatArray, list[str], list[str]]:
    """(target per row, weak model per row, strong model per row)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(tuple(sorted(r.scores)), []).append(i)
    y = np.zeros(len(rows))
    weak = [""] * len(rows)
    strong = [""] * len(rows)
    for models, idx in groups.items():
        if len(models) < 2:
            continue  # a row scoring one model says nothing about needing a stronger one
        means = {m: float(np.mean([rows[i].scores[m] for i in idx])) for m in models}
        lo = min(models, key=lambda m: (means[m], m))
        hi = max(models, key=lambda m: (means[m], m))
        for i in idx:
            s, w = rows[i].scores[hi], rows[i].scores[lo]
            y[i] = s * (1.0 - w)
            weak[i], strong[i] = lo, hi
    return y, weak, strong


def build(
    data: Sequence[str | Path],
    out: Path,
    *,
    folds: int = 5,
    seed: int = 0,
    c: float = 0.3,
    log: Any = print,
) -> dict[str, Any]:
    from gearshift.routing.convert import convert_path
    from gearshift.routing.formats import row_to_request
    from gearshift.routing.metrics import apgr, cpt, pair_curve
    from gearshift.routing.train import TrainOptions, featurize, fit_text_model, kfold_predict

    started = time.time()
    rows: list[LabelledRow] = []
    digest = hashlib.sha256()
    for source in data:
        src_path = Path(source)
        if src_path.suffix == ".jsonl" and src_path.is_file():
            rows.extend(iter_rows(src_path, need_scores=True))
            digest.update(src_path.read_bytes())
            continue
        for obj in convert_path(src_path):
            digest.update(json.dumps(obj, sort_keys=True).encode())
            rows.append(
                LabelledRow(
                    str(obj["id"]), row_to_request(obj), obj["scores"], obj.get("costs", {})
                )
            )
    y, weak, strong = difficulty_targets(rows)
    keep = [i for i, w in enumerate(weak) if w]
    rows = [rows[i] for i in keep]
    y = y[keep]
    weak = [weak[i] for i in keep]
    strong = [strong[i] for i in keep]
    sources = [source_of(r.id) for r in rows]
    log(f"build_default: {len(rows)} rows from {sorted(set(sources))}; featurizing")
    feats = featurize(rows)
    options = TrainOptions(folds=folds, seed=seed, c=c)
    targets = y[:, None]
    oof = kfold_predict(feats, targets, options, groups=sources, progress=log)
    report: dict[str, Any] = {}
    for src in sorted(set(sources)):
        idx = [i for i, s in enumerate(sources) if s == src]
        w = np.asarray([rows[i].scores[weak[i]] for i in idx])
        s = np.asarray([rows[i].scores[strong[i]] for i in idx])
        curve = pair_curve(oof[idx, 0], w, s)
        report[src] = {
            "rows": len(idx),
            "weak": weak[idx[0]],
            "strong": strong[idx[0]],
            "apgr": round(apgr(curve), 4),
            "cpt50": round(cpt(curve, 0.5), 4),
            "cpt80": round(cpt(curve, 0.8), 4),
        }
        log(f"build_default: {folds}-fold CV {src}: {report[src]}")
    meta = {
        "kind": "difficulty",
        "target": "strong * (1 - weak): the strong model answers well and the weak one does not",
        "rows": len(rows),
        "data": [str(d) for d in data],
        "data_sha256": digest.hexdigest(),
        "options": {
            "folds": folds,
            "seed": seed,
            "c": c,
            "min_df": options.min_df,
            "max_vocab": options.max_vocab,
        },
        "cv": report,
    }
    model = fit_text_model(feats, targets, ["difficulty"], options, oof=oof, meta=meta)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / DEFAULT_MODEL_FILE)
    summary = {**meta, "vocab": len(model.vocab), "seconds": round(time.time() - started, 1)}
    (out / DEFAULT_MODEL_FILE.replace(".npz", ".json")).write_text(
        json.dumps(summary, indent=2) + "\n", encoding="utf-8"
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build the bundled default router.")
    p.add_argument("--data", nargs="+", required=True, help="../shared/data, or labelled JSONL")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--c", type=float, default=0.3)
    args = p.parse_args(argv)
    summary = build(
        args.data,
        args.out,
        folds=args.folds,
        seed=args.seed,
        c=args.c,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
