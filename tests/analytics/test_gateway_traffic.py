"""End to end: known traffic through a real gearshift (uvicorn on loopback, the real ``openai``
client, a fake upstream), then ``gearshift report`` as a real command, ``/api/report`` and
``/metrics`` — every figure asserted exactly against the configured prices."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from tests.conftest import UvicornThread
from tests.fakes.openai_server import FakeOpenAIServer

from gearshift.api.app import create_app
from gearshift.config import parse_settings
from gearshift.ledger import open_store

D = Decimal
# The fake answers every call with 30 prompt and 12 completion tokens.
SMALL = D(30) * D("0.25") / 10**6 + D(12) * D("1.25") / 10**6  # 0.0000225
LARGE = D(30) * D(15) / 10**6 + D(12) * D(75) / 10**6  # 0.00135
ADMIN_KEY = "admin-secret-for-tests"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server  # type: ignore[misc]


def config(base_url: str, storage: str) -> dict[str, Any]:
    model = {"provider": "openai", "base_url": base_url}
    return {
        "models": [
            {
                **model,
                "name": "small",
                "tier": 1,
                "price": {"input_per_mtok": 0.25, "output_per_mtok": 1.25},
            },
            {
                **model,
                "name": "large",
                "model": "large-2025",
                "tier": 3,
                "price": {"input_per_mtok": 15, "output_per_mtok": 75},
            },
        ],
        "routers": [{"name": "auto", "models": ["small", "large"], "quality_tolerance": 0.1}],
        "storage": storage,
        "server": {"admin_key_env": "GEARSHIFT_TEST_ADMIN_KEY"},
    }


def send_traffic(client: openai.OpenAI) -> dict[str, str]:
    """Known traffic; returns the model that served each auto-routed request (by its id)."""
    ask = [{"role": "user", "content": "Reset my password please"}]
    helpdesk = {"x-gearshift-tags": "feature=helpdesk,team=support"}
    for _ in range(3):
        client.chat.completions.create(model="small", messages=ask, extra_headers=helpdesk)
    stream = client.chat.completions.create(
        model="small", messages=ask, stream=True, extra_headers=helpdesk
    )
    for _ in stream:
        pass
    for _ in range(2):
        client.chat.completions.create(
            model="large",
            messages=[{"role": "user", "content": "Summarise this contract"}],
            extra_headers={"x-gearshift-tags": "feature=summary,team=legal"},
        )
    served: dict[str, str] = {}
    for text in ("hi", "Prove that there are infinitely many primes, step by step."):
        raw = client.chat.completions.with_raw_response.create(
            model="auto",
            messages=[{"role": "user", "content": text}],
            extra_headers={"x-gearshift-tags": "feature=chat"},
        )
        served[raw.headers["x-request-id"]] = raw.headers["x-gearshift-model"]
    return served


def sample(lines: set[str], series: str) -> Decimal:
    values = [D(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(series + " ")]
    assert len(values) == 1, f"{series} not exposed exactly once"
    return values[0]


def test_report_matches_known_traffic(
    upstream: FakeOpenAIServer, ledger_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("GEARSHIFT_TEST_ADMIN_KEY", ADMIN_KEY)
    upstream.reset()
    settings = parse_settings(config(upstream.base_url, ledger_url))
    # The gateway opens the ledger itself and its batching writer records every request.
    with UvicornThread(create_app(settings)) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-x", max_retries=0)
        served = send_traffic(client)
        with open_store(ledger_url) as store:
            deadline = time.monotonic() + 15
            while store.count() < 8 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert store.count() == 8

        auto_cost = sum((SMALL if m == "small" else LARGE for m in served.values()), D(0))
        expected = {
            "helpdesk": (4, 4 * SMALL, 4 * SMALL),  # direct model: counterfactual is itself
            "summary": (2, 2 * LARGE, 2 * LARGE),
            "chat": (2, auto_cost, 2 * LARGE),  # routed: counterfactual is the large model
        }

        cfg = tmp_path / "gearshift.yaml"
        cfg.write_text(json.dumps(config(upstream.base_url, ledger_url)))
        command = [sys.executable, "-m", "gearshift", "report", "--config", str(cfg)]
        cli = subprocess.run(
            [*command, "--by", "feature", "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        report = json.loads(cli.stdout, parse_float=Decimal)
        got = {
            g["feature"]: (g["requests"], g["cost_usd"], g["counterfactual_cost_usd"])
            for g in report["groups"]
        }
        assert got == expected
        totals = report["totals"]
        assert totals["requests"] == 8
        assert totals["cost_usd"] == 4 * SMALL + 2 * LARGE + auto_cost
        assert totals["savings_usd"] == 2 * LARGE - auto_cost
        assert totals["prompt_tokens"] == 8 * 30 and totals["completion_tokens"] == 8 * 12
        n_small = 4 + list(served.values()).count("small")
        assert totals["tier_share"] == {
            k: v
            for k, v in {"1": round(n_small / 8, 4), "3": round((8 - n_small) / 8, 4)}.items()
            if v
        }

        # The running gateway serves the same report, behind the admin key.
        auth = {"authorization": f"Bearer {ADMIN_KEY}"}
        assert httpx.get(f"{server.url}/api/report?by=feature").status_code == 401
        api = httpx.get(f"{server.url}/api/report?by=feature", headers=auth)
        assert api.status_code == 200
        assert json.loads(api.text, parse_float=Decimal)["groups"] == report["groups"]

        metrics = httpx.get(f"{server.url}/metrics", headers=auth)
        assert metrics.status_code == 200
        lines = set(metrics.text.splitlines())
        assert 'gearshift_requests_total{router="",model="small",outcome="ok"} 4' in lines
        assert sample(lines, 'gearshift_cost_usd_total{router="",model="small"}') == 4 * SMALL
        assert 'gearshift_tag_requests_total{tag="feature",value="helpdesk"} 4' in lines
        assert 'gearshift_tokens_total{router="",model="large",type="prompt"} 60' in lines
        auto_saved = 2 * LARGE - auto_cost
        saved = sum(
            (
                D(line.rsplit(" ", 1)[1])
                for line in lines
                if line.startswith('gearshift_savings_usd_total{router="auto"')
            ),
            D(0),
        )
        assert saved == auto_saved


def report_json(cfg: Any, *args: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "gearshift", "report", "--config", str(cfg)]
    done = subprocess.run([*command, "--format", "json", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout, parse_float=Decimal)
    return parsed


def test_report_by_kind_has_the_figures_by_model_has(
    upstream: FakeOpenAIServer, ledger_url: str, tmp_path: Any
) -> None:
    """``--by kind`` splits the same requests as ``--by model``: tokens, latency percentiles,
    p95 cost, fallbacks and "could have been lighter" must all be there and add up the same."""
    upstream.reset()
    settings = parse_settings(config(upstream.base_url, ledger_url))
    prompts = [
        "hi",
        "Prove that there are infinitely many primes, step by step.",
        "Write a Python function that reverses a linked list.",
        "Summarise this paragraph in one sentence: the meeting moved to Friday.",
    ]
    with UvicornThread(create_app(settings)) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-x", max_retries=0)
        send_traffic(client)  # 6 direct requests (no prompt kind) and 2 routed ones
        for text in prompts * 2:
            client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": text}]
            )
        with open_store(ledger_url) as store:
            deadline = time.monotonic() + 15
            while store.count() < 16 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert store.count() == 16
            kinds_recorded = {r.prompt_kind for r in store.fetch()}
    assert len(kinds_recorded - {None}) >= 2  # the routed requests have kinds, several

    cfg = tmp_path / "gearshift.yaml"
    cfg.write_text(json.dumps(config(upstream.base_url, ledger_url)))
    by_kind, by_model = report_json(cfg, "--by", "kind"), report_json(cfg, "--by", "model")
    assert by_kind["totals"] == by_model["totals"]  # every total, percentiles included
    totals = by_kind["totals"]
    assert totals["requests"] == 16
    assert totals["prompt_tokens"] == 16 * 30 and totals["completion_tokens"] == 16 * 12
    for field in ("prompt_tokens", "completion_tokens", "requests", "fallbacks"):
        assert sum(g[field] for g in by_kind["groups"]) == sum(g[field] for g in by_model["groups"])
    assert sum(g["cost_usd"] for g in by_kind["groups"]) == totals["cost_usd"]
    assert sum(g["lighter_requests"] for g in by_kind["groups"]) == totals["lighter_requests"]
    for group in by_kind["groups"]:
        n = group["requests"]
        assert (group["prompt_tokens"], group["completion_tokens"]) == (30 * n, 12 * n)
        assert group["latency_p50_ms"] is not None and group["latency_p95_ms"] is not None
        assert group["latency_p50_ms"] <= group["latency_p80_ms"] <= group["latency_p95_ms"]
        assert group["p95_cost_usd"] in (SMALL, LARGE)  # every request costs one of the two
        # The same kind as a filter, grouped by model, adds up to the kind's row.
        per_model = report_json(cfg, "--by", "model", "--where", f"kind={group['kind']}")
        assert per_model["totals"]["requests"] == n
        assert per_model["totals"]["cost_usd"] == group["cost_usd"]
        assert per_model["totals"]["prompt_tokens"] == group["prompt_tokens"]
        assert per_model["totals"]["latency_p95_ms"] == group["latency_p95_ms"]
    kinds = {g["kind"] for g in by_kind["groups"]}
    assert "(unknown)" in kinds and len(kinds) >= 3  # direct requests carry no kind
