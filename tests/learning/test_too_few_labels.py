"""The learning commands as cron runs them (``python -m gearshift`` subprocesses) before there is
enough to learn from: no labels at all, only fresh ones (every run in the first week), or too few
per model. Each says so in one line, without a traceback; ``learn`` and ``train --from-ledger``
exit 0 (nothing to do yet is not a failure), ``eval --candidate`` exits 1 (it has no answer)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from tests.fakes.learning_world import LearningWorld, world_config

from .conftest import ENGLISH, GERMAN, Gw, store_for


def _gearshift(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gearshift", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _config(tmp_path: Path, world: LearningWorld, url: str) -> str:
    path = tmp_path / "gs.yaml"
    path.write_text(yaml.safe_dump(world_config(world.base_url, url)))
    return str(path)


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def _learn_and_train(config: str, tmp_path: Path) -> tuple[dict[str, object], str, str]:
    learn = _gearshift("learn", "--config", config, cwd=tmp_path)
    assert learn.returncode == 0, learn.stderr
    [result] = json.loads(learn.stdout)
    out = tmp_path / "cand"
    train = _gearshift(
        "train", "--from-ledger", "--config", config, "--out", str(out), cwd=tmp_path
    )
    assert train.returncode == 0, train.stderr
    assert not (out / "candidate.json").exists()
    assert json.loads(train.stdout)["trained"] is False
    return result, _one_line(learn.stderr), _one_line(train.stderr)


def test_fresh_labels_only_say_when_there_will_be_some(
    start: Callable[..., Gw], world: LearningWorld, ledger_url: str, tmp_path: Path
) -> None:
    gw = start()
    for prompt in ENGLISH + GERMAN:
        gw.ask(prompt)
    gw.drain()
    config = _config(tmp_path, world, ledger_url)

    result, learn_line, train_line = _learn_and_train(config, tmp_path)
    assert result["promoted"] is False and result["wins"] is False
    assert result["train_labels"] == 0 and result["heldout_labels"] == 12
    assert "no labels older than 7 days yet" in str(result["reason"])
    for line in (learn_line, train_line):
        assert "no labels older than 7 days yet" in line and "12 newer" in line, line

    # the evaluation side: no candidate to read is one line too
    evaluate = _gearshift(
        "eval", "--candidate", str(tmp_path / "cand"), "--config", config, cwd=tmp_path
    )
    assert evaluate.returncode == 1
    assert "cannot read candidate" in _one_line(evaluate.stderr)


def test_an_empty_ledger_says_nothing_is_judged_yet(
    world: LearningWorld, ledger_url: str, tmp_path: Path
) -> None:
    with store_for(ledger_url):
        pass  # the ledger exists, with its tables, and no labels
    config = _config(tmp_path, world, ledger_url)
    result, learn_line, train_line = _learn_and_train(config, tmp_path)
    assert result["promoted"] is False and result["train_labels"] == 0
    for line in (learn_line, train_line, str(result["reason"])):
        assert "no labels yet" in line, line


def test_one_old_label_is_too_few_and_nothing_held_out_cannot_be_evaluated(
    start: Callable[..., Gw], world: LearningWorld, ledger_url: str, tmp_path: Path
) -> None:
    gw = start()
    gw.ask(ENGLISH[0])
    gw.drain()
    with store_for(ledger_url) as store:
        store.execute_write("UPDATE labels SET ts = ts - ?", (10 * 86400,))
    config = _config(tmp_path, world, ledger_url)
    result, learn_line, train_line = _learn_and_train(config, tmp_path)
    assert result["promoted"] is False and result["train_labels"] == 1
    for line in (learn_line, train_line):
        assert "often enough" in line, line

    # enough old labels to train on, none held out: eval and learn say so in one line
    for prompt in ENGLISH + GERMAN:
        gw.ask(prompt)
    gw.drain()
    with store_for(ledger_url) as store:
        store.execute_write("UPDATE labels SET ts = ts - ?", (10 * 86400,))
    out = tmp_path / "cand2"
    train = _gearshift(
        "train", "--from-ledger", "--config", config, "--out", str(out), cwd=tmp_path
    )
    assert train.returncode == 0 and json.loads(train.stdout)["trained"] is True, train.stderr
    evaluate = _gearshift("eval", "--candidate", str(out), "--config", config, cwd=tmp_path)
    assert evaluate.returncode == 1
    assert "no held-out labels" in _one_line(evaluate.stderr)
    learn = _gearshift("learn", "--config", config, cwd=tmp_path)
    assert learn.returncode == 0
    assert "no held-out labels" in _one_line(learn.stderr)
    assert json.loads(learn.stdout)[0]["promoted"] is False
