"""Routing quality where it matters: on sources the router never trained on (leave-one-source-out).

    .venv/bin/python bench/routing_quality.py --data ../shared/data [--seeds 0 1 2] [--only mmlu]

For each held-out source of RouteLLM MMLU, GSM8K, RouterArena, MMLU-Pro and arena-bench, the
default router's training procedure (``irt_train.fit_quality_model``, the options ``make router``
uses) is run on all the *other* permissive sources and scored on the held-out one; AlpacaEval 1
and 2 (non-commercial) are only ever held out: trained on all five permissive sources, scored.
Nothing of the held-out source is seen in training: not its rows, vocabulary, feature scaling or
model parameters (a held-out model that no other source names is predicted from its profile:
catalogue ability).

Per held-out source:

* ``pair_apgr``: APGR (RouteLLM's way, ``metrics.apgr``) between a weaker and a stronger model
  present there (``PAIRS``), prompts ranked by predicted gain ``q(strong) − q(weak)``;
* many-model sources: the cost share (of the best single model's cost) at which routing by the
  decision rule (cheapest model within a tolerance of the best prediction, tolerance swept 0..1)
  first reaches 95% and 100% of the best single model's mean quality, over the source's models
  the catalogue prices (its list price; prompt tokens estimated, ``ANSWER_TOKENS`` out).

Beside every figure: the same protocol for ``baseline.fit_baseline`` (tf-idf 1-2-grams + ridge
per model, ridge strength per model and min_df tuned on an inner split; plus a ridge on each
row's mean score, the difficulty fallback for models no training row names). Each seed trains
on a different random sample of at most ``irt_train.SOURCE_ROWS`` rows of each training source
(so no source drowns the others) and tunes the baseline on a different inner split; mean and
spread over seeds. Predictions are cached under .cache/routing/ (gitignored), keyed by
everything they depend on (code, options, training rows), so a re-run only recomputes what
changed.
Prints one JSON object.
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

from baseline import fit_baseline, row_text  # noqa: E402
from gearshift.catalogue import lookup  # noqa: E402
from gearshift.routing.corpus import MEASURE_ONLY, PERMISSIVE, Source, load_source  # noqa: E402
from gearshift.routing.features import Features, extract  # noqa: E402
from gearshift.routing.metrics import (  # noqa: E402
    apgr,
    cost_at_quality,
    cost_quality_curve,
    pair_curve,
)

CACHE = ROOT / ".cache" / "routing"
ANSWER_TOKENS = 300
# (weaker, stronger) per held-out source: both present on every scored row
PAIRS: dict[str, tuple[str, str]] = {
    "mmlu": ("mixtral-8x7b-instruct-v0.1", "gpt-4-1106-preview"),
    "gsm8k": ("mixtral-8x7b-instruct-v0.1", "gpt-4-1106-preview"),
    "routerarena": ("claude-3-haiku-20240307", "gemini-2.0-flash-001"),
    "mmlu_pro": ("mixtral-8x7b-instruct-v0.1", "gemini-1.5-pro-002"),
    "arena_bench": ("mixtral-8x7b-instruct-v0.1", "gpt-4-1106-preview"),
    "alpaca_eval1": ("gpt-3.5-turbo-1106", "gpt-4-1106-preview"),
    "alpaca_eval2": ("gpt-3.5-turbo-1106", "claude-2.1"),
}
MANY_MODEL = ("mmlu_pro", "arena_bench", "alpaca_eval1", "alpaca_eval2")


def catalogue_ability(model: str) -> float | None:
    entry = lookup(model)
    return entry.ability if entry is not None else None


def catalogue_price(model: str) -> tuple[float, float] | None:
    entry = lookup(model)
    return (entry.input_per_mtok, entry.output_per_mtok) if entry is not None else None


def _features_digest() -> str:
    h = hashlib.sha256()
    for name in ("features.py", "exam_features.py", "kinds.py", "data/kinds.npz"):
        h.update((ROOT / "src" / "gearshift" / "routing" / name).read_bytes())
    return h.hexdigest()[:12]


def featurised(data: Path, name: str) -> tuple[Source, list[Features], list[str]]:
    """A source, its prompts' features and final-user texts (features cached on disk)."""
    source = load_source(data, name)
    texts = [row_text(r) for r in source.rows]
    path = CACHE / f"{name}-{_features_digest()}.pkl"
    if path.is_file():
        feats: list[Features] = pickle.loads(path.read_bytes())
    else:
        feats = [extract(r.request) for r in source.rows]
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(feats))
    return source, feats, texts


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(arr.mean()), 4), "std": round(float(arr.std()), 4)}


def score_source(
    held: str, source: Source, texts: list[str], router_q: Any, base_q: Any, models: list[str]
) -> dict[str, Any]:
    """Pair APGR and many-model cost shares of router and baseline predictions (N, M)."""
    from gearshift.routing.tokens import estimate_tokens

    out: dict[str, Any] = {}
    weak, strong = PAIRS[held]
    col = {m: j for j, m in enumerate(models)}
    rows = [i for i, r in enumerate(source.rows) if weak in r.scores and strong in r.scores]
    w = np.asarray([source.rows[i].scores[weak] for i in rows])
    s = np.asarray([source.rows[i].scores[strong] for i in rows])
    for label, q in (("router", router_q), ("baseline", base_q)):
        gain = q[rows, col[strong]] - q[rows, col[weak]]
        out[f"pair_apgr_{label}"] = apgr(pair_curve(gain, w, s))
    if held not in MANY_MODEL:
        return out
    priced = [m for m in models if catalogue_price(m) is not None]
    full = [i for i, r in enumerate(source.rows) if all(m in r.scores for m in priced)]
    truth = np.asarray([[source.rows[i].scores[m] for m in priced] for i in full])
    p_tok = np.asarray([estimate_tokens(texts[i]) for i in full], dtype=np.float64)
    prices = np.asarray([catalogue_price(m) for m in priced], dtype=np.float64)
    costs = (p_tok[:, None] * prices[None, :, 0] + ANSWER_TOKENS * prices[None, :, 1]) / 1e6
    means = truth.mean(axis=0)
    best = int(means.argmax())
    best_cost = float(costs[:, best].mean())
    out["priced_models"] = priced
    out["best_single_model"] = priced[best]
    pcols = [col[m] for m in priced]
    for label, q in (("router", router_q), ("baseline", base_q)):
        _, mean_cost, mean_q = cost_quality_curve(q[np.ix_(full, pcols)], costs, truth, 101)
        for frac in (0.95, 1.0):
            c = cost_at_quality(mean_cost, mean_q, frac * float(means[best]))
            out[f"cost_share_{int(frac * 100)}_{label}"] = (
                None if c is None else round(c / best_cost, 4)
            )
    return out


def run(
    data: Path, seeds: list[int], only: list[str] | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    from gearshift.routing.irt_train import (
        IrtOptions,
        sample_rows,
        source_weights,
    )

    names = list(PERMISSIVE) + list(MEASURE_ONLY)
    loaded = {n: featurised(data, n) for n in names}
    held_out = [n for n in names if only is None or n in only]
    per_seed: dict[str, list[dict[str, Any]]] = {n: [] for n in held_out}
    options = IrtOptions(**overrides)
    for seed in seeds:
        for held in held_out:
            train_names = [n for n in PERMISSIVE if n != held]
            rng = np.random.default_rng(seed)
            feats: list[Features] = []
            texts: list[str] = []
            scores: list[dict[str, float]] = []
            srcs: list[str] = []
            for n in train_names:
                source, f, t = loaded[n]
                cats = [r.category for r in source.rows]
                keep = sample_rows(len(f), cats, int(rng.integers(1 << 30)))
                feats += [f[i] for i in keep]
                texts += [t[i] for i in keep]
                scores += [source.rows[i].scores for i in keep]
                srcs += [n] * len(keep)
            weights = source_weights(srcs)
            source, f_held, t_held = loaded[held]
            models = source.models
            started = time.time()
            router_q, unseen = router_predictions(
                feats,
                scores,
                weights,
                srcs,
                IrtOptions(**{**_opts(options), "seed": seed}),
                f_held,
                models,
            )
            t_router = time.time() - started
            held_abilities = {m: catalogue_ability(m) or 0.6 for m in models}
            started = time.time()
            base_q, alpha = baseline_predictions(
                texts, scores, weights, seed, t_held, models, held_abilities
            )
            t_base = time.time() - started
            result = score_source(held, source, t_held, router_q, base_q, models)
            result.update(
                seed=seed,
                seconds_router=round(t_router, 1),
                seconds_baseline=round(t_base, 1),
                baseline_tuning=alpha,
                unseen_models=unseen,
            )
            print(json.dumps({held: result}), file=sys.stderr, flush=True)
            per_seed[held].append(result)
    return summarise(per_seed, loaded, options)


def router_predictions(
    feats: list[Features],
    scores: list[dict[str, float]],
    weights: Any,
    sources: list[str],
    options: Any,
    held_feats: list[Features],
    models: list[str],
) -> tuple[Any, list[str]]:
    """The router's (N, M) predictions on the held-out rows (cached on disk like the baseline's)."""
    from gearshift.routing.irt_train import fit_quality_model

    h = hashlib.sha256()
    for name in ("irt.py", "irt_train.py", "encoder.py", "data/potion_base_8m.npz"):
        h.update((ROOT / "src" / "gearshift" / "routing" / name).read_bytes())
    h.update(_features_digest().encode())
    h.update(json.dumps([_opts(options), scores, weights.tolist(), sources, models]).encode())
    h.update(pickle.dumps([sorted(f.tokens) for f in feats[:50]]))
    path = CACHE / f"router-{h.hexdigest()[:16]}.pkl"
    if path.is_file():
        cached: tuple[Any, list[str]] = pickle.loads(path.read_bytes())
        return cached
    trained = sorted({m for s in scores for m in s})
    abilities = {m: a for m in trained if (a := catalogue_ability(m)) is not None}
    model = fit_quality_model(feats, scores, weights, abilities, options, sources=sources)
    abilities_held = [catalogue_ability(m) or 0.6 for m in models]
    params = np.stack([model.params(m, a)[0] for m, a in zip(models, abilities_held, strict=True)])
    q = model.qualities(model.embed_many(held_feats), params)
    rows = [model.head_row(m) for m in models]
    e = model.prompt_vectors(held_feats)
    q = model.blend(q, e, rows, abilities_held, model.shares(held_feats))
    out = (q, [m for m in models if m not in model.index])
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def baseline_predictions(
    texts: list[str],
    scores: list[dict[str, float]],
    weights: Any,
    seed: int,
    held_texts: list[str],
    models: list[str],
    abilities: dict[str, float],
) -> tuple[Any, Any]:
    """The baseline's (N, M) predictions, cached on disk by everything they depend on."""
    h = hashlib.sha256((Path(__file__).parent / "baseline.py").read_bytes())
    h.update(
        json.dumps([texts, scores, weights.tolist(), seed, held_texts, models, abilities]).encode()
    )
    path = CACHE / f"baseline-{h.hexdigest()[:16]}.pkl"
    if path.is_file():
        cached: tuple[Any, Any] = pickle.loads(path.read_bytes())
        return cached
    train_models = sorted({m for s in scores for m in s})
    col = {m: j for j, m in enumerate(train_models)}
    # the models' scores, then each row's mean score: the difficulty fallback for unseen models
    y = np.zeros((len(texts), len(train_models) + 1))
    mask = np.zeros_like(y)
    for i, s in enumerate(scores):
        for m, v in s.items():
            y[i, col[m]] = v
            mask[i, col[m]] = 1.0
        y[i, -1] = float(np.mean(list(s.values())))
        mask[i, -1] = 1.0
    base = fit_baseline(texts, y, mask, seed=seed)
    pred = base.predict(held_texts)
    mean = pred[:, -1]
    cols = [
        pred[:, col[m]]
        if m in col
        else np.clip(1.0 - (1.0 - abilities[m]) * 2.0 * (1.0 - mean), 0.0, 1.0)
        for m in models
    ]
    out = (np.stack(cols, axis=1), base.describe())
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def _opts(options: Any) -> dict[str, Any]:
    return {f: getattr(options, f) for f in options.__slots__}


def summarise(
    per_seed: dict[str, list[dict[str, Any]]], loaded: dict[str, Any], options: Any
) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for held, results in per_seed.items():
        if not results:
            continue
        source = loaded[held][0]
        row: dict[str, Any] = {
            "rows": len(source.rows),
            "trained_on": [n for n in PERMISSIVE if n != held],
            "pair": list(PAIRS[held]),
            "unseen_models": results[0]["unseen_models"],
        }
        for key in sorted(results[0]):
            if key.startswith(("pair_apgr", "cost_share")):
                vals = [r[key] for r in results]
                row[key] = None if any(v is None for v in vals) else _stats(vals)
        if "best_single_model" in results[0]:
            row["priced_models"] = results[0]["priced_models"]
            row["best_single_model"] = results[0]["best_single_model"]
        table[held] = row
    permissive = [h for h in table if h in PERMISSIVE]
    mean_router = [
        float(np.mean([per_seed[h][k]["pair_apgr_router"] for h in permissive]))
        for k in range(len(next(iter(per_seed.values()))))
    ]
    mean_base = [
        float(np.mean([per_seed[h][k]["pair_apgr_baseline"] for h in permissive]))
        for k in range(len(next(iter(per_seed.values()))))
    ]
    return {
        "protocol": "leave-one-source-out; AlpacaEval 1/2 held out only",
        "router_options": _opts(options),
        "per_source": table,
        "mean_pair_apgr_permissive": {
            "router": _stats(mean_router),
            "baseline": _stats(mean_base),
        },
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="+", help="score only these held-out sources")
    p.add_argument("--set", nargs="*", default=[], help="router option overrides, KEY=VALUE")
    args = p.parse_args()
    if not args.data.is_dir():
        print(json.dumps({"skipped": f"{args.data} not found"}))
        return 0
    started = time.time()
    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    result = run(args.data, args.seeds, args.only, overrides)
    result["seconds"] = round(time.time() - started, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
