"""Per-model request shaping: a model's ``headers:`` and ``query:`` (values may name environment
variables, ``${AZURE_OPENAI_KEY}``), merged with the query string of its ``base_url``.

That is what classic Azure OpenAI needs (``.../openai/deployments/{d}?api-version=...`` and an
``api-key`` header) and what other OpenAI-compatible services ask for. Resolved once per model
and cached, so a request pays one dict lookup; a variable that is not set is a startup error
(``missing_variables``), never a request sent without its credentials.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from gearshift.config import ModelConfig
from gearshift.errors import ConfigError

__all__ = ["Shaping", "ShapingCache", "build_shaping", "missing_variables"]

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Shaping:
    headers: dict[str, str]  # added to (and overriding) the provider's own headers
    query: str  # "" or "?a=1&b=2": base_url's query string, then the model's ``query:``
    secrets: tuple[str, ...]  # values that came from variables: never echoed in an error


def _expand(value: str, where: str, env: Mapping[str, str], secrets: list[str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match[1]
        resolved = env.get(name)
        if resolved is None:
            raise ConfigError(f"{where} names environment variable {name}, which is not set")
        secrets.append(resolved)
        return resolved

    return _VARIABLE.sub(substitute, value)


def build_shaping(model: ModelConfig, env: Mapping[str, str] | None = None) -> Shaping:
    env = os.environ if env is None else env
    secrets: list[str] = []
    headers = {
        name: _expand(value, f"model {model.name!r} header {name!r}", env, secrets)
        for name, value in model.headers.items()
    }
    base_query = urlsplit(model.base_url).query if model.base_url else ""
    extra = {
        name: _expand(value, f"model {model.name!r} query {name!r}", env, secrets)
        for name, value in model.query.items()
    }
    query = "&".join(q for q in (base_query, urlencode(extra)) if q)
    return Shaping(headers, f"?{query}" if query else "", tuple(s for s in secrets if s))


class ShapingCache:
    """Each model's shaping, built on its first request (one per provider instance)."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[ModelConfig, Shaping]] = {}

    def get(self, model: ModelConfig) -> Shaping:
        hit = self._by_id.get(id(model))
        if hit is not None and hit[0] is model:
            return hit[1]
        shaping = build_shaping(model)
        self._by_id[id(model)] = (model, shaping)  # holding the model keeps its id unique
        return shaping


def missing_variables(model: ModelConfig, env: Mapping[str, str] | None = None) -> list[str]:
    """Why this model's headers/query cannot be built from the environment (empty: they can)."""
    try:
        build_shaping(model, env)
    except ConfigError as exc:
        return [exc.message]
    return []
