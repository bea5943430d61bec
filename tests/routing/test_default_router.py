"""The bundled default router: loads fast without ML frameworks, and its provenance is recorded."""

from __future__ import annotations

import json
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
    meta = predictor.model.meta
    assert meta["kind"] == "difficulty"
    assert set(meta["cv"]) == {"mmlu", "gsm8k", "routerarena"}
    summary = json.loads((BUNDLED / DEFAULT_MODEL_FILE.replace(".npz", ".json")).read_text())
    assert summary["data_sha256"] == meta["data_sha256"]
    assert summary["rows"] == 16170


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
