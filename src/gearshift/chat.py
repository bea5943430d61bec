"""One internal representation of a chat exchange, shared by every dialect and provider.

Inbound dialects (OpenAI, Anthropic, Bedrock) parse into these types; providers translate them
into their own wire format; dialects render responses and stream events back. Token conventions
follow OpenAI and genai-prices: ``Usage.input_tokens`` counts *all* prompt tokens, including the
cache-read and cache-write ones, so an Anthropic/Bedrock usage block is converted by adding its
cache counts to its ``input_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]
Dialect = Literal["openai", "anthropic", "bedrock", "responses"]


@dataclass(slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True)
class ImagePart:
    """An image given inline (``data`` + ``media_type``) or by URL."""

    media_type: str = "image/png"
    data: bytes | None = None
    url: str | None = None
    type: Literal["image"] = "image"


ContentPart = TextPart | ImagePart


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it


@dataclass(slots=True)
class Message:
    role: Role
    content: list[ContentPart] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # role == "tool": which call this answers
    is_error: bool = False  # role == "tool": the tool failed
    name: str | None = None

    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(slots=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0  # all prompt tokens, cache reads and writes included
    output_tokens: int = 0  # all completion tokens, reasoning included
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass(slots=True)
class ChatRequest:
    """A dialect-neutral chat request.

    ``model`` is what the client asked for (a router or a concrete model name). ``raw`` keeps the
    client's original body and ``dialect`` its API, so a provider speaking the same dialect can pass
    the body through untouched (only the model id replaced) instead of re-encoding it.
    """

    model: str
    messages: list[Message]
    dialect: Dialect = "openai"
    tools: list[Tool] = field(default_factory=list)
    tool_choice: Any = None  # "auto" | "none" | "required" | {"name": ...}
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    response_format: dict[str, Any] | None = None  # OpenAI shape: {"type": "json_object"} ...
    user: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown params (pass-through)
    raw: dict[str, Any] | None = None

    def system_text(self) -> str:
        return "\n".join(m.text() for m in self.messages if m.role == "system")

    def prompt_text(self) -> str:
        """All conversation text, system included, in order (for routing features)."""
        return "\n".join(m.text() for m in self.messages)

    def last_user_text(self) -> str:
        for m in reversed(self.messages):
            if m.role == "user":
                return m.text()
        return ""


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str  # upstream model id that answered
    content: list[ContentPart] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    created: int = 0
    # The upstream's own JSON body, when a dialect may return it as is (same API on both sides).
    raw: dict[str, Any] | None = None

    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


# ---- stream events: what providers yield and dialect encoders consume -------------------------


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a tool call. The first piece of call ``index`` carries ``id`` and ``name``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamEnd:
    """Last event of a successful stream: why it stopped and what it used."""

    finish_reason: FinishReason
    usage: Usage


StreamEvent = TextDelta | ToolCallDelta | StreamEnd
