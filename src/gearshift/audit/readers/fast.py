"""The fast path for the most common log line: an OpenAI-style request (+ response + usage).

``msgspec`` decodes only the fields the audit uses into typed structs and skips the rest (the
response's answer text, which is often half the line) without building Python objects for it;
the messages are kept as raw JSON bytes (``msgspec.Raw``), so a prompt seen before costs a hash
of those bytes and is never decoded again. Any line this path cannot take whole (another shape,
a type it does not expect, invalid JSON) returns None and goes through the general reader, which
gives the precise reason when the line is unusable.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gearshift.audit.entry import LogEntry
from gearshift.audit.readers.content import as_tags, as_timestamp

_EMPTY = msgspec.Raw(b"")


class _Details(msgspec.Struct):
    cached_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _Details | None = None


class _Request(msgspec.Struct):
    model: str | None = None
    messages: msgspec.Raw = _EMPTY
    system: msgspec.Raw = _EMPTY
    metadata: dict[str, Any] | None = None


class _Response(msgspec.Struct):
    model: str | None = None
    usage: _Usage | None = None
    created: int | float | None = None


class _Line(msgspec.Struct):
    request: _Request | None = None
    response: _Response | None = None
    metadata: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    timestamp: str | int | float | None = None
    # a bare request body at the top level
    model: str | None = None
    messages: msgspec.Raw = _EMPTY
    system: msgspec.Raw = _EMPTY
    usage: _Usage | None = None
    cost_usd: float | None = None
    cost: float | None = None


_decode = msgspec.json.Decoder(_Line).decode


def parse_fast(line: bytes) -> LogEntry | None:
    try:
        rec = _decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    request = rec.request
    if request is not None:
        raw, system, model = request.messages, request.system, request.model
        req_meta = request.metadata
    else:
        raw, system, model, req_meta = rec.messages, rec.system, rec.model, None
    messages = bytes(raw)
    # Only a non-empty JSON array of messages and no separate system field (an Anthropic body).
    if len(messages) <= 2 or messages[0] != 0x5B or len(system):
        return None
    response = rec.response
    usage = (response.usage if response is not None else None) or rec.usage
    if response is not None and model is None:
        model = response.model
    ts = as_timestamp(rec.timestamp)
    if ts is None and response is not None:
        ts = as_timestamp(response.created)
    cached = 0
    if usage is not None and usage.prompt_tokens_details is not None:
        cached = usage.prompt_tokens_details.cached_tokens or 0
    pt = usage.prompt_tokens if usage is not None else None
    ct = usage.completion_tokens if usage is not None else None
    return LogEntry(
        messages=[],
        messages_json=messages,
        model=model or None,
        prompt_tokens=pt if pt is None or pt >= 0 else None,
        completion_tokens=ct if ct is None or ct >= 0 else None,
        cached_tokens=max(cached, 0),
        tags=as_tags(req_meta, rec.metadata, rec.tags),
        ts=ts,
        logged_cost_usd=rec.cost_usd if rec.cost_usd is not None else rec.cost,
    )
