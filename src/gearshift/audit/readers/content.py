"""Helpers every reader shares: message text, token counts, timestamps, tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

# Per-message and per-request framing tokens, as OpenAI counts chat prompts.
_TOKENS_PER_MESSAGE = 4
_TOKENS_PER_REQUEST = 3
TAG_KEYS_MAX_LEN = 64
_PLAIN_ROLES = frozenset({"system", "user", "assistant"})


def text_of(content: Any) -> str:
    """Plain text of a message ``content`` in any dialect: a string, or a list of parts
    (OpenAI ``{"type": "text", "text"}``, Anthropic blocks, Bedrock ``{"text"}``)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces: list[str] = []
        for part in content:
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    pieces.append(part["text"])
                elif part.get("type") in {"image_url", "image", "input_image"} or "image" in part:
                    pieces.append("[image]")
                elif "content" in part:  # Anthropic tool_result / Bedrock toolResult
                    pieces.append(text_of(part["content"]))
                elif "json" in part:
                    pieces.append(str(part["json"]))
        return "\n".join(pieces)
    if isinstance(content, dict):
        return text_of([content])
    return str(content)


def normalise_messages(messages: Any, system: Any = None) -> list[dict[str, Any]] | None:
    """OpenAI-style ``[{"role", "content": str}]`` from any dialect's message list, or None when
    ``messages`` is not a list of messages."""
    if not isinstance(messages, list):
        return None
    if not system and all(
        type(m) is dict and type(m.get("content")) is str and m.get("role") in _PLAIN_ROLES
        for m in messages
    ):
        return messages  # already plain OpenAI messages: no copy (the common case, and hot)
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": text_of(system)})
    for m in messages:
        if not isinstance(m, dict):
            return None
        role = m.get("role")
        if not isinstance(role, str):
            return None
        content = m.get("content")
        text = content if isinstance(content, str) else text_of(content)
        if role == "developer":  # OpenAI's newer name for the system role
            role = "system"
        out.append({"role": role, "content": text})
    return out


def decode_messages(raw: bytes) -> list[dict[str, Any]] | None:
    """Messages from the raw JSON array the fast reader kept, normalised; None when unusable
    (not a list of messages, or no text at all)."""
    import orjson

    try:
        messages = normalise_messages(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return None
    if not messages or not any(m["content"] for m in messages):
        return None
    return messages


def count_tokens(messages: list[dict[str, Any]]) -> int:
    """An honest estimate of prompt tokens when the log has none: about four UTF-8 bytes per
    token (close to cl100k/o200k on English and code; CJK text costs more bytes per token, so it
    comes out higher, as it does in real tokenizers), plus OpenAI's per-message framing."""
    total = _TOKENS_PER_REQUEST
    for m in messages:
        content = m.get("content") or ""
        n = len(content) if content.isascii() else len(content.encode("utf-8", "replace"))
        total += (n + 3) // 4 + _TOKENS_PER_MESSAGE
    return total


def count_text_tokens(text: str) -> int:
    n = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
    return (n + 3) // 4


def as_int(value: Any) -> int | None:
    """A token count from JSON/CSV, or None when absent or not a non-negative number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number or number < 0:  # NaN or negative
        return None
    return int(number)


def as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None


def as_timestamp(value: Any) -> float | None:
    """Unix seconds from an ISO-8601 string or a number (seconds or milliseconds)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str) and value:
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            number = as_float(text)
            return as_timestamp(number) if number is not None else None
    return None


def as_tags(*sources: Any) -> dict[str, str]:
    """Attribution tags from metadata-like dicts: short string keys, values as strings."""
    dicts = [s for s in sources if isinstance(s, dict) and s]
    if len(dicts) == 1 and all(
        type(k) is str and type(v) is str and len(k) <= TAG_KEYS_MAX_LEN
        and len(v) <= TAG_KEYS_MAX_LEN
        for k, v in dicts[0].items()
    ):  # fmt: skip
        return dict(dicts[0])  # the common case, and hot
    tags: dict[str, str] = {}
    for source in dicts:
        for key, value in source.items():
            if not isinstance(key, str) or len(key) > TAG_KEYS_MAX_LEN:
                continue
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                tags[key] = str(value)[:TAG_KEYS_MAX_LEN]
    return tags
