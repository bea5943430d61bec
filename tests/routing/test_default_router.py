"""The bundled default router: loads fast without ML frameworks, and its provenance is recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gearshift.routing import default_predictor
from gearshift.routing.convert import convert_path
from gearshift.routing.predictors import DEFAULT_MODEL_FILE

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
BUNDLED = Path(__file__).resolve().parents[2] / "src" / "gearshift" / "routing" / "data"


def test_bundled_model_and_provenance() -> None:
    predictor = default_predictor()
    assert predictor.description == "default"  # not the heuristic fallback
    meta = predictor.model.meta  # type: ignore[union-attr]
    assert meta["format"] == "irt-1"
    sources = {s["source"]: s for s in meta["sources"]}
    # permissive sources only: never AlpacaEval (CC BY-NC), MT-Bench, RouterBench, Chatbot Arena
    assert set(sources) == {"mmlu", "gsm8k", "routerarena", "mmlu_pro", "arena_bench"}
    assert all("Apache-2.0" in s["licence"] for s in sources.values())
    assert sources["gsm8k"]["rows_trained"] == 1319
    assert sources["arena_bench"]["rows_trained"] == 299
    assert meta["rows"] == sum(s["rows_trained"] for s in sources.values())
    # one name per model across sources (RouteLLM's "mistralai/Mixtral-..." is MMLU-Pro's Mixtral)
    assert "mixtral-8x7b-instruct-v0.1" in predictor.model.models  # type: ignore[union-attr]
    assert not any("/" in m for m in predictor.model.models)  # type: ignore[union-attr]
    summary = json.loads((BUNDLED / DEFAULT_MODEL_FILE.replace(".npz", ".json")).read_text())
    assert summary["data_sha256"] == meta["data_sha256"]
    assert summary["sources"] == meta["sources"]
    assert (BUNDLED / DEFAULT_MODEL_FILE).stat().st_size <= 20_000_000
    # the kind probabilities are inputs: the bundled router was built with the bundled kind model
    from gearshift.routing.build_default import kinds_digest

    assert meta["kinds_sha256"] == kinds_digest(), "kinds.npz changed: run 'make router'"


def test_import_loads_no_ml_framework() -> None:
    code = (
        "import sys, gearshift.routing as r; r.default_predictor(); "
        "print(','.join(m for m in ('sklearn', 'scipy', 'torch', 'matplotlib', 'pydantic') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not present")
def test_convert_shared_data_counts() -> None:
    rows = list(convert_path(DATA))
    by_source: dict[str, int] = {}
    for r in rows:
        src = r["id"].split("/")[0]
        by_source[src] = by_source.get(src, 0) + 1
    assert by_source == {"mmlu": 14042, "gsm8k": 1319, "routerarena": 809}
    assert all(len(r["scores"]) == 2 and len(r["costs"]) == 2 for r in rows)
    categories = {r["category"] for r in rows}
    assert len([c for c in categories if c.startswith("mmlu/")]) == 57
    assert "gsm8k" in categories and "routerarena/WMT19-zh-en" in categories


def test_build_default_on_crafted_data(tmp_path: Path) -> None:
    """The `make router` procedure end to end on a small crafted set (no shared data needed)."""
    from gearshift.routing.build_default import build
    from gearshift.routing.irt_predictor import IrtPredictor
    from gearshift.routing.predictors import load_predictor
    from gearshift.routing.scoring import profiles_for_names

    rows = []
    for i in range(120):
        hard = i % 3 == 0
        prompt = (
            f"Prove step by step that the sum of the first {i} odd numbers is a square, then derive"
            " the general formula and justify each step."
            if hard
            else f"Say hello to guest number {i}."
        )
        rows.append(
            {
                "id": f"crafted/{i}",
                "messages": [{"role": "user", "content": prompt}],
                "scores": {"weak": 0.0 if hard else 1.0, "strong": 1.0},
            }
        )
    data = tmp_path / "crafted.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "router"
    summary = build([data], out, log=lambda _m: None)
    assert summary["models"] == ["strong", "weak"]
    assert summary["sources"][0]["rows_trained"] == 120
    predictor = load_predictor(str(out / DEFAULT_MODEL_FILE))
    assert isinstance(predictor, IrtPredictor)
    from gearshift.routing import prompt_request
    from gearshift.routing.features import extract

    profiles = profiles_for_names(["weak", "strong"])
    hard_d, hard_q = predictor.predict(
        extract(prompt_request(rows[0]["messages"][0]["content"])), profiles
    )
    easy_d, easy_q = predictor.predict(
        extract(prompt_request("Say hello to guest number 7.")), profiles
    )
    assert hard_d > easy_d
    assert predictor.quality_sources(profiles) == {
        "weak": "trained (weak)",
        "strong": "trained (strong)",
    }
    # the weak model's learnt quality falls on the hard prompt; the strong one's does not
    assert hard_q[0] < 0.5 < easy_q[0]
    assert hard_q[1] > 0.8


def test_build_is_byte_reproducible_across_hash_seeds(tmp_path: Path) -> None:
    """`make router` twice gives the same file: no set-order or tie-order leaks into the model."""
    rows = [
        {
            "id": f"crafted/{i}",
            "category": ("algebra", "greetings", "law")[i % 3],
            "messages": [
                {
                    "role": "user",
                    "content": f"case {i}: " + ("solve x", "say hi", "the tort")[i % 3],
                }
            ],
            "scores": {"weak": float(i % 4 == 0), "strong": float(i % 5 != 0)},
        }
        for i in range(90)
    ]
    data = tmp_path / "crafted.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    built = []
    for seed in ("1", "2"):
        out = tmp_path / f"router-{seed}"
        cmd = [sys.executable, "-m", "gearshift.routing.build_default", "--data", str(data)]
        subprocess.run(
            [*cmd, "--out", str(out)],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        built.append((out / DEFAULT_MODEL_FILE).read_bytes())
    assert built[0] == built[1]


def test_model_trained_with_other_features_is_refused(tmp_path: Path) -> None:
    import numpy as np

    from gearshift.errors import ConfigError
    from gearshift.routing.features import DENSE_NAMES
    from gearshift.routing.textmodel import TextModel

    d = len(DENSE_NAMES)
    model = TextModel(
        heads=["a", "b"],
        vocab={"hello": 0},
        token_weights=np.zeros((1, 2)),
        dense_mean=np.zeros(d),
        dense_scale=np.ones(d),
        dense_weights=np.zeros((d, 2)),
        bias=np.zeros(2),
    )
    path = tmp_path / "router.npz"
    model.save(path)
    assert TextModel.load(path).heads == ["a", "b"]
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    meta = json.loads(str(arrays["meta"]))
    meta["dense_names"] = meta["dense_names"][:-1]  # a file from a release with one feature less
    arrays["meta"] = np.asarray(json.dumps(meta))
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    with pytest.raises(ConfigError, match="trained with other features; retrain it"):
        TextModel.load(path)
