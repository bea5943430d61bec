"""Audit a 1,000,000-line log: wall time and peak RSS of ``gearshift audit`` (bar: 60 s, 500 MB).

The log comes from the sample generator (examples/make_helpdesk.py, another seed, the same mix of
prompt kinds) and is cached under /tmp between runs. The audit runs as a subprocess exactly as a
user would run it; peak RSS is the peak of the *sum* over the audit process and its worker
processes, sampled every 20 ms from /proc. Prints one JSON object.

    .venv/bin/python bench/audit_big_log.py [--lines 1000000] [--seed 7] [--workers 0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _log(lines: int, seed: int) -> Path:
    path = Path(tempfile.gettempdir()) / f"gearshift-audit-bench-{lines}-{seed}.jsonl"
    done = path.with_suffix(".done")
    if not done.exists():
        subprocess.run(
            [sys.executable, str(REPO / "examples" / "make_helpdesk.py"),
             "--requests", str(lines), "--seed", str(seed), "--out", str(path)],
            check=True,
        )  # fmt: skip
        done.write_text("ok")
    return path


def _tree_rss_kb(pid: int) -> int:
    """RSS of a process and all its descendants, in KiB."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=0, help="0: one per CPU core")
    args = parser.parse_args()

    log = _log(args.lines, args.seed)
    out = Path(tempfile.mkdtemp()) / "audit.json"
    cmd = [
        str(REPO / ".venv" / "bin" / "gearshift"), "audit", str(log), "--format", "json",
        "--out", str(out), "--workers", str(args.workers),
    ]  # fmt: skip
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the generator is a child too
    peak = 0
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_kb(proc.pid))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads(out.read_text()) if code == 0 else {}
    result = {
        "benchmark": "audit_big_log",
        "command": " ".join(["gearshift", *cmd[1:]]),
        "lines": args.lines,
        "log_mb": round(log.stat().st_size / 2**20, 1),
        "exit_code": code,
        "seconds": round(seconds, 2),
        "lines_per_s": round(args.lines / seconds),
        "peak_rss_mb": round(peak / 1024, 1),
        "max_single_process_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_seconds": round(
            usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime, 1
        ),
        "cpus": os.cpu_count(),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "requests": report.get("requests"),
        "prompts_predicted": report.get("prompts_predicted"),
        "malformed": report.get("malformed"),
        "savings_pct": report.get("savings_pct"),
        "bar": {"seconds": 60, "peak_rss_mb": 500},
        "meets_bar": code == 0 and seconds <= 60 and peak / 1024 <= 500,
    }
    print(json.dumps(result, indent=2))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
