"""The provider seam: one module per upstream protocol, each a class with this shape.

Providers translate ``ChatRequest`` to their wire format and back. They do not retry or fall back
(the gateway pipeline does, across models); they raise ``UpstreamError(retryable=...)`` or
``UpstreamTimeout`` so the pipeline can decide. A stream raises before its first event when the
call fails up front, and raises ``UpstreamError`` mid-iteration when it breaks after bytes flowed.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from typing import Protocol

from gearshift.chat import ChatRequest, ChatResponse, StreamEvent
from gearshift.config import ModelConfig, ProviderKind


class Provider(Protocol):
    kind: str

    async def complete(self, request: ChatRequest, model: ModelConfig) -> ChatResponse: ...

    def stream(self, request: ChatRequest, model: ModelConfig) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


# provider kind -> "module:Class"; built-ins are registered exactly as a plugin would be.
PROVIDERS: dict[str, str] = {
    "openai": "gearshift.providers.openai:OpenAIProvider",
    "anthropic": "gearshift.providers.anthropic:AnthropicProvider",
    "bedrock": "gearshift.providers.bedrock:BedrockProvider",
}


def provider_class(kind: ProviderKind | str) -> type[Provider]:
    module_name, _, cls = PROVIDERS[kind].partition(":")
    found: type[Provider] = getattr(importlib.import_module(module_name), cls)
    return found
