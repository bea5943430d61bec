"""Helpers the benchmarks share for running servers on loopback as subprocesses."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    """Return once ``url`` answers below 500; fail fast if ``proc`` (when given) dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} not up after {timeout}s")


def serve_command(config: str | Path, port: int) -> list[str]:
    """argv for ``gearshift serve`` with this config on this port, warnings only, run with the
    current interpreter (the benchmark's venv)."""
    return [
        sys.executable,
        "-m",
        "gearshift",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def first_chunk_ms(
    port: int, request: bytes, n: int, found: Callable[[bytes], bool]
) -> list[float]:
    """``n`` sequential streamed requests on one keep-alive connection: ms from sending
    ``request`` to reading the first chunk of its chunked response for which ``found`` is true
    (the end of the response when none is)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = sock.makefile("rb")
    times: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        sock.sendall(request)
        status = reader.readline()
        assert b" 200 " in status, status
        chunked = False
        while (line := reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"transfer-encoding: chunked"):
                chunked = True
        assert chunked, "expected a chunked event stream"
        first: float | None = None
        while True:  # chunks until the terminating zero-length one
            size = int(reader.readline().strip(), 16)
            if size == 0:
                reader.readline()
                break
            data = reader.read(size)
            reader.readline()
            if first is None and found(data):
                first = time.perf_counter()
        times.append(((first or time.perf_counter()) - started) * 1000)
    sock.close()
    return times
