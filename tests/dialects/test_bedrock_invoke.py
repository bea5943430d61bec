"""Bedrock InvokeModel / InvokeModelWithResponseStream with Anthropic-format bodies, through the
real boto3 client, answered by every provider kind."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import botocore.exceptions
import pytest
from tests.dialects.conftest import PRICES, TEXTS, Gearshift
from tests.dialects.sdk_calls import QUESTION, bedrock_client

KINDS = ("oa", "an", "br")
UNCACHED_INPUT = {"oa": 30, "an": 21, "br": 21}
OUTPUT = {"oa": 12, "an": 9, "br": 9}


def claude_body(**extra: Any) -> str:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 200,
        "system": "Answer briefly.",
        "messages": [{"role": "user", "content": QUESTION}],
        **extra,
    }
    return json.dumps(body)


def cost(kind: str) -> Decimal:
    price = PRICES[kind]
    total = UNCACHED_INPUT[kind] * Decimal(str(price["input_per_mtok"]))
    total += OUTPUT[kind] * Decimal(str(price["output_per_mtok"]))
    return total / Decimal(1_000_000)


@pytest.mark.parametrize("kind", KINDS)
def test_invoke_model(gearshift: Gearshift, upstreams: dict[str, Any], kind: str) -> None:
    response = bedrock_client(gearshift.url).invoke_model(
        modelId=kind, body=claude_body(), contentType="application/json"
    )
    message = json.loads(response["body"].read())
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [{"type": "text", "text": TEXTS[kind]}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == UNCACHED_INPUT[kind]
    assert message["usage"]["output_tokens"] == OUTPUT[kind]
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == str(UNCACHED_INPUT[kind])
    assert headers["x-amzn-bedrock-output-token-count"] == str(OUTPUT[kind])
    assert headers["x-gearshift-model"] == kind
    if kind == "an":
        sent = upstreams["an"].received[-1].body
        assert "anthropic_version" not in sent  # a Bedrock-only field, not the Messages API's
        assert sent["system"] == "Answer briefly." and sent["model"] == "claude-fake-haiku"
    (record,) = gearshift.wait_records(1)
    assert record.dialect == "bedrock" and record.served_model == kind
    assert record.cost_usd == cost(kind) > 0


@pytest.mark.parametrize("kind", KINDS)
def test_invoke_model_with_response_stream(
    gearshift: Gearshift, upstreams: dict[str, Any], kind: str
) -> None:
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    response = bedrock_client(gearshift.url).invoke_model_with_response_stream(
        modelId=kind, body=claude_body(tools=tools)
    )
    events = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    start = next(e for e in events if e["type"] == "content_block_start")
    assert start["content_block"]["type"] == "tool_use"
    assert start["content_block"]["name"] == "get_weather"
    arguments = "".join(
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(arguments) == {"city": "Paris"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    invocation = events[-1]["amazon-bedrock-invocationMetrics"]
    assert invocation["inputTokenCount"] == UNCACHED_INPUT[kind]
    assert invocation["outputTokenCount"] == OUTPUT[kind]
    (record,) = gearshift.wait_records(1)
    assert record.stream and record.served_model == kind
    assert record.cost_usd == cost(kind) > 0


def test_invoke_through_a_router_arn(gearshift: Gearshift) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/auto"
    client = bedrock_client(gearshift.url, {"x-gearshift-quality-tolerance": "1"})
    response = client.invoke_model(modelId=arn, body=claude_body())
    assert json.loads(response["body"].read())["content"][0]["text"] == TEXTS["oa"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-gearshift-router"] == "auto"


def test_other_model_families_are_pointed_to_converse(gearshift: Gearshift) -> None:
    titan = json.dumps({"inputText": "Hi", "textGenerationConfig": {"maxTokenCount": 50}})
    with pytest.raises(botocore.exceptions.ClientError) as error:
        bedrock_client(gearshift.url).invoke_model(modelId="br", body=titan)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert "use Converse" in error.value.response["Error"]["Message"]


def test_mid_stream_failure_is_an_exception_event(
    gearshift: Gearshift, upstreams: dict[str, Any]
) -> None:
    upstreams["an"].fail_next("break")
    response = bedrock_client(gearshift.url).invoke_model_with_response_stream(
        modelId="an", body=claude_body()
    )
    seen: list[str] = []
    with pytest.raises(botocore.exceptions.EventStreamError):
        for event in response["body"]:
            seen.append(json.loads(event["chunk"]["bytes"])["type"])
    assert "content_block_delta" in seen and "message_stop" not in seen
