"""The OpenAI Responses API (``client.responses.create``, real openai SDK) against every provider
kind (fake OpenAI, Anthropic and Bedrock upstreams), streaming and not: text, instructions,
function tools over two turns, images, the router, and errors in OpenAI's shape."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest
from tests.dialects.conftest import TEXTS, Gearshift, wait_for
from tests.dialects.sdk_calls import QUESTION, SYSTEM, WEATHER_SCHEMA

KINDS = ("oa", "an", "br")
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": WEATHER_SCHEMA,
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake-image-bytes").decode()


def client(gs: Gearshift) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gs.url}/v1", api_key="sk-client", max_retries=0)


def upstream_prompt(kind: str, upstreams: dict[str, Any]) -> str:
    """What the upstream received, as text, to check the system prompt and images got there."""
    return json.dumps(upstreams[kind].received[-1].body)


@pytest.mark.parametrize("kind", KINDS)
def test_text_with_instructions(kind: str, gearshift: Gearshift, upstreams: dict[str, Any]) -> None:
    raw = client(gearshift).responses.with_raw_response.create(
        model=kind, instructions=SYSTEM, input=QUESTION
    )
    response = raw.parse()
    assert response.output_text == TEXTS[kind]
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.usage is not None and response.usage.output_tokens > 0
    assert raw.headers["x-gearshift-model"] == kind
    sent = upstream_prompt(kind, upstreams)
    assert SYSTEM in sent and QUESTION in sent
    record = gearshift.wait_records(1)[-1]
    assert record.dialect == "responses" and record.served_model == kind
    assert record.cost_usd > 0 and record.outcome == "ok"


@pytest.mark.parametrize("kind", KINDS)
def test_stream(kind: str, gearshift: Gearshift) -> None:
    events = list(client(gearshift).responses.create(model=kind, input=QUESTION, stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == TEXTS[kind]
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == TEXTS[kind] and final.usage is not None
    assert wait_for(lambda: gearshift.records)
    record = gearshift.records[-1]
    assert record.stream and record.dialect == "responses" and record.cost_usd > 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True])
def test_function_tools_two_turns(kind: str, stream: bool, gearshift: Gearshift) -> None:
    oa = client(gearshift)
    if stream:
        events = list(oa.responses.create(model=kind, input=QUESTION, tools=[WEATHER], stream=True))  # type: ignore[list-item]
        assert "response.function_call_arguments.delta" in [e.type for e in events]
        first = events[-1].response  # type: ignore[union-attr]
    else:
        first = oa.responses.create(model=kind, input=QUESTION, tools=[WEATHER])  # type: ignore[list-item]
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    # Second turn: the call and its output go back in 'input'; the model answers in text.
    second = oa.responses.create(
        model=kind,
        tools=[WEATHER],  # type: ignore[list-item]
        input=[
            {"role": "user", "content": QUESTION},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"},
        ],
    )
    assert second.output_text == TEXTS[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_image_input(kind: str, gearshift: Gearshift, upstreams: dict[str, Any]) -> None:
    response = client(gearshift).responses.create(
        model=kind,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is in this picture?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
                ],
            }
        ],
    )
    assert response.output_text == TEXTS[kind]
    assert PNG in upstream_prompt(kind, upstreams)


def test_through_the_router(gearshift: Gearshift) -> None:
    raw = client(gearshift).responses.with_raw_response.create(model="auto", input=QUESTION)
    assert raw.headers["x-gearshift-router"] == "auto"
    served = raw.headers["x-gearshift-model"]
    assert raw.parse().output_text == TEXTS[served]
    assert "x-gearshift-cost-usd" in raw.headers


def test_errors_in_openai_shape(gearshift: Gearshift) -> None:
    oa = client(gearshift)
    with pytest.raises(openai.BadRequestError) as stateful:
        oa.responses.create(model="oa", input="and then?", previous_response_id="resp_123")
    assert "send the whole conversation in 'input'" in str(stateful.value)
    assert stateful.value.body["param"] == "previous_response_id"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as hosted:
        oa.responses.create(model="oa", input="hi", tools=[{"type": "web_search"}])  # type: ignore[list-item]
    assert "only function tools" in str(hosted.value)
    with pytest.raises(openai.NotFoundError):
        oa.responses.create(model="no-such-model", input="hi")
    with pytest.raises(openai.BadRequestError):
        oa.responses.create(model="oa", input=[])


@pytest.fixture
def responses_upstream(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """gearshift whose two OpenAI models say ``responses_api: true`` (the fake keeps state)."""
    from tests.conftest import UvicornThread
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.gateway.conftest import LARGE_KEY, issue_config

    from gearshift.api.app import create_app
    from gearshift.config import parse_settings

    monkeypatch.setenv("LARGE_API_KEY", LARGE_KEY)
    with FakeOpenAIServer() as fake:
        config = issue_config(fake.base_url, storage=f"sqlite:///{tmp_path}/ledger.db")
        for model in config["models"]:
            model["responses_api"] = True
        server = UvicornThread(create_app(parse_settings(config))).start()
        try:
            yield server.url, fake
        finally:
            server.stop()


def test_passed_through_to_an_upstream_that_keeps_state(responses_upstream: Any) -> None:
    url, fake = responses_upstream
    oa = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0)
    first = oa.responses.with_raw_response.create(model="small", input="Remember 42.")
    one = first.parse()
    assert one.id == "resp_fake1" and one.output_text.endswith("(turn 1)")  # the upstream's own
    sent = fake.received[-1]
    assert sent.path == "/v1/responses" and sent.body["input"] == "Remember 42."
    assert first.headers["x-gearshift-model"] == "small"
    assert float(first.headers["x-gearshift-cost-usd"]) > 0
    # The upstream keeps the conversation: chained through previous_response_id, via the router.
    two = oa.responses.create(model="auto", input="What number?", previous_response_id=one.id)
    assert two.output_text.endswith("(turn 2)")
    assert fake.received[-1].body["previous_response_id"] == one.id
    # Streams are re-encoded by gearshift (its own ids), so they cannot carry the state.
    with pytest.raises(openai.BadRequestError):
        oa.responses.create(model="small", input="?", previous_response_id=two.id, stream=True)
