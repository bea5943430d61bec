"""Routing speed: one decision's latency, `gearshift score` throughput, import + load time.

    .venv/bin/python bench/routing_speed.py [--iterations 3000] [--score-rows 20000]

Prints one JSON object. Decision latency is measured on one core (the process is pinned to one CPU
while it measures, where the OS allows) for prompts of about 20, 500, 2,000 and 8,000 tokens,
as wall-clock time and
as the thread's CPU time (the latter is not inflated when other processes share the machine).
Import + load covers the default router and the prompt encoder table the first decision loads.
Every prompt is written here; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

_SENTENCES = [
    "The quarterly report shows revenue grew in every region except the north-east.",
    "Write a function that merges two sorted lists without using the built-in sort.",
    "Explain step by step why the derivative of x squared is two x.",
    "Our customer says the invoice total does not match the purchase order.",
    "Summarise the meeting notes below in three bullet points for the leadership team.",
    "If a train travels 120 km in 1.5 hours, what is its average speed in m/s?",
    "Le client demande un remboursement pour la commande 4471 livrée en retard.",
    "Compare the trade-offs between optimistic and pessimistic locking in databases.",
]


def _prompt(tokens: int, rng: random.Random) -> str:
    words: list[str] = []
    while len(" ".join(words)) < tokens * 4:
        words.extend(rng.choice(_SENTENCES).split())
    return " ".join(words)[: tokens * 4] + "\n\nQuestion: what should we do next, and why?"


def _percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]  # noqa: E731
    return {
        "p50_ms": round(pick(0.50) * 1e3, 4),
        "p99_ms": round(pick(0.99) * 1e3, 4),
        "mean_ms": round(sum(s) / len(s) * 1e3, 4),
    }


def decision_latency(iterations: int) -> dict[str, object]:
    from gearshift.routing import prompt_request, router_for_models

    router = router_for_models(["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku"])
    rng = random.Random(0)
    out: dict[str, object] = {}
    for tokens in (20, 500, 2000, 8000):
        prompts = [_prompt(tokens, rng) for _ in range(50)]
        requests = [prompt_request(p) for p in prompts]
        for r in requests[:20]:  # warm-up
            router.decide(r)
        wall: list[float] = []
        cpu: list[float] = []
        for i in range(iterations):
            req = requests[i % len(requests)]
            t0, c0 = time.perf_counter(), time.thread_time()
            router.decide(req)
            cpu.append(time.thread_time() - c0)
            wall.append(time.perf_counter() - t0)
        out[f"{tokens}_tokens"] = {"wall": _percentiles(wall), "cpu": _percentiles(cpu)}
    return out


def import_time() -> dict[str, object]:
    code = (
        "import sys, time; t = time.perf_counter(); c = time.process_time(); "
        "import gearshift.routing as r; r.default_predictor(); "
        "from gearshift.routing.encoder import default_encoder; default_encoder(); "
        "dt = time.perf_counter() - t; dc = time.process_time() - c; "
        "heavy = sorted(m for m in ('sklearn', 'scipy', 'torch', 'matplotlib', 'tensorflow') "
        "if m in sys.modules); print(dt, dc, ','.join(heavy))"
    )
    runs: list[float] = []
    cpu: list[float] = []
    heavy = ""
    for _ in range(5):
        res = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
        parts = res.stdout.split()
        runs.append(float(parts[0]))
        cpu.append(float(parts[1]))
        heavy = parts[2] if len(parts) > 2 else ""
    runs.sort()
    cpu.sort()
    return {
        "median_ms": round(runs[len(runs) // 2] * 1e3, 1),
        "min_ms": round(runs[0] * 1e3, 1),
        "cpu_median_ms": round(cpu[len(cpu) // 2] * 1e3, 1),
        "heavy_modules_loaded": heavy.split(",") if heavy else [],
    }


def score_throughput(n_rows: int) -> dict[str, object]:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "prompts.jsonl"
        with open(src, "w", encoding="utf-8") as fh:
            for i in range(n_rows):
                tokens = rng.choice((15, 40, 120, 400))
                fh.write(
                    json.dumps(
                        {"id": i, "messages": [{"role": "user", "content": _prompt(tokens, rng)}]}
                    )
                    + "\n"
                )
        dst = Path(tmp) / "preds.jsonl"
        cmd = [
            PY,
            "-m",
            "gearshift",
            "score",
            "--input",
            str(src),
            "--output",
            str(dst),
            "--models",
            "gpt-4o-mini,gpt-4o",
            "--quiet",
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        elapsed = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        lines = len(dst.read_text(encoding="utf-8").splitlines())
    return {
        "rows": lines,
        "seconds": round(elapsed, 3),
        "prompts_per_s": round(lines / elapsed),
        "cpu_seconds_all_processes": round(cpu_s, 3),
        "includes": "process start, import, model load",
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--score-rows", type=int, default=20000)
    args = p.parse_args()
    pinnable = hasattr(os, "sched_setaffinity")
    all_cpus = os.sched_getaffinity(0) if pinnable else set()
    if pinnable:  # one decision on one core; the subprocesses below get every core back
        os.sched_setaffinity(0, {sorted(all_cpus)[0]})
    decision = decision_latency(args.iterations)
    if pinnable:
        os.sched_setaffinity(0, all_cpus)
    result = {
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "decision": decision,
        "import_and_load": import_time(),
        "score": score_throughput(args.score_rows),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
