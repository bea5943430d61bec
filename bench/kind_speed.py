"""Task-kind detector speed: what the kind costs on the routing hot path, and its load time.

    .venv/bin/python bench/kind_speed.py [--iterations 3000]

Prints one JSON object. For prompts of about 10, 500 and 2,000 tokens (the labelled set's rows,
and long ones built from them), on one core (pinned where the OS allows):

* ``detector_us`` — ``KindModel.probabilities`` alone on features already extracted: the cost the
  kind adds to a routing decision, which extracts the features anyway;
* ``extract_with_kind_us`` / ``extract_without_kind_us`` — ``extract_text`` with and without the
  kind, for scale;

as thread CPU time (not inflated by other processes) and wall time, p50 and p99. ``load_ms`` is the
import of the module (numpy included) and the bundled model's first load, in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from gearshift.routing.build_kinds import labelled_rows
from gearshift.routing.features import DENSE_NAMES, extract_text
from gearshift.routing.kinds import KindModel, kind_model


def _percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50": round(s[len(s) // 2], 1),
        "p99": round(s[min(len(s) - 1, int(0.99 * len(s)))], 1),
    }


def _time(call: Callable[[int], object], n: int) -> dict[str, dict[str, float]]:
    cpu: list[float] = []
    wall: list[float] = []
    for i in range(n):
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        call(i)
        cpu.append((time.thread_time_ns() - c0) / 1e3)
        wall.append((time.perf_counter_ns() - w0) / 1e3)
    return {"cpu": _percentiles(cpu), "wall": _percentiles(wall)}


def _prompts(tokens: int) -> list[str]:
    texts = [r.text for r in labelled_rows()]
    if tokens <= 50:
        return [t for t in texts if len(t) < 200]
    out = []
    for i in range(len(texts)):
        body = ""
        j = i
        while len(body) < tokens * 4:
            body += texts[j % len(texts)] + "\n\n"
            j += 7
        out.append(body[: tokens * 4])
    return out


def _measure(model: KindModel, prompts: list[str], n: int) -> dict[str, Any]:
    feats = [extract_text(p, kinds=False) for p in prompts]
    k = len(prompts)
    for f in feats[:50]:  # warm caches
        model.probabilities(f.tokens, f.dense, DENSE_NAMES)
    return {
        "prompts": k,
        "detector_us": _time(
            lambda i: model.probabilities(feats[i % k].tokens, feats[i % k].dense, DENSE_NAMES),
            n,
        ),
        "extract_with_kind_us": _time(lambda i: extract_text(prompts[i % k]), n),
        "extract_without_kind_us": _time(lambda i: extract_text(prompts[i % k], kinds=False), n),
    }


def _load_ms() -> dict[str, float]:
    """Median of 3 fresh processes: importing the module (numpy included), then the first load."""
    code = (
        "import time; t0 = time.perf_counter(); "
        "from gearshift.routing.kinds import kind_model; t1 = time.perf_counter(); kind_model(); "
        "print((t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3)"
    )
    runs = [
        [float(v) for v in subprocess.check_output([sys.executable, "-c", code]).split()]
        for _ in range(3)
    ]
    return {
        "import": round(sorted(r[0] for r in runs)[1], 1),
        "load": round(sorted(r[1] for r in runs)[1], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=3000)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    model = kind_model()
    report: dict[str, Any] = {"loadavg_before": os.getloadavg()[0], "vocab": len(model.vocab)}
    for tokens in (10, 500, 2000):
        report[f"{tokens}_tokens"] = _measure(model, _prompts(tokens), args.iterations)
    report["load_ms"] = _load_ms()
    report["loadavg_after"] = os.getloadavg()[0]
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
