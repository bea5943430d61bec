"""``gearshift train`` on 30% of a labelled set, scored on the other 70%, beside the ridge baseline.

    .venv/bin/python bench/trained_router.py --data ../shared/data [--seeds 0,1,2]
        [--sources mmlu_pro,arena_bench_v1,routerarena,gsm8k,mmlu]

For each source and seed: a seeded 30/70 split of the rows; the trained router
(``quality_train.train_quality_router``, exactly what ``gearshift train`` runs, its penalties
tuned on an inner split of the 30%) and the baseline (bench/baseline.py: tf-idf word 1-2-grams +
ridge per model, tuned on an inner split of the same 30%) both predict every model's quality on
the 70%. Both route with the gateway's rule (the cheapest model within a tolerance of the best
prediction) over a tolerance grid, and report:

* ``cost_share_at_95`` / ``cost_share_at_100`` — the mean cost of routing, as a share of the best
  single model's mean cost, at which the routed quality first reaches 95% / 100% of that model's
  quality on the 70% (null: never);
* ``pair_apgr`` — APGR for the pair (cheapest model, best model on the 30%) ranked by each
  router's predicted gain q_strong − q_weak.

Costs: recorded ones where rows give them (the 2-model RouteLLM / RouterArena sources), else
estimated from list prices (``gearshift.routing.row_costs``: prompt tokens + a 300-token answer).
Held-out rows are those scoring every model. Features are cached under ``.data/bench_cache``.
Prints one JSON object; ``summary`` gives each figure's mean, min and max over the seeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
CACHE = ROOT / ".data" / "bench_cache"
MULTIMODEL = ("mmlu_pro", "arena_bench_v1")
TWO_MODEL = {
    "routerarena": "routerarena",
    "gsm8k": "routellm/gsm8k_responses.csv",
    "mmlu": "routellm/mmlu",
}
TRAIN_SHARE = 0.3


def load_source(data: Path, name: str) -> list[Any]:
    from gearshift.routing.convert import convert_path
    from gearshift.routing.formats import iter_rows, read_labelled

    if name in MULTIMODEL:
        return read_labelled(data / "multimodel" / f"{name}.jsonl")
    import io

    text = "".join(json.dumps(r) + "\n" for r in convert_path(data / TWO_MODEL[name]))
    return list(iter_rows(name, need_scores=True, stream=io.StringIO(text)))


def cached_features(name: str, rows: list[Any]) -> list[Any]:
    from gearshift.routing import features
    from gearshift.routing.train import featurize

    digest = hashlib.sha256()
    digest.update(Path(features.__file__).read_bytes())
    for r in rows:
        digest.update(r.id.encode())
        digest.update(r.request.prompt_text().encode())
    path = CACHE / f"{name}-{digest.hexdigest()[:16]}.pkl"
    if path.is_file():
        with open(path, "rb") as fh:
            cached: list[Any] = pickle.load(fh)  # our own cache file, written below
            return cached
    feats = featurize(rows)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(feats, fh)
    return feats


def run_split(rows: list[Any], feats: list[Any], seed: int) -> dict[str, Any]:
    from baseline import fit_baseline, row_text
    from gearshift.routing.metrics import apgr, cost_share_at, pair_curve
    from gearshift.routing.quality_train import QualityOptions, score_matrix, train_quality_router

    order = np.random.default_rng(seed).permutation(len(rows))
    cut = round(TRAIN_SHARE * len(rows))
    tr, te = order[:cut].tolist(), order[cut:].tolist()
    train_rows = [rows[i] for i in tr]
    t0 = time.perf_counter()
    model, _ = train_quality_router(
        train_rows, QualityOptions(folds=0, seed=seed), feats=[feats[i] for i in tr]
    )
    router_s = time.perf_counter() - t0
    models = list(model.heads)
    s_tr, m_tr = score_matrix(train_rows, models)
    t0 = time.perf_counter()
    base = fit_baseline([row_text(r) for r in train_rows], s_tr, m_tr, seed=seed)
    baseline_s = time.perf_counter() - t0
    test = [i for i in te if all(m in rows[i].scores for m in models)]
    test_rows = [rows[i] for i in test]
    scores, _ = score_matrix(test_rows, models)
    costs = np.asarray([[r.costs[m] for m in models] for r in test_rows])
    predicted = {
        "router": model.predict_many([feats[i] for i in test]),
        "baseline": base.predict([row_text(r) for r in test_rows]),
    }
    w, s = models.index(model.meta["weak"]), models.index(model.meta["strong"])
    out: dict[str, Any] = {
        "seed": seed,
        "train_rows": len(tr),
        "test_rows": len(test),
        "pair": [models[w], models[s]],
        "router_settings": model.meta["settings"],
        "baseline_settings": base.describe(),
        "fit_seconds": {"router": round(router_s, 1), "baseline": round(baseline_s, 1)},
    }
    for name, q in predicted.items():
        shares = cost_share_at(q, costs, scores, models)
        curve = pair_curve(q[:, s] - q[:, w], scores[:, w], scores[:, s])
        out[name] = {
            "cost_share_at_95": shares["cost_share_at_95"],
            "cost_share_at_100": shares["cost_share_at_100"],
            "pair_apgr": round(apgr(curve), 4),
        }
        out["best_single_model"] = shares["best_single_model"]
    return out


def summarise(splits: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for who in ("router", "baseline"):
        out[who] = {}
        for key in ("cost_share_at_95", "cost_share_at_100", "pair_apgr"):
            vals = [sp[who][key] for sp in splits]
            if any(v is None for v in vals):
                out[who][key] = {"never_reached_in": sum(v is None for v in vals)}
                vals = [v for v in vals if v is not None]
            if vals:
                out[who][key] = {
                    **out[who].get(key, {}),
                    "mean": round(float(np.mean(vals)), 4),
                    "min": round(float(np.min(vals)), 4),
                    "max": round(float(np.max(vals)), 4),
                }
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--sources", default="mmlu_pro,arena_bench_v1,routerarena,gsm8k,mmlu")
    args = p.parse_args()
    data = Path(args.data)
    if not data.is_dir():
        print(json.dumps({"skipped": f"{data} not found"}))
        return 0
    from gearshift.routing.row_costs import fill_missing_costs

    seeds = [int(s) for s in args.seeds.split(",")]
    result: dict[str, Any] = {
        "command": "bench/trained_router.py " + " ".join(sys.argv[1:]),
        "train_share": TRAIN_SHARE,
        "seeds": seeds,
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
        "sources": {},
    }
    for name in args.sources.split(","):
        rows = load_source(data, name)
        price_sources = fill_missing_costs(rows)
        feats = cached_features(name, rows)
        splits = []
        for seed in seeds:
            split = run_split(rows, feats, seed)
            print(f"{name} seed {seed}: {json.dumps(split)}", file=sys.stderr, flush=True)
            splits.append(split)
        result["sources"][name] = {
            "rows": len(rows),
            "models": len(price_sources),
            "estimated_prices": sorted(m for m, s in price_sources.items() if s != "recorded"),
            "summary": summarise(splits),
            "splits": splits,
        }
    result["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
