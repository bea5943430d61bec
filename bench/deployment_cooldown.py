"""A dead deployment costs one failed attempt per cooldown period, not one per request.

Starts two fake OpenAI-compatible upstreams (tests/fakes/openai_server.py, in this process) and
``gearshift serve`` (a subprocess) with one model listing both as ``deployments``. One of them is
down, in one of three ways: it answers every request with 500 (``--down http500``: attempts counted
by the fake itself), or with 504 after ``--hang-s`` seconds (``--down hang``, a stuck upstream: the
slow failure is where concurrent requests pile up), or nothing listens on its port
(``--down refused``: attempts read from the
gateway's ``gearshift_deployment_attempts_total``). For each of ``--concurrency`` (a list) and
each of ``--runs`` runs, starts a fresh gateway (no health carried over), sends ``--requests``
chat completions from that many client threads, and prints one JSON object per run: attempts at
the dead deployment, requests served, failures seen by clients, and the gateway's p50/p99 latency
as clients saw it; then a summary line with the attempts per concurrency.

    .venv/bin/python bench/deployment_cooldown.py --requests 1000 --down http500 \
        --concurrency 1,8,32 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402

from processes import free_port, serve_command, wait_http  # noqa: E402

BODY = {"model": "gpt", "messages": [{"role": "user", "content": "Summarise our refund policy."}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", default="8", help="client threads; a list: 1,8,32")
    parser.add_argument("--runs", type=int, default=1, help="fresh gateways per concurrency")
    parser.add_argument("--down", choices=["http500", "hang", "refused"], default="http500")
    parser.add_argument("--hang-s", type=float, default=0.5, help="--down hang: 504 after this")
    parser.add_argument("--cooldown-s", type=float, default=5.0)
    args = parser.parse_args()
    summary: dict[str, list[int | None]] = {}
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        for _ in range(args.runs):
            result = one_run(args, concurrency)
            print(json.dumps(result), flush=True)
            summary.setdefault(str(concurrency), []).append(result["attempts_at_dead_deployment"])
    print(json.dumps({"attempts_at_dead_deployment_by_concurrency": summary, "bar": "<= 5"}))


def one_run(args: argparse.Namespace, concurrency: int) -> dict[str, Any]:
    with FakeOpenAIServer(record=False) as alive, FakeOpenAIServer(record=False) as dead:
        dead.okn.fail_models = {"gpt-up": 500}
        if args.down == "hang":
            dead.okn.fail_models = {"gpt-up": "timeout"}
            dead.okn.hang_s = args.hang_s
        refused = args.down == "refused"
        dead_url = f"http://127.0.0.1:{free_port()}/v1" if refused else dead.base_url
        tmp = Path(tempfile.mkdtemp(prefix="gearshift-bench-"))
        config = {
            "models": [
                {
                    "name": "gpt",
                    "model": "gpt-up",
                    "price": {"input_per_mtok": 1, "output_per_mtok": 2},
                    "deployments": [
                        {"name": "dead", "base_url": dead_url},
                        {"name": "alive", "base_url": alive.base_url},
                    ],
                }
            ],
            "cooldown": {"cooldown_s": args.cooldown_s},
            "storage": f"sqlite:///{tmp}/ledger.db",
        }
        path = tmp / "gearshift.yaml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        proc = subprocess.Popen(serve_command(path, port), cwd=tmp, env=os.environ.copy())
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/healthz/live", proc)
            latencies: list[float] = []
            statuses: list[int] = []

            def one(client: httpx.Client) -> None:
                started = time.perf_counter()
                response = client.post(f"{url}/v1/chat/completions", json=BODY)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses.append(response.status_code)

            clients = [httpx.Client(timeout=30) for _ in range(concurrency)]
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                for i in range(args.requests):
                    pool.submit(one, clients[i % concurrency])
            elapsed = time.perf_counter() - started
            metrics = httpx.get(f"{url}/metrics").text
            for client in clients:
                client.close()
        finally:
            proc.terminate()
            proc.wait(30)
        found = re.search(
            r'gearshift_deployment_attempts_total\{model="gpt",deployment="dead",'
            r'result="error"\} (\d+)',
            metrics,
        )
        dead_attempts = None if refused else dead.count
        ordered = sorted(latencies)
        return {
            "requests": args.requests,
            "concurrency": concurrency,
            "down": args.down,
            "dead_max_in_flight": None if refused else dead.max_in_flight,
            "cooldown_s": args.cooldown_s,
            "attempts_at_dead_deployment": dead_attempts
            if dead_attempts is not None
            else int(found.group(1))
            if found
            else None,
            "failed_attempts_per_gateway_metrics": int(found.group(1)) if found else None,
            "served_by_alive": alive.count,
            "client_status_counts": {str(s): statuses.count(s) for s in set(statuses)},
            "elapsed_s": round(elapsed, 2),
            "latency_ms_p50": round(statistics.median(ordered), 3),
            "latency_ms_p99": round(ordered[int(len(ordered) * 0.99) - 1], 3),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        }


if __name__ == "__main__":
    main()
