"""``gearshift audit LOG --verify N --config FILE``: replay moved prompts on the logged and the
routed model, judge both, and report measured quality retained beside the predicted one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.fakes.learning_world import LearningWorld, true_quality, world_config

from gearshift.cli.main import main

from .conftest import ENGLISH, GERMAN


def _log(path: Path, prompts: list[str]) -> None:
    with path.open("w") as f:
        for i, prompt in enumerate(prompts):
            line = {
                "id": f"r{i}",
                "request": {"model": "strong", "messages": [{"role": "user", "content": prompt}]},
                "response": {"usage": {"prompt_tokens": 20, "completion_tokens": 12}},
            }
            f.write(json.dumps(line) + "\n")


def _config(tmp_path: Path, world: LearningWorld) -> str:
    path = tmp_path / "gearshift.yaml"
    path.write_text(yaml.safe_dump(world_config(world.base_url, f"sqlite:///{tmp_path}/l.db")))
    return str(path)


def test_verify_measures_quality_on_real_calls(
    world: LearningWorld, tmp_path: Path, capsys: Any
) -> None:
    prompts = ENGLISH + GERMAN
    log = tmp_path / "log.jsonl"
    _log(log, prompts)
    config = _config(tmp_path, world)
    code = main(["audit", str(log), "--config", config, "--verify", "100", "--format", "json"])
    out = capsys.readouterr()
    assert code == 0
    # The worst-case cost is announced before any call is made.
    assert "at most $" in out.err
    report = json.loads(out.out)
    v = report["verification"]
    moved = v["moved_in_log"]
    assert moved == len(prompts) and v["prompts"] == v["graded"] == len(prompts)
    # Every prompt moved from strong to light: the judge's grades give the measured figures.
    logged = sum(true_quality("strong", p) for p in prompts) / len(prompts)
    routed = sum(true_quality("light", p) for p in prompts) / len(prompts)
    assert v["measured_quality_logged"] == pytest.approx(logged, abs=1e-4)
    assert v["measured_quality_routed"] == pytest.approx(routed, abs=1e-4)
    assert v["measured_retained_on_moved_pct"] == pytest.approx(100 * routed / logged, abs=0.1)
    assert 0 < v["cost_usd"] <= v["worst_case_cost_usd"]
    assert world.calls["judge-1"] == 2 * len(prompts)
    assert world.calls["light-1"] == world.calls["strong-1"] == len(prompts)


def test_verify_samples_n_and_shows_beside_the_prediction(
    world: LearningWorld, tmp_path: Path, capsys: Any
) -> None:
    log = tmp_path / "log.jsonl"
    _log(log, ENGLISH * 3)
    config = _config(tmp_path, world)
    assert main(["audit", str(log), "--config", config, "--verify", "5"]) == 0
    text = capsys.readouterr().out
    assert "predicted quality retained" in text
    assert "measured quality retained (5 judged" in text
    assert world.calls["judge-1"] == 10


def test_verify_needs_the_logged_model_configured(
    world: LearningWorld, tmp_path: Path, capsys: Any
) -> None:
    log = tmp_path / "log.jsonl"
    _log(log, ENGLISH)
    data = world_config(world.base_url, f"sqlite:///{tmp_path}/l.db")
    data["models"].append({**data["models"][1], "name": "other"})
    text = log.read_text().replace('"model": "strong"', '"model": "gpt-4o"')
    log.write_text(text)
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["audit", str(log), "--config", str(path), "--verify", "3"]) == 1
    assert "not a model in --config" in capsys.readouterr().err
    assert world.calls["judge-1"] == 0


def _audit_cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gearshift", "audit", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_note_on_quality_says_what_was_measured(world: LearningWorld, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    _log(log, ENGLISH[:3])
    config = _config(tmp_path, world)
    predicted_only = "Quality figures are the router's predictions, not measured answers."

    plain = _audit_cli(str(log), "--config", config, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert predicted_only in " ".join(plain.stdout.split())

    verified = _audit_cli(str(log), "--config", config, "--verify", "3", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    text = " ".join(verified.stdout.split())  # rich may wrap the note
    assert "measured quality retained (3 judged" in text
    assert predicted_only not in text
    assert "3 moved prompt(s) replayed on both models and graded by judge" in text

    as_json = _audit_cli(
        str(log), "--config", config, "--verify", "3", "--format", "json", cwd=tmp_path
    )
    report = json.loads(as_json.stdout)
    notes = " ".join(report["assumptions"])
    assert predicted_only not in notes and "graded by judge" in notes
    retained = report["verification"]["measured_retained_pct"]
    assert f"{retained:.1f}% of quality retained" in notes
