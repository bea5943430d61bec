"""Every request whose body parses is one ledger row, also when it is never served: refused by
validation (``invalid``), by a key or a budget (``rejected``, the key never stored), or failed by
a bug of ours at the HTTP edge (``error``, 500). Same assertions on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import Running, issue_config
from tests.gateway.test_ledger_rows import POSTGRES_URL, storages

from gearshift.ledger.record import LedgerRecord
from gearshift.policy.keys import KeyStore

HI = [{"role": "user", "content": "Hi"}]
BOGUS_KEY = "gs-this-key-was-never-issued-0123456789"


@pytest.fixture(params=storages())
def start(
    request: pytest.FixtureRequest,
    start_gateway: Callable[..., Running],
    upstream: FakeOpenAIServer,
) -> Callable[..., Running]:
    def run(**overrides: Any) -> Running:
        config = issue_config(upstream.base_url, **overrides)
        if request.param == "postgresql":
            config["storage"] = POSTGRES_URL
        else:
            config.pop("storage")
        return start_gateway(config)

    return run


def _row(gateway: Running, response: httpx.Response) -> LedgerRecord:
    request_id = response.headers["x-request-id"]
    rows = gateway.ledger_rows([request_id])
    assert len(rows) == 1, f"request {request_id} must be exactly one ledger row"
    return rows[0]


def test_validation_refusals_are_rows_in_every_dialect(start: Callable[..., Running]) -> None:
    gateway = start()
    tags = {"x-gearshift-tags": "team=support"}
    cases = [
        ("/v1/chat/completions", {"model": "auto", "messages": [{"role": {}, "content": "hi"}]}),
        ("/v1/messages", {"model": "auto", "max_tokens": 5, "messages": HI, "system": [True]}),
        ("/model/auto/converse", {"messages": HI, "toolConfig": {"tools": 5}}),
        ("/v1/embeddings", {"model": "small"}),
    ]
    dialects = []
    for path, body in cases:
        response = httpx.post(gateway.url + path, json=body, headers=tags, timeout=10)
        assert response.status_code == 400, response.text
        row = _row(gateway, response)
        dialects.append(row.dialect)
        assert (row.outcome, row.status) == ("invalid", 400)
        assert row.requested_model == ("small" if "embeddings" in path else "auto")
        assert row.tags == {"team": "support"}
        assert row.error and row.cost_usd == 0 and row.served_model is None
    assert dialects == ["openai", "anthropic", "bedrock", "openai"]


def test_a_bad_header_is_a_row_and_a_non_json_body_is_not(start: Callable[..., Running]) -> None:
    gateway = start()
    bad_tolerance = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "auto", "messages": HI},
        headers={"x-gearshift-quality-tolerance": "lots"},
        timeout=10,
    )
    assert bad_tolerance.status_code == 400
    assert _row(gateway, bad_tolerance).outcome == "invalid"
    for parses in (b"null", b"5", b"[]"):  # JSON, just not an object: a row like any other
        refused = httpx.post(gateway.url + "/v1/chat/completions", content=parses, timeout=10)
        assert refused.status_code == 400
        assert _row(gateway, refused).outcome == "invalid"
    not_json = httpx.post(gateway.url + "/v1/chat/completions", content=b"{nope", timeout=10)
    assert not_json.status_code == 400
    assert gateway.ledger_rows([not_json.headers["x-request-id"]]) == []


def test_an_overlong_model_is_refused_and_not_stored(start: Callable[..., Running]) -> None:
    gateway = start()
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "m" * 10_000, "messages": HI},
        timeout=10,
    )
    assert response.status_code == 400
    row = _row(gateway, response)
    assert row.outcome == "invalid" and len(row.requested_model) == 256


def test_a_bug_at_the_edge_is_a_500_row(
    start: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = start()

    def broken(body: Any) -> Any:
        raise RuntimeError("bug in a codec")

    monkeypatch.setattr("gearshift.api.openai.parse_request", broken)
    response = httpx.post(
        gateway.url + "/v1/chat/completions", json={"model": "auto", "messages": HI}, timeout=10
    )
    assert response.status_code == 500
    row = _row(gateway, response)
    assert (row.outcome, row.status, row.requested_model) == ("error", 500, "auto")


def test_key_and_budget_refusals_are_rows_without_the_key(start: Callable[..., Running]) -> None:
    gateway = start(
        policy={
            "auth": "required",
            "budgets": [{"name": "tiny", "scope": {}, "period": "day", "limit_usd": 0.000001}],
        }
    )
    unknown = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "auto", "messages": HI},
        headers={"authorization": f"Bearer {BOGUS_KEY}"},
        timeout=10,
    )
    assert unknown.status_code == 401
    row = _row(gateway, unknown)
    assert (row.outcome, row.status, row.key_id) == ("rejected", 401, None)
    assert BOGUS_KEY not in repr(row)

    store = KeyStore.open(gateway.app.settings.storage)
    try:
        secret, key = store.create(name="t")
    finally:
        store.close()
    refused = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "auto", "messages": HI},
        headers={"authorization": f"Bearer {secret}"},
        timeout=10,
    )
    assert refused.status_code == 429, refused.text
    row = _row(gateway, refused)
    assert (row.outcome, row.status) == ("rejected", 429)
    assert row.key_id == key.id and secret not in repr(row)
