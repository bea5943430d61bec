"""examples/try_gateway.py, run as a newcomer would: fake provider, gateway, prompts, report."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_example_routes_prompts_and_shows_ledger_and_dashboard() -> None:
    done = subprocess.run(  # no --port: it picks a free one
        [sys.executable, "examples/try_gateway.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    lines = out.splitlines()
    found = re.match(r"gateway: http://127\.0\.0\.1:(\d+) \(router helpdesk\)", lines[0])
    assert found, out
    port = int(found.group(1))
    header = lines.index(next(line for line in lines if line.startswith("model ")))
    routed = lines[header + 1 : header + 6]
    assert len(routed) == 5 and all(line.split()[0].startswith("gpt-5") for line in routed), out
    # the easy prompt goes light; asked with tolerance 0 it goes to the most capable model
    assert routed[0].split()[0] == "gpt-5-nano" and routed[0].split()[2] != "0"
    assert routed[4].split()[0] == "gpt-5" and routed[4].endswith("[tolerance 0]")
    assert f"dashboard: http://127.0.0.1:{port}/dashboard (HTTP 200)" in out
    total = next(line for line in lines if "TOTAL" in line)
    assert total.split()[3] == "5", total  # five requests in the ledger


class _Squatter(BaseHTTPRequestHandler):
    """Another server already on the port: answers every GET (``/healthz`` too) with 200."""

    posts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self) -> None:
        self.posts.append(self.path)
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_example_refuses_a_port_another_server_holds() -> None:
    squatter = ThreadingHTTPServer(("127.0.0.1", free_port()), _Squatter)
    threading.Thread(target=squatter.serve_forever, daemon=True).start()
    port = squatter.server_address[1]
    try:
        done = subprocess.run(
            [sys.executable, "examples/try_gateway.py", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        squatter.shutdown()
        squatter.server_close()
    assert done.returncode == 1
    assert f"port {port} is already in use" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert _Squatter.posts == []  # no prompt went to the other server
