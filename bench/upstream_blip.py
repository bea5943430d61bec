"""How long a short upstream outage keeps a model refused: the chaos rig's gateway (two models on
one fake provider, router ``auto``), ``--clients`` threads streaming requests, the provider
SIGKILLed at ``--kill-at`` s and restarted ``--down-s`` s later. Prints JSON: statuses per second,
when the provider was back, and when the first 200 came after it (the cooldown's cost).

    .venv/bin/python bench/upstream_blip.py
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import threading
import time
from pathlib import Path

import httpx

from chaos import Rig
from processes import free_port

BODY = {"model": "auto", "messages": [{"role": "user", "content": "hi there"}], "stream": True}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--kill-at", type=float, default=3.0)
    parser.add_argument("--down-s", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    rig = Rig(Path(tempfile.mkdtemp()), argparse.Namespace(storage="sqlite"))
    port = free_port()
    rig.start_gateway(port)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    t0 = time.monotonic()
    per_second: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    first_ok_after: list[float] = []
    back_at: list[float] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                try:
                    with http.stream("POST", url, json=BODY) as response:
                        for _ in response.iter_bytes():
                            pass
                        status = str(response.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                now = time.monotonic() - t0
                per_second[int(now)][status] += 1
                if status == "200" and back_at and not first_ok_after:
                    first_ok_after.append(now)

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(args.kill_at)
        assert rig.upstream is not None
        rig.upstream.kill()
        rig.upstream.wait()
        killed_at = time.monotonic() - t0
        time.sleep(args.down_s)
        rig.start_upstream()
        back_at.append(time.monotonic() - t0)
        time.sleep(max(0.0, args.seconds - (time.monotonic() - t0)))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        rig.close()
    print(
        json.dumps(
            {
                "clients": args.clients,
                "provider_killed_at_s": round(killed_at, 2),
                "provider_back_at_s": round(back_at[0], 2),
                "first_200_after_back_s": (
                    round(first_ok_after[0] - back_at[0], 2) if first_ok_after else None
                ),
                "statuses_per_second": {str(k): dict(v) for k, v in sorted(per_second.items())},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
