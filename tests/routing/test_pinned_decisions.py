"""The default router decides exactly as it did before the serving-speed work.

``data/pinned_decisions.json`` was first computed by ``pinned_cases.py`` with the code before the
speed-ups of features, kinds and the IRT predictor (see that module), which then matched it; it is
pinned again whenever the bundled models are rebuilt (with the serving code unchanged). The text
features must match bit for bit; the models' outputs (kind probabilities, qualities, difficulty)
to 1e-12, which allows a different order of floating-point additions and nothing else; every
decision as served (chosen, ranked, rounded predictions, difficulty, kind, costs, reason) exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from tests.routing.pinned_cases import cases, model_digests, observe, pinned_router

PINNED = json.loads((Path(__file__).parent / "data" / "pinned_decisions.json").read_text())
FLOAT_KEYS = ("kind_probs", "difficulty_raw", "qualities_raw")
FEATURE_KEYS = ("dense", "tokens")


@pytest.fixture(scope="module")
def observed() -> dict[str, dict[str, Any]]:
    router = pinned_router()
    router.sticky = False  # as when pinned: each case on its own
    return {cid: observe(router, req) for cid, req in cases()}


def test_the_same_cases_are_built(observed: dict[str, dict[str, Any]]) -> None:
    assert list(observed) == list(PINNED["cases"])


def test_text_features_are_unchanged_bit_for_bit(observed: dict[str, dict[str, Any]]) -> None:
    changed = [
        (cid, key)
        for cid, got in observed.items()
        for key in FEATURE_KEYS
        if got[key] != PINNED["cases"][cid][key]
    ]
    assert changed == []


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def test_decisions_are_unchanged(observed: dict[str, dict[str, Any]]) -> None:
    # A rebuilt model must be re-pinned in the same commit (a skip here would let every later
    # serving change go unchecked until someone noticed).
    assert model_digests() == PINNED["models"], (
        "the bundled router or kind model was rebuilt since the decisions were pinned; "
        "pin them again: python -m tests.routing.pinned_cases > "
        "tests/routing/data/pinned_decisions.json"
    )
    numbers = []
    decisions = []
    for cid, got in observed.items():
        want = PINNED["cases"][cid]
        numbers += [(cid, k) for k in FLOAT_KEYS if not _close(got[k], want[k])]
        rest = {k: v for k, v in got.items() if k not in FLOAT_KEYS + FEATURE_KEYS}
        expected = {k: v for k, v in want.items() if k not in FLOAT_KEYS + FEATURE_KEYS}
        if rest != expected:
            decisions.append(cid)
    assert numbers == []
    assert decisions == []
