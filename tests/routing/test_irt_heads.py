"""The default router's encoder heads: trained, blended, saved and served consistently."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gearshift.errors import ConfigError
from gearshift.routing import prompt_request
from gearshift.routing.features import Features, extract
from gearshift.routing.irt import UNSEEN_SPREAD, QualityModel
from gearshift.routing.irt_predictor import REFERENCE_ABILITY, IrtPredictor
from gearshift.routing.irt_train import IrtOptions, fit_quality_model, source_weights
from gearshift.routing.scoring import profiles_for_names

CODE = [
    "Write a C function that reverses a linked list in place",
    "Fix the segmentation fault in this C program that frees a pointer twice",
    "Implement a thread-safe queue in C++ with a mutex and condition variable",
    "Why does my Rust borrow checker reject this mutable reference?",
]
CHAT = [
    "Hi there, how is your day going?",
    "Thanks a lot, that was really helpful!",
    "Good morning! What a lovely sunny day",
    "Hello, nice to meet you",
]


def _rows() -> tuple[list[Features], list[dict[str, float]]]:
    feats: list[Features] = []
    scores: list[dict[str, float]] = []
    for i in range(30):
        for prompt in CODE:
            feats.append(extract(prompt_request(f"{prompt} (case {i})")))
            scores.append({"small": float(i % 5 == 0), "large": 1.0})
        for prompt in CHAT:
            feats.append(extract(prompt_request(f"{prompt} #{i}")))
            scores.append({"small": 1.0, "large": 1.0})
    return feats, scores


@pytest.fixture(scope="module")
def model() -> QualityModel:
    feats, scores = _rows()
    weights = source_weights(["crafted"] * len(feats))
    options = IrtOptions(min_df=1, iterations=60)
    return fit_quality_model(feats, scores, weights, {"small": 0.5, "large": 0.9}, options)


def test_heads_learn_what_each_model_fails(model: QualityModel) -> None:
    assert model.has_heads and model.head_share == 0.5
    assert model.head_weights.shape == (3, 256)  # large, small, then the mean head
    e = model.prompt_vectors(
        [extract(prompt_request(p)) for p in ("Write a C++ lock-free stack", "Hello, how are you?")]
    )
    heads = model.head_qualities(e, [model.head_row("small"), model.head_row("large")], [0.5, 0.9])
    assert heads[0, 0] < heads[1, 0] - 0.3  # small fails the code prompt, not the greeting
    assert heads[0, 1] > 0.8 and heads[1, 1] > 0.8


def test_unseen_models_come_from_the_mean_head(model: QualityModel) -> None:
    e = model.prompt_vectors([extract(prompt_request("Write a C function to sort an array"))])
    raw = np.clip(e @ model.head_weights.T + model.head_bias, 0.0, 1.0)[0]
    q = model.head_qualities(e, [-1, -1], [0.9, 0.3])[0]
    assert q[0] == pytest.approx(max(0.0, 1.0 - UNSEEN_SPREAD * 0.1 * (1.0 - raw[-1])))
    assert q[1] == pytest.approx(max(0.0, 1.0 - UNSEEN_SPREAD * 0.7 * (1.0 - raw[-1])))
    assert q[0] > q[1]


def test_blend_is_the_share_weighted_mean(model: QualityModel) -> None:
    feats = [extract(prompt_request(p)) for p in CODE + CHAT]
    params = np.stack([model.params("small", 0.5)[0], model.params("other", 0.7)[0]])
    q_irt = model.qualities(model.embed_many(feats), params)
    e = model.prompt_vectors(feats)
    rows = [model.head_row("small"), -1]
    shares = model.shares(feats)
    assert np.allclose(shares, [0.5 * min(1.0, len(f.words) / 4) for f in feats])
    blended = model.blend(q_irt, e, rows, [0.5, 0.7], shares)
    heads = model.head_qualities(e, rows, [0.5, 0.7])
    assert np.allclose(blended, (1 - shares[:, None]) * q_irt + shares[:, None] * heads)


def test_short_prompts_lean_on_the_item_response_model(model: QualityModel) -> None:
    """One or two words embed unlike the tens-of-words prompts the heads were fitted on."""
    assert model.head_full_words == 4
    assert model.share_for(1) == pytest.approx(0.5 / 4)
    assert model.share_for(2) == pytest.approx(0.25)
    assert model.share_for(4) == model.share_for(400) == 0.5
    hi = extract(prompt_request("hi"))
    assert hi.words == ["hi"] and model.shares([hi])[0] == pytest.approx(0.5 / 4)


def test_one_prompt_and_a_batch_agree_and_so_does_difficulty(model: QualityModel) -> None:
    predictor = IrtPredictor(model)
    profiles = profiles_for_names(["small", "large", "claude-3-5-haiku-20241022"])
    feats = [extract(prompt_request(p)) for p in (*CODE, *CHAT, "Translate 'bonjour' to English")]
    d_many, q_many = predictor.predict_many(feats, profiles)
    for i, f in enumerate(feats):
        d, q = predictor.predict(f, profiles)
        assert q == pytest.approx(q_many[i].tolist(), abs=1e-9)
        assert d == pytest.approx(d_many[i], abs=1e-9)
        assert predictor.difficulty(f) == pytest.approx(d, abs=1e-9)
    # the reference model (unseen, REFERENCE_ABILITY) is blended with the mean head too
    assert model.head_row("no-such-model") == -1 and 0.0 < REFERENCE_ABILITY < 1.0


def test_heads_survive_save_and_load(model: QualityModel, tmp_path: Path) -> None:
    path = tmp_path / "router.npz"
    model.save(path)
    loaded = QualityModel.load(path)
    assert loaded.head_share == model.head_share
    assert loaded.head_full_words == model.head_full_words
    assert np.array_equal(loaded.head_weights, model.head_weights)
    profiles = profiles_for_names(["small", "large"])
    f = extract(prompt_request(CODE[0]))
    assert IrtPredictor(loaded).predict(f, profiles) == IrtPredictor(model).predict(f, profiles)


def test_a_model_without_heads_is_the_item_response_model(tmp_path: Path) -> None:
    feats, scores = _rows()
    options = IrtOptions(min_df=1, iterations=30, head_share=0.0)
    bare = fit_quality_model(feats, scores, source_weights(["c"] * len(feats)), {}, options)
    assert not bare.has_heads
    bare.save(tmp_path / "bare.npz")
    with np.load(tmp_path / "bare.npz") as data:
        assert "head_weights" not in data.files
    loaded = QualityModel.load(tmp_path / "bare.npz")
    h = loaded.embed_many(feats[:3])
    q = loaded.qualities(h, loaded.params("small", 0.5)[0][None])
    assert np.array_equal(loaded.blend(q, np.zeros((3, 256)), [0], [0.5], np.full(3, 0.5)), q)
    assert not loaded.shares(feats[:3]).any()


def test_inconsistent_heads_are_refused(model: QualityModel, tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    broken = replace(model, head_weights=model.head_weights[:1], head_bias=model.head_bias[:1])
    broken.save(path)
    with pytest.raises(ConfigError, match="inconsistent"):
        QualityModel.load(path)
