"""Fixtures for the audit tests: run ``gearshift audit`` in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from gearshift.cli.main import main


@pytest.fixture
def run_audit(
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., tuple[int, str, str]]:
    """``run_audit(*argv)`` -> (exit code, stdout, stderr) of ``gearshift audit``."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["audit", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def audit_json(run_audit: Callable[..., tuple[int, str, str]]) -> Callable[..., dict[str, Any]]:
    def run(*argv: str) -> dict[str, Any]:
        code, out, err = run_audit(*argv, "--format", "json")
        assert code == 0, err
        data: dict[str, Any] = json.loads(out)
        return data

    return run
