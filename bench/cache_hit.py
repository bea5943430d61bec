"""Response-cache hits through the gateway: latency of a hit, per backend, beside a routed miss.

Starts the fake OpenAI-compatible provider and ``gearshift serve`` (issue 3's configuration, the
SQLite ledger on) with one router per cache backend, primes each with one request, then sends
``--n`` identical requests one after another on one keep-alive connection and times each from
the first byte written to the last byte of the answer read. Prints one JSON object with p50/p90/p99
per backend, and for reference the same request to a router without a cache (routed, upstream
called). The bar (issue 14): memory-backend hit p50 <= 0.3 ms.

    .venv/bin/python bench/cache_hit.py [--n 2000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from processes import free_port, serve_command, wait_http

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "What are the opening hours of the support desk on public holidays?"


def request_bytes(model: str) -> bytes:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": PROMPT}]}).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def timed_requests(port: int, request: bytes, n: int) -> tuple[list[float], dict[str, str]]:
    """``n`` sequential requests on one keep-alive connection: ms each, and the last headers."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = sock.makefile("rb")
    times: list[float] = []
    headers: dict[str, str] = {}
    for _ in range(n):
        started = time.perf_counter()
        sock.sendall(request)
        status = reader.readline()
        assert b" 200 " in status, status
        headers = {}
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            reader.read(int(headers["content-length"]))
        else:  # chunked: to the terminating zero-length chunk
            while (size := int(reader.readline().strip(), 16)) > 0:
                reader.read(size + 2)
            reader.readline()
        times.append((time.perf_counter() - started) * 1000)
    sock.close()
    return times, headers


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(pct: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))], 3)

    return {"p50_ms": at(50), "p90_ms": at(90), "p99_ms": at(99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="timed requests per target")
    parser.add_argument("--redis", default=os.environ.get("GEARSHIFT_TEST_REDIS_URL"))
    args = parser.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        try:
            fake_port = free_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(fake_port)],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            fake_url = f"http://127.0.0.1:{fake_port}/v1"
            wait_http(f"{fake_url}/models", procs[-1])
            config = yaml.safe_load((ROOT / "bench" / "gateway_config.yaml").read_text())
            for model in config["models"]:
                model["base_url"] = fake_url
            backends: dict[str, dict[str, Any]] = {
                "memory": {"backend": "memory"},
                "sqlite": {"backend": "sqlite", "path": str(tmp / "cache.db")},
            }
            if args.redis:
                backends["redis"] = {"backend": "redis", "redis_url": args.redis}
            auto = config["routers"][0]
            for name, cache in backends.items():
                config["routers"].append({**auto, "name": f"cached-{name}", "cache": cache})
            config["storage"] = f"sqlite:///{tmp / 'ledger.db'}"
            (tmp / "gearshift.yaml").write_text(yaml.safe_dump(config))
            port = free_port()
            procs.append(
                subprocess.Popen(
                    serve_command(tmp / "gearshift.yaml", port),
                    cwd=tmp,
                    env={**os.environ, "LARGE_API_KEY": "sk-bench-large"},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_http(f"http://127.0.0.1:{port}/healthz", procs[-1])
            result: dict[str, Any] = {"n": args.n, "loadavg": Path("/proc/loadavg").read_text()}
            for name in backends:
                request = request_bytes(f"cached-{name}")
                timed_requests(port, request, 200)  # prime and warm up
                times, headers = timed_requests(port, request, args.n)
                assert headers.get("x-gearshift-cache") == "hit", headers
                result[f"hit_{name}"] = percentiles(times)
            timed_requests(port, request_bytes("auto"), 200)
            times, _ = timed_requests(port, request_bytes("auto"), args.n)
            result["routed_miss_no_cache"] = percentiles(times)
        finally:
            for proc in reversed(procs):
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
