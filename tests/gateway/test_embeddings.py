"""``POST /v1/embeddings`` passes through to a configured OpenAI-compatible model, priced and
recorded like any call (so an app can point all of its OpenAI client at gearshift)."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import LARGE_KEY, Running


def test_embeddings_pass_through_priced_and_recorded(
    gateway: Running, upstream: FakeOpenAIServer
) -> None:
    raw = gateway.client().embeddings.with_raw_response.create(
        model="large", input=["first text", "second text"], dimensions=3
    )
    result = raw.parse()
    assert [d.embedding for d in result.data] == [[0.25, -0.5, 0.0], [0.25, -0.5, 1.0]]
    sent = upstream.received[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.body == {
        "model": "large-2025",
        "input": ["first text", "second text"],
        "dimensions": 3,
        "encoding_format": "base64",  # what the openai SDK asks for by default
    }
    assert sent.headers["Authorization"] == f"Bearer {LARGE_KEY}"
    assert raw.headers["x-gearshift-model"] == "large"
    assert Decimal(raw.headers["x-gearshift-cost-usd"]) == Decimal("0.00045")  # 30 x $15/M
    [record] = gateway.wait_records(1)
    assert (record.prompt_tokens, record.completion_tokens) == (30, 0)
    assert record.cost_usd == Decimal("0.00045") and record.outcome == "ok"


def test_embeddings_retry_and_refuse_routers(gateway: Running, upstream: FakeOpenAIServer) -> None:
    client = gateway.client()
    upstream.fail_next(503)
    assert len(client.embeddings.create(model="small", input="x").data) == 1
    assert len(upstream.received) == 2
    with pytest.raises(openai.BadRequestError, match="is a router"):
        client.embeddings.create(model="auto", input="x")
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nope", input="x")
    records = gateway.wait_records(3)
    assert [(r.outcome, r.status) for r in records] == [
        ("ok", 200),
        ("invalid", 400),
        ("invalid", 404),
    ]
