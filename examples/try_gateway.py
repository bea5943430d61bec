"""See the gateway work without any key: a fake provider, gearshift, and a few help-desk prompts.

    .venv/bin/python examples/try_gateway.py            # from the repository root
    .venv/bin/python examples/try_gateway.py --keep     # then leave it running for the dashboard

It starts the fake OpenAI-compatible provider the test suite uses (tests/fakes, on loopback),
starts ``gearshift serve --config examples/gateway.yaml`` in a scratch folder (its ledger lands
there) on a free port (``--port N``: that one, refused if another server holds it), waits until
that gateway's ``/healthz/ready`` names the ``helpdesk`` router, sends help-desk prompts through the ``openai`` SDK to the ``helpdesk`` router, prints
which model each went to and the ``x-gearshift-*`` headers, then the ledger's report
(``gearshift report``) and the dashboard's address. The fake answers every prompt with the same
text: what matters here is where each prompt went and what it cost.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "gateway.yaml"
FAKE_PORT_IN_CONFIG = 9100
TAGS = "feature=helpdesk,team=support"

PROMPTS = [
    ("How do I reset my password?", None),
    (
        "Classify this support ticket. Reply with JSON only: "
        '{"category": one of [bug, billing, how_to], "priority": one of [low, high]}. '
        "Ticket: I was charged twice this month.",
        None,
    ),
    (
        "A customer on the Pro plan says invoices generated after our March migration show VAT "
        "computed on the discounted subtotal in some EU countries but not others. Walk through "
        "the likely causes, how to confirm each from logs, and draft a reply to the customer.",
        None,
    ),
    ("Translate 'Your invoice is ready' into French.", None),
    # The same easy prompt, with the client asking for the best model regardless of cost.
    ("How do I reset my password?", "0"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def wait_until_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until our own gateway answers ``/healthz/ready`` with the ``helpdesk`` router: a server
    that was already on the port (or ours failing to bind it) is an error, not a success."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gearshift serve exited with status {proc.returncode} (see above)")
        try:
            ready = httpx.get(f"{url}/healthz/ready", timeout=0.5)
            if ready.status_code == 200 and "helpdesk" in ready.json().get("routers", {}):
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"gearshift serve did not become ready at {url} within 30 s")


def wait_until_up(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start within 30 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="gateway port (default: any free)")
    parser.add_argument("--fake-port", type=int, default=0, help="fake provider port (any free)")
    parser.add_argument("--keep", action="store_true", help="keep serving until Ctrl-C")
    args = parser.parse_args()
    fake_port = args.fake_port or free_port()
    port = args.port or free_port()
    if port_in_use(port):
        raise SystemExit(
            f"port {port} is already in use (another server?): "
            "pass another --port, or leave --port out to use any free one"
        )
    work = Path(tempfile.mkdtemp(prefix="gearshift-example-"))
    config = work / "gateway.yaml"
    config.write_text(
        CONFIG.read_text().replace(f":{FAKE_PORT_IN_CONFIG}/", f":{fake_port}/"), encoding="utf-8"
    )
    python = sys.executable
    fake = subprocess.Popen(
        [python, "-m", "tests.fakes.openai_server", "--port", str(fake_port)], cwd=ROOT
    )
    serve = ["serve", "--config", str(config), "--port", str(port), "--log-level", "warning"]
    gateway = subprocess.Popen([python, "-m", "gearshift", *serve], cwd=work)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"http://127.0.0.1:{fake_port}/v1/models", fake, "the fake provider")
        wait_until_ready(url, gateway)
        print(f"gateway: {url} (router helpdesk)\n")
        ask(url)
        if gateway.poll() is not None:  # it lost the port to another server while starting
            raise SystemExit(f"gearshift serve exited with status {gateway.returncode} (see above)")
        dashboard = httpx.get(f"{url}/dashboard", timeout=10)
        print(f"\ndashboard: {url}/dashboard (HTTP {dashboard.status_code})")
        if args.keep:
            print("serving until Ctrl-C")
            gateway.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (gateway, fake):
            proc.terminate()  # gearshift writes every ledger row before it exits
            proc.wait(15)
    print(f"\nThe ledger, {work / 'gearshift.db'} (gearshift report --by model):\n", flush=True)
    report = [python, "-m", "gearshift", "report", "--config", str(config), "--by", "model"]
    return subprocess.run(report, cwd=work, check=False).returncode


def ask(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="no-key-needed", max_retries=0)
    print(f"{'model':<12} {'cost USD':>10} {'saved USD':>10}  prompt")
    for prompt, tolerance in PROMPTS:
        headers = {"x-gearshift-tags": TAGS}
        if tolerance is not None:
            headers["x-gearshift-quality-tolerance"] = tolerance
        raw = client.chat.completions.with_raw_response.create(
            model="helpdesk",
            messages=[{"role": "user", "content": prompt}],
            extra_headers=headers,
        )
        raw.parse()  # the answer itself (the fake's fixed text)
        h = raw.headers
        note = f" [tolerance {tolerance}]" if tolerance is not None else ""
        print(
            f"{h['x-gearshift-model']:<12} {h['x-gearshift-cost-usd']:>10} "
            f"{h['x-gearshift-saved-usd']:>10}  {prompt[:60]}{note}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
