"""Checks every dialect's request parser shares: a field of the wrong type is a 400 naming the
field (in the dialect's own wording), never a crash deeper in the gateway."""

from __future__ import annotations

from typing import Any

from gearshift.errors import InvalidRequest

# Longer router or model names are refused: none is configured with such a name, and storing one
# verbatim would only bloat the ledger.
MAX_MODEL_CHARS = 256


def check_model_name(model: Any, name: str) -> str:
    """A router or model name from a request: a non-empty string of at most
    ``MAX_MODEL_CHARS``; ``name`` is how the dialect calls the field in its messages."""
    if not isinstance(model, str) or not model:
        raise InvalidRequest(f"{name} is required and must be a non-empty string", param="model")
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidRequest(
            f"{name} is {len(model)} characters long; router and model names have at most "
            f"{MAX_MODEL_CHARS}",
            param="model",
        )
    return model


def short_repr(value: Any) -> str:
    """A client's value quoted in an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def string_list(value: Any) -> list[str] | None:
    """``value`` when it is a list of strings, else None (the caller raises in its wording)."""
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return value
    return None


def optional_flag(body: dict[str, Any], key: str, name: str) -> bool:
    """A boolean field, False when absent; ``name`` is how the dialect calls it in messages."""
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be true or false", param=key)
    return value
