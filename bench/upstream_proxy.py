"""What an outbound CONNECT proxy costs, and what the per-origin connection cap does, on loopback.

Starts, as separate processes: the fake OpenAI-compatible provider, the fake CONNECT proxy
(tests/fakes/connect_proxy.py, asyncio), and three ``gearshift serve`` processes with
bench/gateway_config.yaml (router ``auto``, SQLite ledger on): one calling the fake directly, one
with ``proxy:`` set on its models (every call through a CONNECT tunnel, kept alive), and one with
``max_connections: 4``. Prints one JSON object:

- ``proxy_c1``: p50 at one connection (wrk), gearshift direct vs through the proxy, alternating
  rounds; ``extra_p50_ms`` = median over rounds of (through proxy - direct);
- ``proxy_throughput``: requests/s at ``--connections`` connections, direct vs through the proxy;
- ``connection_cap``: with the fake answering after ``--latency-ms``, requests/s and p99 at
  ``--connections`` connections for the default cap (100) and for a cap of 4, whose ceiling is
  4 / latency (requests queue in gearshift instead of opening more connections).

    .venv/bin/python bench/upstream_proxy.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from gateway_overhead import Procs, wrk, wrk_script
from processes import free_port, serve_command, wait_http

ROOT = Path(__file__).resolve().parent.parent


def start_fake(procs: Procs, latency_ms: float = 0.0) -> str:
    port = free_port()
    argv = [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port)]
    fake = procs.start([*argv, "--latency-ms", str(latency_ms)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}/v1"
    wait_http(f"{url}/models", fake)
    return url


def start_gateway(procs: Procs, tmp: Path, name: str, fake_url: str, **model: Any) -> str:
    config = yaml.safe_load((ROOT / "bench" / "gateway_config.yaml").read_text())
    for entry in config["models"]:
        entry.update(base_url=fake_url, **model)
    config["storage"] = f"sqlite:///{tmp}/{name}.db"
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    env = {**os.environ, "LARGE_API_KEY": "sk-bench-large"}
    gw = procs.start(serve_command(path, port), env=env)
    wait_http(f"http://127.0.0.1:{port}/healthz", gw)
    return f"http://127.0.0.1:{port}/v1/chat/completions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="fake's delay (cap runs)")
    args = parser.parse_args()
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="gs-proxy-"))
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "loadavg_start": _load()}}
    try:
        fake_url = start_fake(procs)
        proxy_port = free_port()
        proxy = procs.start(
            [sys.executable, "-m", "tests.fakes.connect_proxy", "--port", str(proxy_port)],
            cwd=ROOT,
        )
        proxy_url = f"http://127.0.0.1:{proxy_port}"
        direct = start_gateway(procs, tmp, "direct", fake_url)
        if proxy.poll() is not None:
            sys.exit(f"the fake proxy exited with {proxy.returncode}")
        proxied = start_gateway(procs, tmp, "proxied", fake_url, proxy=proxy_url)
        script = wrk_script(tmp / "router.lua", "auto")
        for url in (direct, proxied):  # warm pools, tunnels and first-call imports
            wrk(url, script, connections=4, threads=1, seconds=2)

        rounds = []
        for _ in range(args.rounds):
            a = wrk(direct, script, connections=1, threads=1, seconds=args.seconds)
            b = wrk(proxied, script, connections=1, threads=1, seconds=args.seconds)
            rounds.append({"direct": a, "through_proxy": b, "extra_p50_ms": _diff(b, a)})
        result["proxy_c1"] = {
            "rounds": rounds,
            "extra_p50_ms": statistics.median(r["extra_p50_ms"] for r in rounds),
        }
        conn = args.connections
        tput: dict[str, Any] = {"connections": conn}
        for name, url in (("direct", direct), ("through_proxy", proxied)):
            tput[name] = wrk(url, script, connections=conn, threads=2, seconds=args.seconds)
        result["proxy_throughput"] = tput

        slow_url = start_fake(procs, args.latency_ms)
        uncapped = start_gateway(procs, tmp, "uncapped", slow_url)
        capped = start_gateway(procs, tmp, "capped", slow_url, max_connections=4)
        cap: dict[str, Any] = {"connections": conn, "upstream_latency_ms": args.latency_ms}
        for name, url in (("default_cap_100", uncapped), ("cap_4", capped)):
            wrk(url, script, connections=4, threads=1, seconds=1)
            cap[name] = wrk(url, script, connections=conn, threads=2, seconds=args.seconds)
        cap["cap_4_ceiling_rps"] = round(4 / (args.latency_ms / 1000), 1)
        result["connection_cap"] = cap
        result["machine"]["loadavg_end"] = _load()
    finally:
        procs.stop_all()
    print(json.dumps(result, indent=2))


def _diff(through: dict[str, Any], direct: dict[str, Any]) -> float:
    return round(through["p50_ms"] - direct["p50_ms"], 3)


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" tot")[0].strip()


if __name__ == "__main__":
    main()
