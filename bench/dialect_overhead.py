"""Gateway overhead of the Anthropic and Bedrock dialects and providers, in one run.

Starts, as separate processes on loopback: the fake Anthropic Messages API and the fake Bedrock
runtime (tests/fakes/, the Bedrock one verifying every SigV4 signature), and ``gearshift serve``
with one model on each (routing, pricing and the SQLite ledger on). Load comes from ``wrk`` at one
connection. For each path it reports p50/p90/p99 and the overhead against calling the fake
directly (p50 through gearshift - p50 direct), and the CPU time gearshift spent per request
(``gearshift_cpu_ms_per_request``, which other load on the machine does not inflate):

- ``anthropic->anthropic``: Messages in, Messages out (body passed through);
- ``bedrock->bedrock``: Converse in, Converse out (SigV4-signed per request by gearshift);
- ``anthropic->bedrock`` and ``bedrock->anthropic``: translated across dialects;
- ``anthropic->router``: Messages in through a router over both models;
- ``stream_ttfb``: time to the first answer text of a stream (Messages SSE, ConverseStream
  event-stream), direct and through gearshift, on one keep-alive connection.

Direct Bedrock calls reuse one pre-computed SigV4 signature (the fake checks it on every call),
so the signing gearshift does per request counts as its overhead.

    .venv/bin/python bench/dialect_overhead.py --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_overhead import PROMPT, Procs, cpu_s, free_port, rss_mb, wait_http, wrk
from processes import first_chunk_ms, serve_command

ROOT = Path(__file__).resolve().parent.parent
ANTHROPIC_KEY = "sk-ant-bench"
AWS_KEY, AWS_SECRET = "AKIDBENCH", "bench-secret"
BEDROCK_ID = "amazon.nova-lite-v1:0"


def wait_port(port: int, proc: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"port {port} not listening after {timeout}s")


def lua(path: Path, body: dict[str, Any], headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def messages_body(model: str) -> dict[str, Any]:
    return {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": PROMPT}]}


def converse_body() -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"text": PROMPT}]}]}


def presigned(url: str, body: dict[str, Any]) -> dict[str, str]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url=url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(Credentials(AWS_KEY, AWS_SECRET), "bedrock", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def first_event_ms(
    port: int, path: str, body: bytes, headers: dict[str, str], marker: bytes, n: int
) -> list[float]:
    """Sequential streamed requests on one keep-alive connection: ms from sending the request to
    reading the first chunk that contains ``marker`` (the first piece of answer text)."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    return first_chunk_ms(port, request, n, lambda data: marker in data)


def presigned_stream(br_url: str) -> dict[str, str]:
    path = f"/model/{BEDROCK_ID.replace(':', '%3A')}/converse-stream"
    return presigned(f"{br_url}{path}", converse_body())


def stream_ttfb(
    n: int, an_port: int, br_port: int, gw_port: int, bedrock_signed: dict[str, str]
) -> dict[str, Any]:
    """Time to the first answer text of a stream, direct and through gearshift, p50 of ``n``."""
    messages = json.dumps(messages_body("claude-3-5-haiku-20241022") | {"stream": True}).encode()
    through = json.dumps(messages_body("claude") | {"stream": True}).encode()
    converse = json.dumps(converse_body()).encode()
    json_type = {"Content-Type": "application/json"}
    anthropic_headers = json_type | {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
    stream_path = f"/model/{BEDROCK_ID.replace(':', '%3A')}/converse-stream"
    runs = {
        "direct_anthropic": (an_port, "/v1/messages", messages, anthropic_headers, b"text_delta"),
        "anthropic->anthropic": (gw_port, "/v1/messages", through, json_type, b"text_delta"),
        "direct_bedrock": (br_port, stream_path, converse, bedrock_signed, b"contentBlockDelta"),
        "bedrock->bedrock": (
            gw_port,
            "/model/nova/converse-stream",
            converse,
            json_type,
            b"contentBlockDelta",
        ),
    }
    out: dict[str, Any] = {"streams_per_path": n}
    for name, (port, path, body, headers, marker) in runs.items():
        first_event_ms(port, path, body, headers, marker, 20)  # warm up
        times = sorted(first_event_ms(port, path, body, headers, marker, n))
        out[f"{name}_p50_ms"] = round(times[len(times) // 2], 3)
    for kind in ("anthropic", "bedrock"):
        gateway = out[f"{kind}->{kind}_p50_ms"]
        out[f"{kind}_overhead_p50_ms"] = round(gateway - out[f"direct_{kind}_p50_ms"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk duration per target")
    parser.add_argument("--streams", type=int, default=500, help="streams per TTFB measurement")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench needs wrk (apt-get install wrk)")
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="gs-dialects-"))
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "wrk_connections": 1}
    try:
        an_port, br_port, gw_port = free_port(), free_port(), free_port()
        an = procs.start(
            [
                sys.executable,
                "-m",
                "tests.fakes.anthropic_server",
                "--port",
                str(an_port),
                "--api-key",
                ANTHROPIC_KEY,
            ],
            cwd=ROOT,
        )
        br = procs.start(
            [
                sys.executable,
                "-m",
                "tests.fakes.bedrock_server",
                "--port",
                str(br_port),
                "--access-key",
                AWS_KEY,
                "--secret-key",
                AWS_SECRET,
            ],
            cwd=ROOT,
        )
        an_url, br_url = f"http://127.0.0.1:{an_port}", f"http://127.0.0.1:{br_port}"
        for port, proc in ((an_port, an), (br_port, br)):
            wait_port(port, proc)
        config = {
            "models": [
                {
                    "name": "claude",
                    "provider": "anthropic",
                    "base_url": an_url,
                    "model": "claude-3-5-haiku-20241022",
                    "api_key_env": "BENCH_ANTHROPIC_KEY",
                    "tier": 2,
                },
                {
                    "name": "nova",
                    "provider": "bedrock",
                    "base_url": br_url,
                    "model": BEDROCK_ID,
                    "region": "us-east-1",
                    "tier": 1,
                },
            ],
            "routers": [{"name": "auto", "models": ["nova", "claude"]}],
            "storage": f"sqlite:///{tmp}/gearshift.db",
        }
        (tmp / "gearshift.yaml").write_text(yaml.safe_dump(config))
        env = {
            **os.environ,
            "BENCH_ANTHROPIC_KEY": ANTHROPIC_KEY,
            "AWS_ACCESS_KEY_ID": AWS_KEY,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        gw = procs.start(serve_command(tmp / "gearshift.yaml", gw_port), env=env)
        gw_url = f"http://127.0.0.1:{gw_port}"
        wait_http(f"{gw_url}/healthz", gw)

        direct_converse = f"{br_url}/model/{BEDROCK_ID.replace(':', '%3A')}/converse"
        targets: dict[str, tuple[str, Path]] = {
            "direct_anthropic": (
                f"{an_url}/v1/messages",
                lua(
                    tmp / "da.lua",
                    messages_body("claude-3-5-haiku-20241022"),
                    {
                        "Content-Type": "application/json",
                        "x-api-key": ANTHROPIC_KEY,
                        "anthropic-version": "2023-06-01",
                    },
                ),
            ),
            "direct_bedrock": (
                direct_converse,
                lua(tmp / "db.lua", converse_body(), presigned(direct_converse, converse_body())),
            ),
        }
        json_headers = {"Content-Type": "application/json", "x-api-key": "sk-client"}
        for name, model in (("anthropic->anthropic", "claude"), ("anthropic->bedrock", "nova")):
            targets[name] = (
                f"{gw_url}/v1/messages",
                lua(tmp / f"{model}.lua", messages_body(model), json_headers),
            )
        targets["anthropic->router"] = (
            f"{gw_url}/v1/messages",
            lua(tmp / "router.lua", messages_body("auto"), json_headers),
        )
        for name, model in (("bedrock->bedrock", "nova"), ("bedrock->anthropic", "claude")):
            targets[name] = (
                f"{gw_url}/model/{model}/converse",
                lua(tmp / f"c-{model}.lua", converse_body(), json_headers),
            )
        # Warm up every path (pools, credential chain, first-call imports).
        for url, script in targets.values():
            wrk(url, script, connections=1, threads=1, seconds=1)
        latency: dict[str, dict[str, Any]] = {}
        for name, (url, script) in targets.items():
            before = cpu_s(gw.pid)
            latency[name] = wrk(url, script, connections=1, threads=1, seconds=args.seconds)
            if not name.startswith("direct"):
                # CPU gearshift spent per request: unlike latency, not inflated by other load.
                spent_ms = (cpu_s(gw.pid) - before) * 1000
                latency[name]["gearshift_cpu_ms_per_request"] = round(
                    spent_ms / max(latency[name]["requests"], 1), 3
                )
        for name, stats in latency.items():
            if name.startswith("direct"):
                continue
            direct = latency["direct_bedrock" if name.endswith("bedrock") else "direct_anthropic"]
            if name == "anthropic->router":
                direct = latency["direct_bedrock"]  # the router's cheapest choice is nova
            stats["overhead_p50_ms"] = round(stats["p50_ms"] - direct["p50_ms"], 3)
        result["latency_c1"] = latency
        result["stream_ttfb"] = stream_ttfb(
            args.streams, an_port, br_port, gw_port, presigned_stream(br_url)
        )
        result["rss_mb"] = {"gearshift": rss_mb(gw.pid)}
        bad = {n: s["non_2xx"] for n, s in latency.items() if s["non_2xx"]}
        if bad:
            result["errors"] = bad
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
