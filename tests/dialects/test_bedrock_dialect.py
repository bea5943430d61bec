"""Bedrock Converse dialect specifics with the real boto3 client: router ARNs, the prompt-router
trace, model id resolution, errors in Bedrock's shape, exceptions inside the event stream."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import httpx
import pytest
from tests.dialects.conftest import TEXTS, Gearshift
from tests.dialects.sdk_calls import QUESTION, ask, bedrock_client

ROUTER_ARN = "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/auto"
CHEAPEST = {"x-gearshift-quality-tolerance": "1"}


def converse_kwargs(model_id: str) -> dict[str, Any]:
    return {"modelId": model_id, "messages": [{"role": "user", "content": [{"text": QUESTION}]}]}


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse_stream"])
def test_router_arn_gets_prompt_router_trace(gearshift: Gearshift, stream: bool) -> None:
    answer = ask("bedrock", gearshift.url, ROUTER_ARN, stream=stream, headers=CHEAPEST)
    assert answer.text == TEXTS["oa"]
    assert answer.trace == {"promptRouter": {"invokedModelId": "oa"}}
    (record,) = gearshift.wait_records(1)
    assert record.requested_model == "auto" and record.router == "auto"


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse_stream"])
def test_plain_router_name_and_concrete_models(gearshift: Gearshift, stream: bool) -> None:
    routed = ask("bedrock", gearshift.url, "auto", stream=stream, headers=CHEAPEST)
    assert routed.trace == {"promptRouter": {"invokedModelId": "oa"}}
    direct = ask("bedrock", gearshift.url, "an", stream=stream)
    assert direct.text == TEXTS["an"] and direct.trace is None


def test_upstream_model_id_and_foundation_model_arn_resolve(
    gearshift: Gearshift, upstreams: dict[str, Any]
) -> None:
    by_id = ask("bedrock", gearshift.url, "claude-fake-haiku")
    arn = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-fake-v1:0"
    by_arn = ask("bedrock", gearshift.url, arn)
    assert by_id.headers["x-gearshift-model"] == "an"
    assert by_arn.headers["x-gearshift-model"] == "br"
    assert len(upstreams["br"].received) == 1


def test_unknown_model_is_resource_not_found(gearshift: Gearshift) -> None:
    client = bedrock_client(gearshift.url)
    with pytest.raises(botocore.exceptions.ClientError) as error:
        client.converse(**converse_kwargs("no-such-model"))
    response = error.value.response
    assert response["Error"]["Code"] == "ResourceNotFoundException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "no-such-model" in response["Error"]["Message"]
    assert "auto" in response["Error"]["Message"]  # says what is configured
    with pytest.raises(botocore.exceptions.ClientError) as stream_error:
        client.converse_stream(**converse_kwargs("no-such-model"))
    assert stream_error.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_bad_bodies_are_validation_exceptions(gearshift: Gearshift) -> None:
    url = f"{gearshift.url}/model/auto/converse"
    cases = [
        b"{not json",
        b'{"messages": []}',
        b'{"messages": [{"role": "system", "content": [{"text": "x"}]}]}',
        b'{"messages": [{"role": "user", "content": [{"text": "x"}]}],'
        b' "inferenceConfig": {"maxTokens": -1}}',
    ]
    for body in cases:
        response = httpx.post(url, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, body
        assert response.headers["x-amzn-errortype"] == "ValidationException"
        assert set(response.json()) == {"message"} and response.json()["message"]
    # Refused before anything was routed: one row each for the bodies that parse (invalid).
    records = gearshift.wait_records(3)
    time.sleep(0.2)
    assert [(r.outcome, r.status, r.dialect) for r in records] == [("invalid", 400, "bedrock")] * 3
    assert all(r.served_model is None and r.requested_model == "auto" for r in records)


def test_all_upstreams_failing_is_service_unavailable(
    gearshift: Gearshift, upstreams: dict[str, Any]
) -> None:
    upstreams["an"].fail_next(500)
    upstreams["br"].fail_next(503)
    client = bedrock_client(gearshift.url, CHEAPEST)
    with pytest.raises(botocore.exceptions.ClientError) as error:
        client.converse(**converse_kwargs("an-br"))
    assert error.value.response["Error"]["Code"] == "ServiceUnavailableException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    (record,) = gearshift.wait_records(1)
    assert record.outcome == "error" and record.fallbacks == ["an", "br"]


@pytest.mark.parametrize("kind", ["oa", "an", "br"])
def test_mid_stream_failure_is_an_exception_event(
    gearshift: Gearshift, upstreams: dict[str, Any], kind: str
) -> None:
    upstreams[kind].fail_next("break")
    client = bedrock_client(gearshift.url)
    response = client.converse_stream(**converse_kwargs(kind))
    text = ""
    with pytest.raises(botocore.exceptions.EventStreamError) as error:
        for event in response["stream"]:
            if "contentBlockDelta" in event:
                text += event["contentBlockDelta"]["delta"]["text"]
    assert text and TEXTS[kind].startswith(text)  # bytes flowed before the break
    assert error.value.response["Error"]["Code"] in (
        "serviceUnavailableException",
        "modelStreamErrorException",
    )
    (record,) = gearshift.wait_records(1)
    assert record.outcome == "error" and record.stream


def test_signature_is_not_verified(gearshift: Gearshift) -> None:
    body = b'{"messages": [{"role": "user", "content": [{"text": "hi"}]}]}'
    response = httpx.post(
        f"{gearshift.url}/model/oa/converse",
        content=body,
        headers={
            "content-type": "application/json",
            "authorization": "AWS4-HMAC-SHA256 Credential=X/20250101/us-east-1/bedrock/"
            "aws4_request, SignedHeaders=host, Signature=00",
        },
    )
    assert response.status_code == 200
    assert response.json()["output"]["message"]["content"] == [{"text": TEXTS["oa"]}]
    assert response.json()["stopReason"] == "end_turn"


def test_tool_result_turn_through_another_provider(
    gearshift: Gearshift, upstreams: dict[str, Any]
) -> None:
    client = bedrock_client(gearshift.url)
    tools = {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "inputSchema": {"json": {"type": "object"}},
                }
            }
        ]
    }
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"text": QUESTION}]}]
    first = client.converse(modelId="an", messages=messages, toolConfig=tools)
    assert first["stopReason"] == "tool_use"
    use = first["output"]["message"]["content"][0]["toolUse"]
    messages += [
        first["output"]["message"],
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"t": 18}}]}}
            ],
        },
    ]
    second = client.converse(modelId="an", messages=messages, toolConfig=tools)
    assert second["output"]["message"]["content"] == [{"text": TEXTS["an"]}]
    turns = upstreams["an"].received[-1].body["messages"]
    assert turns[1]["content"][0]["type"] == "tool_use"
    assert turns[2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": use["toolUseId"],
        "content": [{"type": "text", "text": '{"t":18}'}],
    }


def test_virtual_key_from_a_header(start_gearshift: Callable[..., Gearshift]) -> None:
    from tests.dialects.test_anthropic_dialect import KeyRecordingPolicy

    policy = KeyRecordingPolicy()
    gearshift = start_gearshift(policy)
    # boto3 signs with SigV4 (ignored); the virtual key rides in x-api-key, added by an event
    # hook (behind TLS, AWS_BEARER_TOKEN_BEDROCK makes boto3 send "Authorization: Bearer").
    client = bedrock_client(gearshift.url, {"x-api-key": "gs-key-1"})
    client.converse(**converse_kwargs("oa"))
    response = httpx.post(
        f"{gearshift.url}/model/oa/converse",
        json=converse_kwargs("oa") | {"modelId": None},
        headers={"authorization": "Bearer gs-key-1"},
    )
    assert response.status_code == 200
    assert policy.seen == ["gs-key-1", "gs-key-1"]
    records = gearshift.wait_records(2)
    assert [(r.key_id, r.dialect) for r in records] == [("key-1", "bedrock")] * 2


def test_attribution_tags_from_request_metadata_and_header(gearshift: Gearshift) -> None:
    client = bedrock_client(gearshift.url, {"x-gearshift-tags": "team=support,feature=chat"})
    client.converse(
        **converse_kwargs("oa"), requestMetadata={"feature": "search", "tenant": "acme"}
    )
    (record,) = gearshift.wait_records(1)
    # The platform's header wins over the application's body on the same key.
    assert record.tags == {"feature": "chat", "tenant": "acme", "team": "support"}
