"""Fields of the wrong type are a 400 in the route's own dialect, never an internal error: the
cases the fuzzer (test_fuzz.py) first found, kept as plain regression tests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.dialects.conftest import Gearshift

HI = [{"role": "user", "content": "hi"}]
CONVERSE_HI = [{"role": "user", "content": [{"text": "hi"}]}]

OPENAI_CASES: list[dict[str, Any]] = [
    {"model": "auto", "messages": [{"role": {}, "content": "hi"}]},
    {"model": "auto", "messages": [{"role": ["user"], "content": "hi"}]},
    {"model": "auto", "messages": HI, "tools": 5},
    {"model": "auto", "messages": HI, "functions": {"name": "f"}},
    {"model": "auto", "messages": HI, "stop": 5},
    {"model": "auto", "messages": HI, "stop": ["a", 1]},
    {"model": "auto", "messages": HI, "tool_choice": {"function": "f"}},
    {"model": "auto", "messages": HI, "tool_choice": 3},
    {"model": "auto", "messages": HI, "response_format": {"type": "json_schema", "json_schema": 1}},
    {"model": "auto", "messages": HI, "metadata": [1]},
    {"model": "auto", "messages": HI, "user": 7},
    {"model": "auto", "messages": HI, "stream": "yes"},
    {"model": "auto", "messages": [{"role": "assistant", "content": "x", "tool_calls": 5}]},
    {"model": "auto", "messages": [{"role": "user", "content": [{"type": "text", "text": {}}]}]},
    {"model": "x" * 10_000, "messages": HI},
]
ANTHROPIC_CASES: list[dict[str, Any]] = [
    {"model": "auto", "max_tokens": 8, "messages": HI, "system": [True]},
    {"model": "auto", "max_tokens": 8, "messages": HI, "system": [{"type": "text", "text": 1}]},
    {"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": {}}]}]},
    {"model": "auto", "max_tokens": 8, "messages": HI, "tools": [{"name": "f", "input_schema": 1}]},
    {"model": "auto", "max_tokens": 8, "messages": HI, "tool_choice": {"type": []}},
    {"model": "auto", "max_tokens": 8, "messages": HI, "stop_sequences": "x"},
    {"model": "auto", "max_tokens": 8, "messages": HI, "metadata": {"user_id": 5}},
    {
        "model": "auto",
        "max_tokens": 8,
        "messages": [
            {"role": "user", "content": [{"type": "tool_use", "id": 1, "name": "f", "input": {}}]}
        ],
    },
    {
        "model": "auto",
        "max_tokens": 8,
        "messages": [
            {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": 5}}]}
        ],
    },
    {"model": "x" * 10_000, "max_tokens": 8, "messages": HI},
]
CONVERSE_CASES: list[dict[str, Any]] = [
    {"messages": CONVERSE_HI, "toolConfig": {"tools": 5}},
    {"messages": CONVERSE_HI, "toolConfig": {"tools": [5]}},
    {
        "messages": CONVERSE_HI,
        "toolConfig": {"tools": [{"toolSpec": {"name": "f"}}], "toolChoice": 1},
    },
    {"messages": CONVERSE_HI, "system": [{"text": {}}]},
    {"messages": CONVERSE_HI, "system": [True]},
    {"messages": CONVERSE_HI, "inferenceConfig": {"stopSequences": 3}},
    {"messages": CONVERSE_HI, "requestMetadata": [1]},
    {"messages": [{"role": {}, "content": [{"text": "hi"}]}]},
    {"messages": [{"role": "user", "content": [{"text": ["hi"]}]}]},
    {"messages": [{"role": "user", "content": [{"toolUse": {"toolUseId": 1, "name": "f"}}]}]},
    {"messages": [{"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": 5}}]}]},
]


def _post(gearshift: Gearshift, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gearshift.url + path, json=body, timeout=10)


@pytest.mark.parametrize("body", OPENAI_CASES)
def test_openai_bad_types_are_400(gearshift: Gearshift, body: dict[str, Any]) -> None:
    response = _post(gearshift, "/v1/chat/completions", body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


@pytest.mark.parametrize("body", ANTHROPIC_CASES)
def test_anthropic_bad_types_are_400(gearshift: Gearshift, body: dict[str, Any]) -> None:
    cases = [("/v1/messages", body)]
    if body["model"] == "auto":  # the same body through Bedrock's InvokeModel
        cases.append(("/model/auto/invoke", _as_invoke(body)))
    for path, sent in cases:
        response = _post(gearshift, path, sent)
        assert response.status_code == 400, response.text
        if path == "/v1/messages":
            payload = response.json()
            assert payload["type"] == "error"
            assert payload["error"]["type"] == "invalid_request_error"
        else:
            assert response.headers["x-amzn-errortype"] == "ValidationException"


@pytest.mark.parametrize("body", CONVERSE_CASES)
def test_bedrock_bad_types_are_400(gearshift: Gearshift, body: dict[str, Any]) -> None:
    response = _post(gearshift, "/model/auto/converse", body)
    assert response.status_code == 400, response.text
    assert response.headers["x-amzn-errortype"] == "ValidationException"
    assert isinstance(response.json()["message"], str)


def test_overlong_bedrock_model_id_is_400(gearshift: Gearshift) -> None:
    response = _post(gearshift, "/model/" + "m" * 300 + "/converse", {"messages": CONVERSE_HI})
    assert response.status_code == 400
    assert "at most 256" in response.json()["message"]


@pytest.mark.parametrize(
    ("method", "path", "dialect"),
    [
        ("POST", "/model/x", "bedrock"),
        ("GET", "/model/br/converse", "bedrock"),
        ("POST", "/model/a/b/c/d/converse", "bedrock"),
        ("POST", "/v1/messages/nothing", "anthropic"),
        ("GET", "/v1/messages", "anthropic"),
        ("POST", "/v1/nothing", "openai"),
    ],
)
def test_unrouted_paths_answer_in_their_dialect(
    gearshift: Gearshift, method: str, path: str, dialect: str
) -> None:
    response = httpx.request(method, gearshift.url + path, timeout=10)
    assert response.status_code in (404, 405)
    payload = response.json()
    if dialect == "bedrock":
        assert isinstance(payload["message"], str) and "x-amzn-errortype" in response.headers
    elif dialect == "anthropic":
        assert payload["type"] == "error" and payload["error"]["message"]
    else:
        assert payload["error"]["message"]


def _as_invoke(body: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k != "model"}
    out["anthropic_version"] = "bedrock-2023-05-31"
    return out
