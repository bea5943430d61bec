"""A client that leaves mid-stream: gearshift cancels the Anthropic or Bedrock upstream call (the
fake upstream sees its connection closed) and records ``client_disconnect`` exactly once."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tests.dialects.conftest import Gearshift, wait_for
from tests.dialects.sdk_calls import DIALECTS, QUESTION, bedrock_client


def leave_after_first_text(dialect: str, url: str, model: str) -> str:
    """Start a stream, read until the first piece of text, hang up; return that piece."""
    if dialect == "openai":
        import openai

        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0)
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        try:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    return chunk.choices[0].delta.content
        finally:
            stream.close()
    elif dialect == "anthropic":
        import anthropic

        messages = anthropic.Anthropic(base_url=url, api_key="sk-client", max_retries=0).messages
        with messages.stream(
            model=model, max_tokens=100, messages=[{"role": "user", "content": QUESTION}]
        ) as events:
            for text in events.text_stream:
                return text
    else:
        response = bedrock_client(url).converse_stream(
            modelId=model, messages=[{"role": "user", "content": [{"text": QUESTION}]}]
        )
        events = response["stream"]
        try:
            for event in events:
                if "contentBlockDelta" in event:
                    return str(event["contentBlockDelta"]["delta"]["text"])
        finally:
            events.close()
    raise AssertionError("no text arrived")


@pytest.mark.parametrize("kind", ["an", "br"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_client_leaving_cancels_the_upstream_stream(
    gearshift: Gearshift, upstreams: dict[str, Any], dialect: str, kind: str
) -> None:
    upstream = upstreams[kind]
    upstream.knobs.text = "word " * 100  # 63 events at 50 ms: about 3 s if nobody hangs up
    upstream.knobs.chunk_delay_s = 0.05
    assert leave_after_first_text(dialect, gearshift.url, kind)
    # Had gearshift let the upstream run on, the fake would have recorded "complete".
    assert wait_for(lambda: upstream.stream_outcomes), "the upstream stream never ended"
    assert upstream.stream_outcomes == ["disconnected"]
    (record,) = gearshift.wait_records(1)
    assert record.outcome == "client_disconnect" and record.served_model == kind
    # Priced from an estimate of what the upstream read and streamed, not recorded as $0.
    assert record.prompt_tokens > 0 and 0 < record.completion_tokens < 100
    assert record.cost_usd > 0 and record.counterfactual_cost_usd >= record.cost_usd
    time.sleep(0.2)
    assert len(gearshift.records) == 1  # exactly one row
