"""Gateway overhead and throughput, side by side with LiteLLM's proxy, in one run.

Starts, as separate processes on loopback: the fake OpenAI-compatible provider
(tests/fakes/openai_server.py), ``gearshift serve`` with issue 3's configuration (routing and the
SQLite ledger on), and, when ``--litellm`` names its binary, LiteLLM's proxy pointed at the same
fake. Load comes from ``wrk`` (same tool, same body, for every target). Prints one JSON object:

- ``latency_c1``: p50/p90/p99 at one connection, direct to the fake and through each gateway;
  overhead = gateway p50 - direct p50;
- ``throughput``: requests/s at ``--connections`` connections for each target;
- ``stream_ttfb``: time to the first content event of a streamed answer, direct vs gearshift;
- ``rss_mb``: gearshift's resident memory after ``--total`` requests (and LiteLLM's, idle and
  after its load);
- ``otlp`` (with ``--otlp``): a second gearshift with OpenTelemetry on, exporting to an OTLP/HTTP
  sink on loopback; p50 at one connection and CPU per request, tracing off vs on, alternating
  rounds (``--otlp-only`` stops after it).

    .venv/bin/python bench/gateway_overhead.py --litellm /tmp/litellm-venv/bin/litellm
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from processes import first_chunk_ms, free_port, serve_command, wait_http

ROOT = Path(__file__).resolve().parent.parent
PROMPT = (
    "Our customer says the export to CSV button on the billing page does nothing since "
    "yesterday's release. Summarise the likely causes and list the first three checks "
    "support should run before escalating to engineering."
)


LITELLM_KEY = "sk-" + "5f" * 32


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn/LiteLLM may fork workers)."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        pids += [int(p) for p in out.stdout.split()]
    except FileNotFoundError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used: unlike latency, not inflated by other
    load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str, script: Path, *, connections: int, threads: int, seconds: float
) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    result["requests"] = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = int(errors.group(1)) if errors else 0
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        result["socket_errors"] = socket_errors.group(1)
    for pct in ("50", "90", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out)
        if m:
            value = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            result[f"p{pct}_ms"] = round(value, 3)
    return result


def wrk_script(path: Path, model: str, *, key: str = "sk-bench") -> Path:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": PROMPT}]})
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    return path


def stream_ttfb_ms(port: int, path: str, model: str, n: int) -> list[float]:
    """Sequential streamed requests on one keep-alive connection: ms from sending the request
    to reading the first content event."""
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    ).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return first_chunk_ms(port, head + body, n, _has_content)


def _has_content(data: bytes) -> bool:
    """The first event that carries text (not the empty role-only opening event)."""
    compact = data.replace(b'"delta": {"content": "', b'"delta":{"content":"')
    return b'"delta":{"content":"' in compact


def measure_otlp(
    procs: Procs,
    config: dict[str, Any],
    tmp: Path,
    gw_off: subprocess.Popen[bytes],
    off_url: str,
    script: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The same gateway with OpenTelemetry exporting to a loopback OTLP/HTTP sink, against the
    one with tracing off: one connection, alternating rounds, p50 and CPU per request."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = {"exports": 0, "bytes": 0}

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received["bytes"] += len(self.rfile.read(int(self.headers["Content-Length"])))
            received["exports"] += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    traced = {**config, "telemetry": {"otlp_endpoint": f"http://127.0.0.1:{sink.server_port}"}}
    traced["storage"] = f"sqlite:///{tmp}/gearshift-otlp.db"
    (tmp / "gearshift-otlp.yaml").write_text(yaml.safe_dump(traced))
    port = free_port()
    gw_on = procs.start(
        serve_command(tmp / "gearshift-otlp.yaml", port),
        env={**os.environ, "LARGE_API_KEY": "sk-bench-large"},
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", gw_on)
    on_url = f"http://127.0.0.1:{port}/v1/chat/completions"
    wrk(on_url, script, connections=4, threads=1, seconds=2)
    rounds = []
    for _ in range(args.rounds):
        row: dict[str, Any] = {}
        for name, url, proc in (("off", off_url, gw_off), ("on", on_url, gw_on)):
            before = cpu_s(proc.pid)
            run = wrk(url, script, connections=1, threads=1, seconds=args.seconds)
            row[f"{name}_p50_ms"] = run["p50_ms"]
            row[f"{name}_cpu_ms_per_request"] = round(
                (cpu_s(proc.pid) - before) * 1000 / max(run["requests"], 1), 3
            )
        row["overhead_p50_ms"] = round(row["on_p50_ms"] - row["off_p50_ms"], 3)
        row["overhead_cpu_ms"] = round(
            row["on_cpu_ms_per_request"] - row["off_cpu_ms_per_request"], 3
        )
        rounds.append(row)
    sink.shutdown()
    return {
        "rounds": rounds,
        "overhead_p50_ms": statistics.median(r["overhead_p50_ms"] for r in rounds),
        "overhead_cpu_ms_per_request": statistics.median(r["overhead_cpu_ms"] for r in rounds),
        "sink": received,
    }


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))], 3)


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=kw.pop("stderr", subprocess.DEVNULL), **kw
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()


def start_litellm(
    procs: Procs, binary: str, fake_url: str, tmp: Path
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = {
        "model_list": [
            {
                "model_name": "small",
                "litellm_params": {"model": "openai/small", "api_base": fake_url, "api_key": "x"},
            }
        ],
        "litellm_settings": {"telemetry": False, "drop_params": True},
        # LiteLLM refuses to start without a master key; wrk sends it as the bearer token.
        "general_settings": {"master_key": LITELLM_KEY},
    }
    path = tmp / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no price download at start-up (offline)
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
    }
    log = open(tmp / "litellm.log", "wb")  # noqa: SIM115 - kept open for the process's life
    proc = procs.start(
        [
            binary,
            "--config",
            str(path),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--num_workers",
            "1",
        ],
        env=env,
        stderr=log,
    )
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, timeout=180)
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--total", type=int, default=100_000, help="requests before reading RSS")
    parser.add_argument("--stream-requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating direct/gateway rounds")
    parser.add_argument("--litellm", default=None, help="path to LiteLLM's `litellm` binary")
    parser.add_argument("--otlp", action="store_true", help="also measure tracing on vs off")
    parser.add_argument("--otlp-only", action="store_true", help="only the tracing comparison")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench needs wrk (apt-get install wrk)")

    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="gs-overhead-"))
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    try:
        fake_port = free_port()
        fake = procs.start(
            [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(fake_port)],
            cwd=ROOT,
        )
        fake_url = f"http://127.0.0.1:{fake_port}/v1"
        wait_http(f"{fake_url}/models", fake)

        gw_port = free_port()
        config = yaml.safe_load((ROOT / "bench" / "gateway_config.yaml").read_text())
        for model in config["models"]:
            model["base_url"] = fake_url
        config["storage"] = f"sqlite:///{tmp}/gearshift.db"
        (tmp / "gearshift.yaml").write_text(yaml.safe_dump(config))
        gw = procs.start(
            serve_command(tmp / "gearshift.yaml", gw_port),
            env={**os.environ, "LARGE_API_KEY": "sk-bench-large"},
        )
        wait_http(f"http://127.0.0.1:{gw_port}/healthz", gw)
        result["rss_mb"] = {"gearshift_idle": rss_mb(gw.pid)}

        direct_script = wrk_script(tmp / "direct.lua", "small")
        router_script = wrk_script(tmp / "router.lua", "auto")
        direct_url = f"{fake_url}/chat/completions"
        gw_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"

        # Warm up both paths (connection pools, first-call imports).
        wrk(gw_url, router_script, connections=4, threads=1, seconds=2)
        served = 0
        # Direct and through-gearshift runs alternate, several rounds, so that load from other
        # processes on the machine hits both sides alike; the overhead is the median over rounds.
        c1: dict[str, Any] = {"rounds": []}
        for _ in range(args.rounds):
            direct = wrk(direct_url, direct_script, connections=1, threads=1, seconds=args.seconds)
            through = wrk(gw_url, router_script, connections=1, threads=1, seconds=args.seconds)
            served += through["requests"]
            c1["rounds"].append(
                {
                    "direct": direct,
                    "gearshift": through,
                    "overhead_p50_ms": round(through["p50_ms"] - direct["p50_ms"], 3),
                }
            )
        c1["gearshift_overhead_p50_ms"] = statistics.median(
            r["overhead_p50_ms"] for r in c1["rounds"]
        )
        result["latency_c1"] = c1
        if args.otlp or args.otlp_only:
            result["otlp"] = measure_otlp(procs, config, tmp, gw, gw_url, router_script, args)
            if args.otlp_only:
                print(json.dumps(result, indent=2))
                return

        stream_ttfb_ms(gw_port, "/v1/chat/completions", "auto", 100)  # warm the stream path
        ttfb: dict[str, Any] = {"rounds": []}
        per_round = max(1, args.stream_requests // args.rounds)
        for _ in range(args.rounds):
            direct_ttfb = stream_ttfb_ms(fake_port, "/v1/chat/completions", "small", per_round)
            gw_ttfb = stream_ttfb_ms(gw_port, "/v1/chat/completions", "auto", per_round)
            served += per_round
            ttfb["rounds"].append(
                {
                    "direct_p50_ms": percentile(direct_ttfb, 50),
                    "gearshift_p50_ms": percentile(gw_ttfb, 50),
                    "overhead_p50_ms": round(
                        percentile(gw_ttfb, 50) - percentile(direct_ttfb, 50), 3
                    ),
                }
            )
        ttfb["overhead_p50_ms"] = statistics.median(r["overhead_p50_ms"] for r in ttfb["rounds"])
        result["stream_ttfb"] = ttfb

        tput: dict[str, Any] = {"connections": args.connections}
        conn, threads = args.connections, 2
        tput["direct"] = wrk(
            direct_url, direct_script, connections=conn, threads=threads, seconds=args.seconds
        )
        cpu_before = cpu_s(gw.pid)
        tput["gearshift"] = wrk(
            gw_url, router_script, connections=conn, threads=threads, seconds=args.seconds
        )
        tput["gearshift_cpu_ms_per_request"] = round(
            (cpu_s(gw.pid) - cpu_before) * 1000 / max(tput["gearshift"]["requests"], 1), 3
        )
        served += tput["gearshift"]["requests"]
        result["throughput"] = tput

        # Load until at least --total requests have gone through gearshift, then read its RSS.
        soak: list[dict[str, Any]] = []
        while served < args.total:
            rate = max(tput["gearshift"]["rps"], 100.0)
            seconds = (args.total - served) / rate * 1.1 + 1
            more = wrk(gw_url, router_script, connections=conn, threads=threads, seconds=seconds)
            served += more["requests"]
            soak.append(more)  # the long runs to --total: their errors count too
        result["soak"] = soak
        result["rss_mb"]["gearshift_after_requests"] = served
        result["rss_mb"]["gearshift_after"] = rss_mb(gw.pid)

        if args.litellm:
            litellm, ll_port = start_litellm(procs, args.litellm, fake_url, tmp)
            result["rss_mb"]["litellm_idle"] = rss_mb(litellm.pid)
            ll_url = f"http://127.0.0.1:{ll_port}/v1/chat/completions"
            plain_script = direct_script
            direct_script = wrk_script(tmp / "litellm.lua", "small", key=LITELLM_KEY)
            wrk(ll_url, direct_script, connections=4, threads=1, seconds=2)
            c1["litellm"] = wrk(
                ll_url, direct_script, connections=1, threads=1, seconds=args.seconds
            )
            # A direct run right before, so LiteLLM's overhead is taken under the same load.
            c1["litellm_direct"] = wrk(
                direct_url, plain_script, connections=1, threads=1, seconds=args.seconds
            )
            c1["litellm_overhead_p50_ms"] = round(
                c1["litellm"]["p50_ms"] - c1["litellm_direct"]["p50_ms"], 3
            )
            tput["litellm"] = wrk(
                ll_url, direct_script, connections=conn, threads=threads, seconds=args.seconds
            )
            tput["gearshift_vs_litellm"] = round(
                tput["gearshift"]["rps"] / max(tput["litellm"]["rps"], 1e-9), 1
            )
            result["rss_mb"]["litellm_after_load"] = rss_mb(litellm.pid)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
