"""examples/try_gateway.py, run as a newcomer would: fake provider, gateway, prompts, report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_example_routes_prompts_and_shows_ledger_and_dashboard() -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "examples/try_gateway.py", "--port", str(port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    lines = out.splitlines()
    routed = lines[1:6]
    assert len(routed) == 5 and all(line.split()[0].startswith("gpt-5") for line in routed), out
    # the easy prompt goes light; asked with tolerance 0 it goes to the most capable model
    assert routed[0].split()[0] == "gpt-5-nano" and routed[0].split()[2] != "0"
    assert routed[4].split()[0] == "gpt-5" and routed[4].endswith("[tolerance 0]")
    assert f"dashboard: http://127.0.0.1:{port}/dashboard (HTTP 200)" in out
    total = next(line for line in lines if "TOTAL" in line)
    assert total.split()[3] == "5", total  # five requests in the ledger
