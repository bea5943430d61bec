"""Server-sent events framing (``text/event-stream``), shared by the OpenAI and Anthropic
dialects."""

from __future__ import annotations

from typing import Any

import orjson

SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tell nginx-style proxies not to buffer, or the client sees nothing until the end.
    (b"x-accel-buffering", b"no"),
]
DONE = b"data: [DONE]\n\n"


def data(payload: Any) -> bytes:
    """One unnamed event carrying ``payload`` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def event(name: str, payload: Any) -> bytes:
    """One named event (``event: name``), as the Anthropic Messages stream uses."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def comment(text: str) -> bytes:
    """A comment line: ignored by SSE parsers, visible to people and to gearshift-aware clients."""
    return b": " + text.replace("\n", " ").encode() + b"\n\n"
