"""Build the bundled default router from labelled data (``make router``).

    python -m gearshift.routing.build_default --data ../shared/data --out src/gearshift/routing/data

The default router must not know the models it will meet, so it learns one thing per prompt:
its *difficulty*, the probability that a strong model is needed. Every labelled row scores a
weaker and a stronger model (per data set: the lowest and highest mean score among the models
it scores). One logistic head over n-grams of the final question and structural features (see
``features.py``) is fitted to ``(strong − weak + 1) / 2`` as a soft label, so its output ranks
prompts by the expected gain of the strong model over the weak one (what APGR rewards). It is
then calibrated by isotonic regression, on 5-fold out-of-fold predictions, to "the strong model
answered well and the weak one did not" (``strong · (1 − weak)``). Sources are weighted so a big
one does not drown the others. The cross-validated APGR per source is written next to the
model, in ``default_router.json``, with the data's provenance.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gearshift.routing.domain import blend_logit, logits
from gearshift.routing.features import Features
from gearshift.routing.formats import LabelledRow, iter_rows
from gearshift.routing.predictors import DEFAULT_MODEL_FILE
from gearshift.routing.train import TrainOptions

__all__ = [
    "DEFAULT_C",
    "DEFAULT_MAX_VOCAB",
    "DifficultyData",
    "build",
    "cross_validate",
    "difficulty_data",
    "implausible_domains",
    "load_rows",
    "main",
]

FloatArray = npt.NDArray[np.float64]


def source_of(row_id: str) -> str:
    return row_id.split("/", 1)[0]


@dataclass(slots=True)
class DifficultyData:
    rows: list[LabelledRow]
    target: FloatArray  # training target: (strong − weak + 1) / 2, so its mean ranks by E[gain]
    needed: FloatArray  # strong · (1 − weak): "the strong model was needed", for calibration
    weak: list[str]
    strong: list[str]
    sources: list[str]
    weights: FloatArray  # per row: each source weighs as much as SOURCE_WEIGHT_CAP rows at most
    domains: list[str]  # per row: its category label, else its source (for the domain prior)
    excluded: list[str]  # domains not trained on (weight 0): see implausible_domains

    def pair_scores(self, idx: Sequence[int]) -> tuple[FloatArray, FloatArray]:
        w = np.asarray([self.rows[i].scores[self.weak[i]] for i in idx])
        s = np.asarray([self.rows[i].scores[self.strong[i]] for i in idx])
        return w, s


# A large source (MMLU: 14k rows) must not drown the small ones (GSM8K, RouterArena): rows of a
# source with more than this many rows are down-weighted so the source totals this weight.
SOURCE_WEIGHT_CAP = 4000
# Inverse L2 strength, chosen by 5-fold CV APGR over C in {1, .3, .1, .05, .03, .02, .01,
# .005, .002}
# (strong regularisation generalises best: MMLU, GSM8K and RouterArena all agreed).
DEFAULT_C = 0.01
# The head's vocabulary: the 20,000 most frequent grams scored as well in 5-fold CV as 60,000
# (MMLU +0.0003, GSM8K -0.003, RouterArena +0.002), and a third of the dictionary keeps the
# per-request look-ups in cache.
DEFAULT_MAX_VOCAB = 20_000


def difficulty_data(rows: Sequence[LabelledRow]) -> DifficultyData:
    """Targets per row from its data set's weak and strong model (lowest/highest mean score)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(tuple(sorted(r.scores)), []).append(i)
    keep: list[int] = []
    weak = [""] * len(rows)
    strong = [""] * len(rows)
    for models, idx in groups.items():
        if len(models) < 2:
            continue  # a row scoring one model says nothing about needing a stronger one
        means = {m: float(np.mean([rows[i].scores[m] for i in idx])) for m in models}
        lo = min(models, key=lambda m: (means[m], m))
        hi = max(models, key=lambda m: (means[m], m))
        for i in idx:
            weak[i], strong[i] = lo, hi
            keep.append(i)
    keep.sort()
    kept = [rows[i] for i in keep]
    w = np.asarray([rows[i].scores[weak[i]] for i in keep])
    s = np.asarray([rows[i].scores[strong[i]] for i in keep])
    sources = [source_of(r.id) for r in kept]
    counts = {src: sources.count(src) for src in set(sources)}
    weights = np.asarray([min(1.0, SOURCE_WEIGHT_CAP / counts[src]) for src in sources])
    domains = [r.category or src for r, src in zip(kept, sources, strict=True)]
    excluded = implausible_domains(domains, w, s)
    weights[[d in excluded for d in domains]] = 0.0
    return DifficultyData(
        rows=kept,
        target=(s - w + 1.0) / 2.0,
        needed=s * (1.0 - w),
        weak=[weak[i] for i in keep],
        strong=[strong[i] for i in keep],
        sources=sources,
        weights=weights,
        domains=domains,
        excluded=sorted(excluded),
    )


# A domain whose stronger model scores this much below its weaker one, over at least
# IMPLAUSIBLE_MIN_ROWS rows, is not trained on (it is still scored in every report).
IMPLAUSIBLE_GAP = 0.15
IMPLAUSIBLE_MIN_ROWS = 50


def implausible_domains(domains: Sequence[str], weak: FloatArray, strong: FloatArray) -> set[str]:
    """Domains whose labels describe the grader rather than the prompts.

    The stronger model is the one with the higher mean over all rows scoring the same model
    pair (``difficulty_data``); a sizeable domain where it falls far below the weaker one points
    at broken grading. The case in
    ../shared/data: MMLU high_school_mathematics, where GPT-4 is "right" on 3% of 270 questions
    (chance is 25%) and Mixtral on 32%. Learning from it teaches the router that mathematics
    does not need a strong model, the opposite of GSM8K and RouterArena's math categories, and
    the opposite of what a held-out math set will show.
    """
    by_domain: dict[str, list[int]] = {}
    for i, d in enumerate(domains):
        by_domain.setdefault(d, []).append(i)
    return {
        d
        for d, idx in by_domain.items()
        if len(idx) >= IMPLAUSIBLE_MIN_ROWS
        and float(strong[idx].mean() - weak[idx].mean()) < -IMPLAUSIBLE_GAP
    }


def load_rows(data: Sequence[str | Path]) -> tuple[list[LabelledRow], str]:
    """Labelled rows from ../shared/data-style folders or labelled JSONL, and their digest."""
    from gearshift.routing.convert import convert_path
    from gearshift.routing.formats import row_to_request

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
                    str(obj["id"]),
                    row_to_request(obj),
                    obj["scores"],
                    obj.get("costs", {}),
                    str(obj.get("category", "")),
                )
            )
    return rows, digest.hexdigest()


def cross_validate(
    dd: DifficultyData, feats: Sequence[Features], options: TrainOptions, log: Any = None
) -> tuple[FloatArray, dict[str, Any], list[float]]:
    """Out-of-fold scores of head + domain prior, the blend fitted on them, and per-source
    APGR / CPT (RouteLLM's way) of the blend and of the head alone."""
    from gearshift.routing.domain import fit_domain_prior
    from gearshift.routing.metrics import apgr, cpt, pair_curve
    from gearshift.routing.train import fold_ids, kfold_predict

    head = kfold_predict(
        feats,
        dd.target[:, None],
        options,
        groups=dd.sources,
        weights=dd.weights[:, None],
        progress=log,
    )[:, 0]
    prior = np.zeros(len(feats))
    fold = fold_ids(len(feats), options.folds, options.seed, dd.sources)  # kfold_predict's folds
    for k in range(options.folds):
        train = np.flatnonzero((fold != k) & (dd.weights > 0)).tolist()
        test = np.flatnonzero(fold == k).tolist()
        domain = fit_domain_prior(
            [feats[i] for i in train],
            [dd.domains[i] for i in train],
            dd.target[train],
            dd.weights[train],
        )
        prior[test] = domain.expected_gains([feats[i] for i in test])
    blend = fit_blend(head, prior, dd.target, dd.weights)
    oof = _sigmoid_blend(blend, head, prior)
    report: dict[str, Any] = {}
    for src in sorted(set(dd.sources)):
        idx = [i for i, s in enumerate(dd.sources) if s == src]
        w, s = dd.pair_scores(idx)
        curve = pair_curve(oof[idx], w, s)
        report[src] = {
            "rows": len(idx),
            "weak": dd.weak[idx[0]],
            "strong": dd.strong[idx[0]],
            "apgr": round(apgr(curve), 4),
            "cpt50": round(cpt(curve, 0.5), 4),
            "cpt80": round(cpt(curve, 0.8), 4),
            "apgr_head_only": round(apgr(pair_curve(head[idx], w, s)), 4),
        }
        trained = [i for i in idx if dd.weights[i] > 0]
        if len(trained) < len(idx):  # the source has an excluded domain: also without its rows
            tw, ts = dd.pair_scores(trained)
            report[src]["apgr_without_excluded"] = round(apgr(pair_curve(oof[trained], tw, ts)), 4)
        if log:
            log(f"{options.folds}-fold CV {src}: {report[src]}")
    return oof, report, blend


def fit_blend(
    head: FloatArray, prior: FloatArray, target: FloatArray, weights: FloatArray
) -> list[float]:
    """[a, b, c] of ``a·logit(head) + b·logit(prior) + c``: a logistic fit to the soft target
    on out-of-fold scores (two inputs and plenty of rows: barely regularised)."""
    from sklearn.linear_model import LogisticRegression

    x = np.stack([logits(head), logits(prior)], axis=1)
    n = len(target)
    model = LogisticRegression(C=100.0, max_iter=1000)
    model.fit(
        np.vstack([x, x]),
        np.concatenate([np.ones(n, int), np.zeros(n, int)]),
        sample_weight=np.concatenate([weights * target, weights * (1 - target)]),
    )
    a, b = (float(v) for v in model.coef_[0])
    return [a, b, float(model.intercept_[0])]


def _sigmoid_blend(blend: list[float], head: FloatArray, prior: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-blend_logit(blend, logits(head), prior)))
    return out


def build(
    data: Sequence[str | Path],
    out: Path,
    *,
    folds: int = 5,
    seed: int = 0,
    c: float = DEFAULT_C,
    log: Any = print,
) -> dict[str, Any]:
    from gearshift.routing.domain import fit_domain_prior
    from gearshift.routing.train import TrainOptions, featurize, fit_text_model

    started = time.time()
    rows, digest = load_rows(data)
    dd = difficulty_data(rows)
    log(f"build_default: {len(dd.rows)} rows from {sorted(set(dd.sources))}; featurizing")
    feats = featurize(dd.rows)
    options = TrainOptions(folds=folds, seed=seed, c=c, max_vocab=DEFAULT_MAX_VOCAB)
    oof, report, blend = cross_validate(dd, feats, options, log)
    meta = {
        "kind": "difficulty",
        "target": "fit (strong - weak + 1) / 2; calibrated to P(strong right and weak wrong)",
        "rows": len(dd.rows),
        "data": [str(d) for d in data],
        "data_sha256": digest,
        "source_weight_cap": SOURCE_WEIGHT_CAP,
        "excluded_domains": dd.excluded,
        "options": {
            "folds": folds,
            "seed": seed,
            "c": c,
            "min_df": options.min_df,
            "max_vocab": options.max_vocab,
        },
        "cv": report,
        "blend": blend,
    }
    model = fit_text_model(
        feats,
        dd.target[:, None],
        ["difficulty"],
        options,
        oof=oof[:, None],
        weights=dd.weights[:, None],
        meta=meta,
        calibration_targets=dd.needed[:, None],
    )
    trained = np.flatnonzero(dd.weights > 0).tolist()
    model.domain = fit_domain_prior(
        [feats[i] for i in trained],
        [dd.domains[i] for i in trained],
        dd.target[trained],
        dd.weights[trained],
    )
    model.blend = blend
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / DEFAULT_MODEL_FILE)
    summary = {
        **meta,
        "vocab": len(model.vocab),
        "domains": len(model.domain.domains),
        "seconds": round(time.time() - started, 1),
    }
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
    p.add_argument("--c", type=float, default=DEFAULT_C, help="inverse L2 strength")
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
