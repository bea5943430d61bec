"""OpenAI-style JSON lines: a request body alone, request + response (+ usage) as a logging proxy
writes them, the Batch API's input shape ``{"custom_id", "body": {...}}``, flat
``{"messages", "usage"}`` records, legacy ``{"prompt"}`` completions, and Anthropic Messages
bodies (``system`` beside ``messages``, usage with ``input_tokens``)."""

from __future__ import annotations

from typing import Any

from gearshift.audit.entry import LogEntry
from gearshift.audit.readers.content import (
    as_float,
    as_int,
    as_tags,
    as_timestamp,
    normalise_messages,
)

_TS_KEYS = ("timestamp", "created_at", "ts", "time", "start_time", "startTime")
_NO_REQUEST = "response only, no request (a Batch API output line?)"


def parse_openai(obj: dict[str, Any]) -> LogEntry | str:
    """One entry, or the reason the line cannot be used."""
    request: Any = obj.get("request")
    response: Any = obj.get("response")
    if not isinstance(request, dict):
        body = obj.get("body")
        if isinstance(body, dict) and ("messages" in body or "prompt" in body):
            request = body  # Batch API input line
        elif "messages" in obj or "prompt" in obj:
            request = obj  # the request body itself, perhaps with usage beside it
        elif isinstance(response, dict):
            return _NO_REQUEST
        else:
            return "no messages or prompt field"
    if isinstance(response, dict) and isinstance(response.get("body"), dict):
        response = response["body"]  # Batch API output shape
    if not isinstance(response, dict):
        response = None

    messages = normalise_messages(request.get("messages"), request.get("system"))
    if messages is None:
        prompt = request.get("prompt")
        if isinstance(prompt, str):
            messages = [{"role": "user", "content": prompt}]
        else:
            return "messages is not a list of {role, content}"
    if not any(m["content"] for m in messages):
        return "empty prompt"

    usage = (response or {}).get("usage") or obj.get("usage") or request.get("usage")
    prompt_tokens, completion_tokens, cached = _usage(usage if isinstance(usage, dict) else None)
    model = request.get("model") or (response or {}).get("model") or obj.get("model")
    ts = None
    for key in _TS_KEYS:
        if key in obj:
            ts = as_timestamp(obj[key])
            if ts is not None:
                break
    if ts is None and response is not None:
        ts = as_timestamp(response.get("created"))
    return LogEntry(
        messages=messages,
        model=model if isinstance(model, str) and model else None,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached,
        logged_cost_usd=as_float(obj.get("cost_usd", obj.get("cost"))),
        tags=as_tags(request.get("metadata"), obj.get("metadata"), obj.get("tags")),
        ts=ts,
    )


def _usage(usage: dict[str, Any] | None) -> tuple[int | None, int | None, int]:
    if usage is None:
        return None, None, 0
    if "prompt_tokens" in usage or "completion_tokens" in usage:  # OpenAI
        details = usage.get("prompt_tokens_details")
        cached = as_int(details.get("cached_tokens")) if isinstance(details, dict) else None
        return (
            as_int(usage.get("prompt_tokens")),
            as_int(usage.get("completion_tokens")),
            cached or 0,
        )
    if "input_tokens" in usage or "output_tokens" in usage:  # Anthropic: input excludes cache
        read = as_int(usage.get("cache_read_input_tokens")) or 0
        write = as_int(usage.get("cache_creation_input_tokens")) or 0
        base = as_int(usage.get("input_tokens"))
        total_in = None if base is None else base + read + write
        return total_in, as_int(usage.get("output_tokens")), read
    return None, None, 0
