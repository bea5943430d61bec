"""Upstream answers are validated: an OpenAI 200 without choices, an Anthropic 200 without
content, a Bedrock 200 without output, and a stream frame that does not parse are the upstream
failing. Each is retried on the same model, then the router's fallback serves, and the ledger
records what happened; with nowhere left to go the client gets an upstream error (502 in OpenAI's
shape), never an empty success at $0."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.conftest import UvicornThread
from tests.dialects.conftest import mixed_config, wait_for

from gearshift.api.app import create_app
from gearshift.api.pipeline import Gateway
from gearshift.config import parse_settings
from gearshift.ledger.record import LedgerRecord

KINDS = ["oa", "an", "br"]
# Each kind's router falls back to the next kind.
FALLBACK = {"oa": "an", "an": "br", "br": "oa"}


class Running:
    def __init__(self, url: str, records: list[LedgerRecord]) -> None:
        self.url = url
        self.records = records

    def chat(self, model: str, *, stream: bool) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": stream}
        return httpx.post(f"{self.url}/v1/chat/completions", json=body, timeout=10)

    def record(self, response: httpx.Response) -> LedgerRecord:
        request_id = response.headers["x-request-id"]
        assert wait_for(lambda: any(r.id == request_id for r in self.records))
        [record] = [r for r in self.records if r.id == request_id]
        return record


@pytest.fixture
def gateway(upstreams: dict[str, Any], aws_env: None, tmp_path: Any) -> Iterator[Running]:
    config = mixed_config(
        upstreams["oa"].base_url,
        upstreams["an"].url,
        upstreams["br"].url,
        f"sqlite:///{tmp_path}/l.db",
    )
    config["models"] = [m for m in config["models"] if m["name"] in KINDS]
    for model in config["models"]:
        model["max_retries"] = 1
    config["routers"] = [
        {"name": f"via-{kind}", "models": [kind], "fallback": FALLBACK[kind]} for kind in KINDS
    ]
    settings = parse_settings(config)
    records: list[LedgerRecord] = []
    app = create_app(settings, gateway=Gateway(settings, observers=[records.append]))
    with UvicornThread(app) as server:
        yield Running(server.url, records)


def _answered(response: httpx.Response, stream: bool) -> bool:
    if stream:
        return response.status_code == 200 and "data: [DONE]" in response.text
    return response.status_code == 200 and bool(response.json()["choices"][0]["message"])


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_a_malformed_answer_is_retried(
    gateway: Running, upstreams: dict[str, Any], kind: str, stream: bool
) -> None:
    upstreams[kind].fail_next("malformed")
    response = gateway.chat(f"via-{kind}", stream=stream)
    assert _answered(response, stream), response.text
    record = gateway.record(response)
    assert (record.outcome, record.served_model, record.fallbacks) == ("ok", kind, [])
    assert record.cost_usd > 0


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_a_model_answering_malformed_falls_back(
    gateway: Running, upstreams: dict[str, Any], kind: str, stream: bool
) -> None:
    upstreams[kind].fail_next("malformed", times=2)  # the first try and its retry
    response = gateway.chat(f"via-{kind}", stream=stream)
    assert _answered(response, stream), response.text
    record = gateway.record(response)
    assert record.outcome == "ok" and record.served_model == FALLBACK[kind]
    assert record.fallbacks == [kind]
    assert response.headers["x-gearshift-fallbacks"] == kind


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_with_nowhere_to_go_it_is_an_upstream_error(
    gateway: Running, upstreams: dict[str, Any], kind: str, stream: bool
) -> None:
    upstreams[kind].fail_next("malformed", times=2)
    response = gateway.chat(kind, stream=stream)
    assert response.status_code == 502, response.text
    assert "the upstream's answer" in response.json()["error"]["message"]
    record = gateway.record(response)
    assert (record.outcome, record.status, record.cost_usd) == ("error", 502, 0)
    assert "the upstream's answer" in (record.error or "")
