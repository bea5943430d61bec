"""Reloading the configuration under load loses no request (issue 13).

Starts the fake OpenAI-compatible upstream (tests/fakes/openai_server.py) and ``gearshift serve``
(``--workers N``) as subprocesses on loopback, then drives ``wrk`` at ``--connections`` connections
for ``--seconds`` while, every ``--every`` seconds, the configuration file is rewritten (a model
added or removed, prices changed, a rate limit set or not) and ``gearshift reload`` applied. Every
request names the router ``auto``, whose candidates change between the two files. Prints one JSON
object: wrk's requests, non-2xx answers and socket errors; reloads done and refused; the ledger's
rows by outcome after a graceful stop (every completed request must be an ``ok`` row).

    .venv/bin/python bench/reload_under_load.py --seconds 10 --connections 32 --workers 1
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway_overhead import wrk, wrk_script
from processes import free_port, serve_command, wait_http

ROOT = Path(__file__).resolve().parent.parent


def config(upstream: str, storage: str, flip: bool) -> dict[str, Any]:
    price = {"input_per_mtok": 0.25 if flip else 0.3, "output_per_mtok": 1.25}
    models: list[dict[str, Any]] = [
        {"name": "small", "base_url": upstream, "tier": 1, "price": price},
        {
            "name": "large",
            "base_url": upstream,
            "tier": 3,
            "price": {"input_per_mtok": 15, "output_per_mtok": 75},
        },
    ]
    if flip:
        models.append({"name": "medium", "base_url": upstream, "tier": 2})
    limits = [{"name": "everyone", "rpm": 10_000_000}] if flip else []
    return {
        "models": models,
        "routers": [
            {"name": "auto", "models": [m["name"] for m in models], "quality_tolerance": 0.1}
        ],
        "storage": storage,
        "policy": {"limits": limits},
        "cooldown": {"cooldown_s": 30.0 if flip else 20.0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between reloads")
    parser.add_argument(
        "--via",
        choices=["signal", "cli"],
        default="signal",
        help="SIGHUP to the server (default) or `gearshift reload` (validates, waits for verdicts)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gearshift-reload-"))
    up_port, gs_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    storage = f"sqlite:///{tmp}/ledger.db"
    path = tmp / "gearshift.yaml"
    path.write_text(yaml.safe_dump(config(upstream, storage, False)))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(up_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cmd = [*serve_command(path, gs_port), "--workers", str(args.workers)]
    gs = subprocess.Popen(
        cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    reloads = {"sent": 0, "ok": 0, "refused": 0}
    try:
        wait_http(f"http://127.0.0.1:{up_port}/v1/models", fake)
        wait_http(f"http://127.0.0.1:{gs_port}/healthz/ready", gs)
        stop = threading.Event()

        def reloader() -> None:
            flip = True
            while not stop.wait(args.every):
                text = yaml.safe_dump(config(upstream, storage, flip))
                staged = path.with_suffix(".new")
                staged.write_text(text)
                staged.replace(path)  # the server never reads half a file
                if args.via == "signal":
                    gs.send_signal(signal.SIGHUP)
                    reloads["sent"] += 1
                else:
                    done = subprocess.run(
                        [sys.executable, "-m", "gearshift", "reload", "--config", str(path)],
                        capture_output=True,
                        text=True,
                        env=env,
                    )
                    reloads["ok" if done.returncode == 0 else "refused"] += 1
                flip = not flip

        thread = threading.Thread(target=reloader)
        thread.start()
        script = wrk_script(tmp / "post.lua", "auto")
        load = wrk(
            f"http://127.0.0.1:{gs_port}/v1/chat/completions",
            script,
            connections=args.connections,
            threads=2,
            seconds=args.seconds,
        )
        stop.set()
        thread.join()
        time.sleep(1.0)  # let the last reload land
        with urllib.request.urlopen(f"http://127.0.0.1:{gs_port}/healthz/ready") as response:
            generation = json.loads(response.read())["config_generation"]
    finally:
        gs.send_signal(signal.SIGTERM)
        gs.wait(60)
        fake.send_signal(signal.SIGTERM)
        fake.wait(15)
    db = sqlite3.connect(f"{tmp}/ledger.db")
    rows = dict(db.execute("SELECT outcome, COUNT(*) FROM requests GROUP BY outcome").fetchall())
    db.close()
    print(
        json.dumps(
            {
                "seconds": args.seconds,
                "connections": args.connections,
                "workers": args.workers,
                "wrk": load,
                "reloads": reloads,
                "final_config_generation": generation,
                "ledger_rows_by_outcome": rows,
                "lost": load["non_2xx"] + (0 if "socket_errors" not in load else 1),
                "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
