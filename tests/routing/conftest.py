"""Shared helpers for routing tests: small settings with known prices and abilities."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gearshift.config import Settings, parse_settings
from gearshift.routing import build_router
from gearshift.routing.decision import RouterEngine


def make_settings(models: list[dict[str, Any]], router: dict[str, Any]) -> Settings:
    return parse_settings({"models": models, "routers": [router]})


RouterFactory = Callable[..., RouterEngine]


@pytest.fixture
def make_router() -> RouterFactory:
    """``make_router(models, **router_keys)``: build the 'auto' router over ``models``."""

    def factory(cands: list[dict[str, Any]], **router: Any) -> RouterEngine:
        spec: dict[str, Any] = {"name": "auto", "models": [m["name"] for m in cands]}
        spec.update(router)
        settings = make_settings(cands, spec)
        cfg = settings.router("auto")
        assert cfg is not None
        return build_router(settings, cfg)

    return factory


@pytest.fixture
def three_models() -> list[dict[str, Any]]:
    # abilities are given, so predictions depend only on the prompt's difficulty
    return [
        {"name": "small", "ability": 0.5, "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.4}},
        {"name": "medium", "ability": 0.7, "price": {"input_per_mtok": 1, "output_per_mtok": 4}},
        {"name": "large", "ability": 0.9, "price": {"input_per_mtok": 10, "output_per_mtok": 40}},
    ]


# ---- a crafted labelled set: hard (multi-step maths, proofs) vs easy (greetings, lookups) ------

_EASY = [
    "Hi! How are you today?",
    "What is the capital of {place}?",
    "Translate 'good morning' into {lang}.",
    "Say hello to {name}.",
    "What colour is the sky on a clear day in {place}?",
]
_HARD = [
    "A train leaves {place} at {a} km/h and another leaves {lang} at {b} km/h, {c} km apart. "
    "After how many minutes do they meet, and how far has each travelled? Show every step.",
    "Prove by induction that the sum of the first {a} odd numbers equals {a} squared, then "
    "generalise the argument and derive a closed form for the sum of the first n cubes.",
    "Write a Python function that parses {name}'s log format, handles {a} edge cases, and "
    "explain the time complexity of your solution step by step.",
    "Compute the probability that {a} dice sum to exactly {b}, justify each step of the "
    "derivation, and compare it with the normal approximation.",
]
_PLACES = ["Paris", "Lima", "Oslo", "Cairo", "Hanoi", "Quito"]
_LANGS = ["French", "Spanish", "German", "Japanese", "Swahili"]
_NAMES = ["Ana", "Bo", "Chen", "Dara", "Eli"]


def labelled_rows(n: int = 240, seed: int = 0) -> list[dict[str, Any]]:
    """Rows of the DESIGN.md format over models small/medium/large with known costs."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        hard = i % 2 == 1
        template = rng.choice(_HARD if hard else _EASY)
        prompt = template.format(
            place=rng.choice(_PLACES),
            lang=rng.choice(_LANGS),
            name=rng.choice(_NAMES),
            a=rng.randint(2, 90),
            b=rng.randint(2, 90),
            c=rng.randint(100, 900),
        )
        noise = rng.random()
        if hard:
            scores = {"small": float(noise < 0.1), "medium": float(noise < 0.5), "large": 1.0}
        else:
            scores = {"small": float(noise < 0.95), "medium": 1.0, "large": float(noise < 0.97)}
        rows.append(
            {
                "id": f"q{i}",
                "messages": [{"role": "user", "content": prompt}],
                "scores": scores,
                "costs": {"small": 0.0001, "medium": 0.001, "large": 0.01},
            }
        )
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def labelled_file(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "labelled.jsonl", labelled_rows())


@pytest.fixture
def held_out_file(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "held_out.jsonl", labelled_rows(n=200, seed=1))


@pytest.fixture(scope="session")
def trained_router(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A router trained once per session by the real ``gearshift train`` command."""
    from gearshift.cli.main import main

    base = tmp_path_factory.mktemp("trained")
    data = write_rows(base / "train.jsonl", labelled_rows())
    out = base / "router"
    assert main(["train", "--data", str(data), "--out", str(out), "--quiet"]) == 0
    return out
