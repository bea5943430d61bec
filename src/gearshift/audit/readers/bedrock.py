"""Bedrock model-invocation logs: the JSON records Bedrock writes to S3 and CloudWatch Logs
(``schemaType: "ModelInvocationLog"``) for InvokeModel and Converse calls.

``input.inputBodyJson`` holds the request in the model vendor's own shape (Anthropic Messages,
Converse, Amazon Titan ``inputText``, Meta/Mistral ``prompt``); token counts come from
``input.inputTokenCount`` / ``output.outputTokenCount``, which Bedrock fills for every model.
"""

from __future__ import annotations

from typing import Any

from gearshift.audit.entry import LogEntry
from gearshift.audit.readers.content import as_int, as_tags, as_timestamp, normalise_messages


def is_bedrock(obj: dict[str, Any]) -> bool:
    return obj.get("schemaType") == "ModelInvocationLog" or (
        "modelId" in obj and isinstance(obj.get("input"), dict)
    )


def parse_bedrock(obj: dict[str, Any]) -> LogEntry | str:
    inp = obj.get("input")
    if not isinstance(inp, dict):
        return "Bedrock record without input"
    body = inp.get("inputBodyJson")
    if body is None:
        # Large bodies are written to S3 separately; the log line then holds only a pointer.
        if "inputBodyS3Path" in inp:
            return "Bedrock input body stored separately in S3 (inputBodyS3Path)"
        return "Bedrock record without inputBodyJson"
    messages = _messages(body)
    if messages is None:
        return "Bedrock input body has no messages or prompt"
    if not any(m["content"] for m in messages):
        return "empty prompt"
    output = obj.get("output")
    out: dict[str, Any] = output if isinstance(output, dict) else {}
    model = obj.get("modelId")
    return LogEntry(
        messages=messages,
        model=str(model).rsplit("/", 1)[-1] if model else None,
        prompt_tokens=as_int(inp.get("inputTokenCount")),
        completion_tokens=as_int(out.get("outputTokenCount")),
        cached_tokens=as_int(inp.get("cacheReadInputTokenCount")) or 0,
        tags=as_tags(obj.get("requestMetadata")),
        ts=as_timestamp(obj.get("timestamp")),
    )


def _messages(body: Any) -> list[dict[str, Any]] | None:
    if isinstance(body, str):
        return [{"role": "user", "content": body}]
    if not isinstance(body, dict):
        return None
    if "messages" in body:  # Anthropic Messages or Converse (system as a list of {text})
        return normalise_messages(body["messages"], body.get("system"))
    for key in ("inputText", "prompt"):  # Titan; Llama, Mistral, Cohere, legacy Claude
        if isinstance(body.get(key), str):
            return [{"role": "user", "content": body[key]}]
    return None
