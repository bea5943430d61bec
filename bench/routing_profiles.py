"""How well the default router predicts a model that no training row names (its *profile*).

    .venv/bin/python bench/routing_profiles.py --data ../shared/data [--seed 0]

For each model in ``HELD_OUT`` the default router's training procedure (the permissive sources,
``SOURCE_ROWS`` per source, the bundled options) runs twice: once as shipped, and once with every
score of that model removed (its rows stay, with the other models' scores). The held-out model is
then predicted from its profile (catalogue ability -> offset and loadings, ``profile_coef``) on
every row that scores it, and compared with the truth and with the model trained on its own rows:
mean absolute error of the predicted quality, and pair APGR against a partner model scored on the
same rows (the partner is trained as usual). Every prediction is the shipped one: the
item-response part blended with the encoder heads (an unseen model's head part from the mean head
and its ability). The prompts themselves were seen in training (with other models' scores): this
isolates the model side.

A third column fits the held-out model from ``--few`` (default 30) of its labelled rows, drawn at
random, with the router's representation frozen (``irt_fewshot.params_from_rows``: the profile
as prior); every figure is then computed on the *other* rows, the same rows for all three.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gearshift.routing.corpus import PERMISSIVE  # noqa: E402
from gearshift.routing.metrics import apgr, pair_curve  # noqa: E402
from routing_quality import catalogue_ability, featurised  # noqa: E402

# held-out model -> partner scored on the same rows
HELD_OUT: dict[str, str] = {
    "gpt-4-1106-preview": "mixtral-8x7b-instruct-v0.1",
    "llama-3.1-70b-instruct": "llama-3.1-8b-instruct",
    "gemini-2.0-flash-001": "claude-3-haiku-20240307",
    "gpt-3.5-turbo-1106": "mixtral-8x7b-instruct-v0.1",
}


def main() -> int:
    from gearshift.routing.irt_fewshot import params_from_rows
    from gearshift.routing.irt_train import (
        IrtOptions,
        fit_quality_model,
        sample_rows,
        source_weights,
    )

    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="+")
    p.add_argument("--few", type=int, default=30, help="labelled rows for the few-rows fit")
    args = p.parse_args()
    if not args.data.is_dir():
        print(json.dumps({"skipped": f"{args.data} not found"}))
        return 0
    started = time.time()
    feats, scores, srcs = [], [], []
    for k, name in enumerate(PERMISSIVE):
        source, f, _ = featurised(args.data, name)
        for i in sample_rows(len(f), [r.category for r in source.rows], args.seed + k):
            feats.append(f[i])
            scores.append(source.rows[i].scores)
            srcs.append(name)
    weights = source_weights(srcs)
    options = IrtOptions(seed=args.seed)

    def fit(drop: str | None) -> Any:
        rows = [{m: v for m, v in s.items() if m != drop} for s in scores]
        trained = sorted({m for s in rows for m in s})
        abilities = {m: a for m in trained if (a := catalogue_ability(m)) is not None}
        return fit_quality_model(feats, rows, weights, abilities, options, sources=srcs)

    full = fit(None)
    h_all = full.embed_many(feats)
    out: dict[str, Any] = {}
    for model, partner in HELD_OUT.items():
        if args.only and model not in args.only:
            continue
        scored = [i for i, s in enumerate(scores) if model in s and partner in s]
        pick = np.random.default_rng(args.seed).permutation(len(scored))
        few = sorted(scored[j] for j in pick[: args.few])
        rows = sorted(scored[j] for j in pick[args.few :])
        truth = np.asarray([scores[i][model] for i in rows])
        part = np.asarray([scores[i][partner] for i in rows])
        ability = catalogue_ability(model) or 0.6
        held = fit(model)
        batch = [feats[i] for i in rows]
        h = held.embed_many(batch)
        e, shares = held.prompt_vectors(batch), held.shares(batch)

        def served(
            m: Any, q: Any, heads: list[int], abilities: list[float], e: Any = e, s: Any = shares
        ) -> Any:
            """The shipped prediction: the item-response part q blended with the heads."""
            return m.blend(q, e, heads, abilities, s)

        q_profile = served(
            held, held.qualities(h, held.params_for_ability(ability)[None]), [-1], [ability]
        )[:, 0]
        fitted = params_from_rows(
            held, [feats[i] for i in few], [scores[i][model] for i in few], ability
        )
        # the few rows fit the item-response part; served, the head part still comes from ability
        q_few = served(held, held.qualities(h, fitted[None]), [-1], [ability])[:, 0]
        q_partner = served(
            held,
            held.qualities(h, held.params(partner, 0.6)[0][None]),
            [held.head_row(partner)],
            [0.6],
        )[:, 0]
        q_trained = served(
            full,
            full.qualities(
                h_all[rows],
                np.stack([full.params(model, ability)[0], full.params(partner, 0.6)[0]]),
            ),
            [full.head_row(model), full.head_row(partner)],
            [ability, 0.6],
        )
        weak_first = part.mean() <= truth.mean()
        w, s = (part, truth) if weak_first else (truth, part)

        def pair(
            gain_model: Any, gain_partner: Any, w: Any = w, s: Any = s, up: bool = weak_first
        ) -> float:
            gain = gain_model - gain_partner if up else gain_partner - gain_model
            return round(apgr(pair_curve(gain, w, s)), 4)

        out[model] = {
            "partner": partner,
            "rows": len(rows),
            "few_rows": len(few),
            "ability_from_catalogue": ability,
            "mean_truth": round(float(truth.mean()), 4),
            "mean_profile_prediction": round(float(q_profile.mean()), 4),
            "mae_profile": round(float(np.abs(q_profile - truth).mean()), 4),
            "mean_few_rows_prediction": round(float(q_few.mean()), 4),
            "mae_few_rows": round(float(np.abs(q_few - truth).mean()), 4),
            "mae_trained": round(float(np.abs(q_trained[:, 0] - truth).mean()), 4),
            "pair_apgr_profile": pair(q_profile, q_partner),
            "pair_apgr_few_rows": pair(q_few, q_partner),
            "pair_apgr_trained": pair(q_trained[:, 0], q_trained[:, 1]),
        }
        print(json.dumps({model: out[model]}), file=sys.stderr, flush=True)
    print(
        json.dumps({"held_out_models": out, "seconds": round(time.time() - started, 1)}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
