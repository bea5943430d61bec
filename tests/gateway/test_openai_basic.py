"""The OpenAI dialect end to end with the real openai client: gearshift on loopback, a fake
OpenAI-compatible upstream behind it."""

from __future__ import annotations

from decimal import Decimal

from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import LARGE_KEY, Running


def test_concrete_model_non_streaming(gateway: Running, upstream: FakeOpenAIServer) -> None:
    client = gateway.client()
    raw = client.chat.completions.with_raw_response.create(
        model="large",
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
        temperature=0.2,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from the fake OpenAI provider."
    assert raw.headers["x-gearshift-model"] == "large"
    # 30 prompt tokens at $15/M + 12 completion tokens at $75/M
    assert Decimal(raw.headers["x-gearshift-cost-usd"]) == Decimal("0.00135")
    assert raw.headers["x-request-id"]
    sent = upstream.received[-1]
    assert sent.body["model"] == "large-2025"
    assert sent.body["messages"][0] == {"role": "system", "content": "Be terse."}
    assert sent.body["temperature"] == 0.2
    assert sent.headers["Authorization"] == f"Bearer {LARGE_KEY}"
    [record] = gateway.wait_records(1)
    assert record.served_model == "large"
    assert record.cost_usd == Decimal("0.00135")
    assert record.outcome == "ok"


def test_concrete_model_streaming(gateway: Running, upstream: FakeOpenAIServer) -> None:
    client = gateway.client()
    stream = client.chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = ""
    usage = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert text == "Hello from the fake OpenAI provider."
    assert usage is not None and usage.prompt_tokens == 30
    [record] = gateway.wait_records(1)
    assert record.stream is True
    assert record.cost_usd == Decimal("0.00002250")
