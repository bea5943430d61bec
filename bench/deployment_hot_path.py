"""CPU cost per request of choosing a deployment and keeping its books (issue 13), in process.

What deployments added to every request's path: ``pool.attempts()`` (which deployment), then
``begin`` / ``end`` / ``succeeded`` (in-flight, per-minute counts, health), plus the per-minute
token count when the deployment has a ``tpm``. Timed with ``time.process_time`` (CPU time of this
process, so other load on the machine inflates it far less than wall-clock latency) over
``--n`` requests, for a model without deployments (one implicit deployment, the common case) and
one with two weighted deployments and limits. Prints one JSON object, microseconds per request.

    .venv/bin/python bench/deployment_hot_path.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gearshift.config import CooldownConfig, ModelConfig
from gearshift.providers.deployments import DeploymentPool, build_pool


def per_request_us(pool: DeploymentPool, n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        for dep in pool.attempts(2):
            assert not isinstance(dep, float)  # nothing is on trial: requests here are serial
            pool.begin(dep)
            pool.end(dep)
            pool.succeeded(dep)
            if dep.tpm is not None:
                pool.add_tokens(dep, 42)
            break
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    single = ModelConfig(name="m", base_url="http://a/v1")
    double = ModelConfig.model_validate(
        {
            "name": "m",
            "deployments": [
                {"name": "a", "base_url": "http://a/v1", "weight": 2, "rpm": 10**9, "tpm": 10**12},
                {"name": "b", "base_url": "http://b/v1", "weight": 1},
            ],
        }
    )
    results = {}
    for label, model in (("one_implicit_deployment", single), ("two_deployments", double)):
        pool = build_pool(model, CooldownConfig(), lambda view: None)  # type: ignore[arg-type,return-value]
        per_request_us(pool, 1000)  # warm up
        results[label] = round(min(per_request_us(pool, args.n) for _ in range(3)), 3)
    print(
        json.dumps(
            {
                "us_per_request_cpu": results,
                "n": args.n,
                "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            }
        )
    )


if __name__ == "__main__":
    main()
