"""The base help of ``gearshift train`` and ``gearshift eval`` names their learning-loop modes
(``--from-ledger``, ``--candidate``), and each mode's own ``--help`` works as written there."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _help(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gearshift", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("command", "mode", "mode_option"),
    [("train", "--from-ledger", "--holdout-days"), ("eval", "--candidate", "--holdout-days")],
)
def test_base_help_lists_the_ledger_mode(command: str, mode: str, mode_option: str) -> None:
    base = _help(command, "--help")
    modes = base.split("modes", 1)[1].splitlines()
    assert any(line.lstrip().startswith("--data FILE") for line in modes), base
    [line] = [line for line in modes if line.lstrip().startswith(mode)]
    assert "candidate" in line and "--help" in line
    assert mode_option not in base  # the mode's options are in its own help
    assert mode_option in _help(command, mode, "--help")
    assert mode in _help("--help")  # and the command list says so too
