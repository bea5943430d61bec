"""``gearshift train`` over many models: per-model quality, missing models, null costs, CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gearshift.cli.main import main
from gearshift.routing.features import extract
from gearshift.routing.formats import row_to_request
from gearshift.routing.metrics import route_by_tolerance
from gearshift.routing.predictors import TrainedPredictor, load_predictor
from gearshift.routing.row_costs import list_price
from gearshift.routing.scoring import profiles_for_names

CHEAP, MID, STRONG = "gpt-4o-mini", "claude-3-5-haiku", "gpt-4o"
MODELS = [CHEAP, MID, STRONG]

_CODE = [
    "Write a {lang} function that {task} and add unit tests for the edge cases.",
    "Fix the bug in this {lang} code: def {name}(xs): return sorted(xs)[{n}] and explain it.",
    "Implement a {lang} class for a {thing} with thread-safe methods and a benchmark.",
]
_CHAT = [
    "What is the capital of {place}?",
    "Say hello to {name} in a friendly way.",
    "Translate 'good morning' into {place_lang}.",
]
_WRITING = [
    "Write a short poem about {place} in autumn.",
    "Draft a polite email to {name} declining a meeting on {day}.",
    "Give me three titles for a blog post about {thing}s.",
]
_FILL = {
    "lang": ["Python", "Rust", "Go", "C++", "Java"],
    "task": ["merges two sorted lists", "parses a CSV header", "deduplicates a stream"],
    "name": ["Ana", "Bo", "Chen", "Dara", "Eli"],
    "n": ["0", "1", "-1", "2"],
    "thing": ["queue", "cache", "rate limiter", "trie"],
    "place": ["Paris", "Lima", "Oslo", "Cairo", "Hanoi"],
    "place_lang": ["French", "Spanish", "German", "Japanese"],
    "day": ["Monday", "Friday", "Sunday"],
}


def _prompt(rng: random.Random, templates: list[str]) -> str:
    return rng.choice(templates).format(**{k: rng.choice(v) for k, v in _FILL.items()})


def many_model_rows(n: int = 180, seed: int = 0) -> list[dict[str, Any]]:
    """The cheap model is bad at code only; the mid model is missing from a third of the rows;
    costs are null (priced from the catalogue)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kind = ("code", "chat", "writing")[i % 3]
        prompt = _prompt(rng, {"code": _CODE, "chat": _CHAT, "writing": _WRITING}[kind])
        good = {CHEAP: 0.1 if kind == "code" else 0.95, MID: 0.8, STRONG: 0.97}
        scores: dict[str, float | None] = {m: float(rng.random() < p) for m, p in good.items()}
        if i % 3 == 1 and rng.random() < 0.9:
            scores[MID] = None  # that model never answered this prompt
        rows.append(
            {
                "id": f"r{i}",
                "messages": [{"role": "user", "content": prompt}],
                "scores": scores,
                "costs": dict.fromkeys(MODELS),
                "category": kind,
            }
        )
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def many_model_router(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("many")
    data = _write(base / "train.jsonl", many_model_rows())
    out = base / "router"
    assert main(["train", "--data", str(data), "--out", str(out), "--folds", "3", "--quiet"]) == 0
    return out


def _routed(router: Path, prompts: list[str], tolerance: float = 0.1) -> list[str]:
    predictor = load_predictor(str(router))
    assert isinstance(predictor, TrainedPredictor)
    feats = [extract(row_to_request({"prompt": p})) for p in prompts]
    _, quality = predictor.predict_many(feats, profiles_for_names(MODELS))
    costs = np.asarray([[sum(list_price(m)[:2]) for m in MODELS]] * len(prompts))  # type: ignore[index]
    return [MODELS[j] for j in route_by_tolerance(quality, costs, tolerance)]


def test_cheap_model_bad_at_one_kind_loses_only_that_kind(many_model_router: Path) -> None:
    rng = random.Random(99)  # prompts the router never saw
    code = [_prompt(rng, _CODE) for _ in range(12)]
    other = [_prompt(rng, _CHAT) for _ in range(6)] + [_prompt(rng, _WRITING) for _ in range(6)]
    assert all(m != CHEAP for m in _routed(many_model_router, code))
    assert all(m == CHEAP for m in _routed(many_model_router, other))


def test_report_prices_null_costs_and_counts_missing_models(many_model_router: Path) -> None:
    report = json.loads((many_model_router / "report.json").read_text())
    assert report["models"] == MODELS
    assert report["price_sources"] == dict.fromkeys(MODELS, "catalogue")
    assert report["weak"] == CHEAP and report["strong"] == STRONG
    per_model = report["cross_validation"]["per_model"]
    assert per_model[CHEAP]["rows"] == 180
    assert per_model[MID]["rows"] < 180  # missing rows are not trained or scored as zeros
    assert report["cross_validation"]["pair"]["apgr"] > 0.6
    assert report["cross_validation"]["n_models"]["cost_share_at_95"] is not None


def test_convert_train_eval_round_trip(
    tmp_path: Path, many_model_router: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _write(tmp_path / "raw.jsonl", many_model_rows(n=90, seed=5))
    converted = tmp_path / "converted.jsonl"
    assert main(["convert", str(raw), "--out", str(converted)]) == 0
    rows = [json.loads(line) for line in converted.read_text().splitlines()]
    assert len(rows) == 90 and rows[0]["category"] == "code"
    assert all(None not in r["scores"].values() and r["costs"] == {} for r in rows)
    capsys.readouterr()
    assert (
        main(["eval", "--data", str(converted), "--router", str(many_model_router), "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    # rows missing the mid model are left out of the all-models comparison
    assert report["rows"] == sum(MID in r["scores"] for r in rows)
    assert report["price_sources"] == dict.fromkeys(MODELS, "catalogue")
    assert report["pair"]["weak"] == CHEAP and report["pair"]["apgr"] > 0.6
    n = report["n_models"]
    assert n["best_single_model"] == STRONG
    # sending code to a stronger model and the rest to the cheap one gets 95% of the best
    # model's quality at well under its cost
    assert n["cost_share_at_95"] is not None and n["cost_share_at_95"] < 0.6
    assert main(["eval", "--data", str(converted), "--router", str(many_model_router)]) == 0
    text = capsys.readouterr().out
    assert "reaches 95% of its quality at" in text and "reaches 100%" in text


def test_configured_predictor_routes_by_kind(many_model_router: Path, make_router: Any) -> None:
    models = [{"name": m} for m in MODELS]
    router = make_router(models, predictor=str(many_model_router), quality_tolerance=0.1)
    code = router.decide(
        row_to_request({"prompt": "Write a Go function that parses a CSV header."})
    )
    chat = router.decide(row_to_request({"prompt": "What is the capital of Oslo?"}))
    assert code.chosen != CHEAP
    assert chat.chosen == CHEAP


def test_train_rejects_unpriceable_models_without_costs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = many_model_rows(n=30)
    for r in rows:
        r["scores"]["my-own-model"] = r["scores"].pop(MID)
        r["costs"] = {}
    data = _write(tmp_path / "d.jsonl", rows)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--quiet"]) == 1
    assert "my-own-model" in capsys.readouterr().err


def test_saved_router_scores_the_same_one_by_one_and_in_batches(many_model_router: Path) -> None:
    predictor = load_predictor(str(many_model_router))
    assert isinstance(predictor, TrainedPredictor)
    model = predictor.model
    assert len(model.token_idf) == len(model.vocab)  # tf-idf rows, normalised at serving
    rng = random.Random(7)
    prompts = [_prompt(rng, t) for t in (_CODE, _CHAT, _WRITING) for _ in range(4)]
    prompts.append("zzz qqq")  # no known gram: scored from the biases alone
    feats = [extract(row_to_request({"prompt": p})) for p in prompts]
    batch = model.predict_many(feats)
    single = np.asarray([model.predict(f) for f in feats])
    np.testing.assert_allclose(batch, single, rtol=1e-9, atol=1e-12)
    assert np.all((batch > 0) & (batch < 1))
