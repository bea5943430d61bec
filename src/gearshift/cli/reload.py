"""``gearshift reload --config FILE``: make the gateway started with ``--config FILE`` re-read it.

Validates the file here first (a bad file is refused with the start-up message and the server is
not disturbed), then sends SIGHUP to the server (its PID is in the file ``gearshift serve``
writes), waits for its verdict (every worker's, with ``--workers N``) and prints it. Exit status
0 when every process swapped the new configuration in, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gearshift reload",
        description="Re-read the configuration of a running gateway (same as SIGHUP).",
    )
    parser.add_argument("--config", required=True, help="the file the gateway was started with")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the verdict (30)"
    )
    return parser


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    from gearshift.api.live_config import read_verdict, runtime_path, validate_file
    from gearshift.errors import ConfigError

    config = os.path.abspath(args.config)
    validate_file(config)  # ConfigError: printed by the dispatcher, exit 1
    pid_file = runtime_path(config, ".pid")
    try:
        pid = int(pid_file.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        raise ConfigError(
            f"no running gateway was started with --config {config} (no PID file {pid_file})"
        ) from None
    sent = time.time()
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise ConfigError(f"the gateway started with {config} (pid {pid}) is not running") from None
    deadline = time.monotonic() + args.timeout
    single = runtime_path(config, f".reload.{pid}.json")
    supervisor = runtime_path(config, ".reload.json")
    verdicts: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        own = read_verdict(single, sent)
        if own is not None:
            verdicts = [own]
            break
        top = read_verdict(supervisor, sent)
        if top is not None:
            if not top.get("ok"):
                verdicts = [top]
                break
            workers = [runtime_path(config, f".reload.{w}.json") for w in top["workers"]]
            found = [read_verdict(w, sent) for w in workers]
            if all(v is not None for v in found):
                verdicts = [v for v in found if v is not None]
                break
        time.sleep(0.05)
    if not verdicts:
        print(f"gearshift reload: no verdict from pid {pid} within {args.timeout:g} s; see its log")
        return 1
    ok = all(v.get("ok") for v in verdicts)
    for v in verdicts:
        if v.get("ok"):
            note = f"generation {v['generation']}"
            if v.get("needs_restart"):
                note += f"; restart to apply {', '.join(v['needs_restart'])}"
            print(f"pid {v['pid']}: reloaded {config} ({note})")
        else:
            refused = f"pid {v['pid']}: refused, running configuration kept: {v['error']}"
            print(refused, file=sys.stderr)
    return 0 if ok else 1
