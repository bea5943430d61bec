"""One question asked through each real SDK (openai, anthropic, boto3 bedrock-runtime), streaming
or not, with or without a tool, and the answer brought back to one comparable shape."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
SYSTEM = "Answer briefly."
QUESTION = "What is the weather in Paris?"
DIALECTS = ("openai", "anthropic", "bedrock")


@dataclass
class Answer:
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    # Usage as the client's dialect reported it, normalised: all prompt tokens, output, cache read
    usage: tuple[int, int, int] = (0, 0, 0)
    stop: str = ""
    trace: dict[str, Any] | None = None


def ask(
    dialect: str,
    url: str,
    model: str,
    *,
    stream: bool = False,
    tools: bool = False,
    headers: dict[str, str] | None = None,
) -> Answer:
    call = {"openai": ask_openai, "anthropic": ask_anthropic, "bedrock": ask_bedrock}[dialect]
    return call(url, model, stream=stream, tools=tools, headers=headers or {})


def ask_openai(
    url: str, model: str, *, stream: bool, tools: bool, headers: dict[str, str]
) -> Answer:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0)
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": QUESTION},
        ],
        "extra_headers": headers,
    }
    if tools:
        kwargs["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather now",
                    "parameters": WEATHER_SCHEMA,
                },
            }
        ]
    answer = Answer()
    if not stream:
        raw = client.chat.completions.with_raw_response.create(**kwargs)
        answer.headers = dict(raw.headers)
        completion = raw.parse()
        message = completion.choices[0].message
        answer.text = message.content or ""
        answer.tool_calls = [
            (c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []
        ]
        answer.stop = completion.choices[0].finish_reason
        usage = completion.usage
        assert usage is not None
        cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
        answer.usage = (usage.prompt_tokens, usage.completion_tokens, cached or 0)
        return answer
    raw = client.chat.completions.with_raw_response.create(
        stream=True, stream_options={"include_usage": True}, **kwargs
    )
    answer.headers = dict(raw.headers)
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    for chunk in raw.parse():
        if chunk.usage is not None:
            details = chunk.usage.prompt_tokens_details
            cached = (details.cached_tokens or 0) if details else 0
            answer.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens, cached)
        for choice in chunk.choices:
            answer.text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names[call.index] = call.function.name
                if call.function and call.function.arguments:
                    arguments[call.index] = arguments.get(call.index, "") + call.function.arguments
            if choice.finish_reason:
                answer.stop = choice.finish_reason
    answer.tool_calls = [(names[i], json.loads(arguments.get(i) or "{}")) for i in sorted(names)]
    return answer


def ask_anthropic(
    url: str, model: str, *, stream: bool, tools: bool, headers: dict[str, str]
) -> Answer:
    import anthropic

    client = anthropic.Anthropic(base_url=url, api_key="sk-client", max_retries=0)
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": 200,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": QUESTION}],
        "extra_headers": headers,
    }
    if tools:
        kwargs["tools"] = [
            {"name": "get_weather", "description": "Weather now", "input_schema": WEATHER_SCHEMA}
        ]
    answer = Answer()
    if stream:
        with client.messages.stream(**kwargs) as events:
            answer.headers = dict(events.response.headers)
            message = events.get_final_message()
    else:
        raw = client.messages.with_raw_response.create(**kwargs)
        answer.headers = dict(raw.headers)
        message = raw.parse()
    for block in message.content:
        if block.type == "text":
            answer.text += block.text
        elif block.type == "tool_use":
            answer.tool_calls.append((block.name, dict(block.input)))  # type: ignore[arg-type]
    u = message.usage
    cache_read = u.cache_read_input_tokens or 0
    total = u.input_tokens + cache_read + (u.cache_creation_input_tokens or 0)
    answer.usage = (total, u.output_tokens, cache_read)
    answer.stop = message.stop_reason or ""
    return answer


def bedrock_client(url: str, headers: dict[str, str] | None = None) -> Any:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIDCLIENT",
        aws_secret_access_key="client-secret",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30),
    )
    if headers:

        def add_headers(request: Any, **_: Any) -> None:
            for name, value in headers.items():
                request.headers[name] = value

        client.meta.events.register("before-sign.bedrock-runtime.*", add_headers)
    return client


def ask_bedrock(
    url: str, model: str, *, stream: bool, tools: bool, headers: dict[str, str]
) -> Answer:
    client = bedrock_client(url, headers)
    kwargs: dict[str, Any] = {
        "modelId": model,
        "system": [{"text": SYSTEM}],
        "messages": [{"role": "user", "content": [{"text": QUESTION}]}],
        "inferenceConfig": {"maxTokens": 200},
    }
    if tools:
        spec = {
            "name": "get_weather",
            "description": "Weather now",
            "inputSchema": {"json": WEATHER_SCHEMA},
        }
        kwargs["toolConfig"] = {"tools": [{"toolSpec": spec}]}
    answer = Answer()
    if not stream:
        response = client.converse(**kwargs)
        answer.headers = response["ResponseMetadata"]["HTTPHeaders"]
        for block in response["output"]["message"]["content"]:
            if "text" in block:
                answer.text += block["text"]
            elif "toolUse" in block:
                answer.tool_calls.append((block["toolUse"]["name"], block["toolUse"]["input"]))
        usage = response["usage"]
        answer.stop = response["stopReason"]
        answer.trace = response.get("trace")
    else:
        response = client.converse_stream(**kwargs)
        answer.headers = response["ResponseMetadata"]["HTTPHeaders"]
        names: dict[int, str] = {}
        arguments: dict[int, str] = {}
        usage = {}
        for event in response["stream"]:
            if "contentBlockStart" in event:
                start = event["contentBlockStart"]
                names[start["contentBlockIndex"]] = start["start"]["toolUse"]["name"]
            elif "contentBlockDelta" in event:
                delta = event["contentBlockDelta"]
                index = delta["contentBlockIndex"]
                if "text" in delta["delta"]:
                    answer.text += delta["delta"]["text"]
                elif "toolUse" in delta["delta"]:
                    arguments[index] = arguments.get(index, "") + delta["delta"]["toolUse"]["input"]
            elif "messageStop" in event:
                answer.stop = event["messageStop"]["stopReason"]
            elif "metadata" in event:
                usage = event["metadata"]["usage"]
                answer.trace = event["metadata"].get("trace")
        answer.tool_calls = [(names[i], json.loads(arguments.get(i) or "{}")) for i in names]
    cache_read = usage.get("cacheReadInputTokens", 0)
    total = usage["inputTokens"] + cache_read + usage.get("cacheWriteInputTokens", 0)
    answer.usage = (total, usage["outputTokens"], cache_read)
    return answer
