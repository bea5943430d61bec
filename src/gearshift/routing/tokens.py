"""Fast token estimates for routing: constraints and expected cost, not billing.

A real tokenizer costs milliseconds on a long prompt; the router needs microseconds. English text
and code average close to four characters per token for the GPT/Claude/Llama tokenizers; text
outside ASCII (CJK, Cyrillic…) is closer to one token per character or two, so those characters
are counted separately. The estimate errs high, so a context-window check stays safe.
"""

from __future__ import annotations

from gearshift.chat import ChatRequest, ImagePart

__all__ = ["IMAGE_TOKENS", "MESSAGE_OVERHEAD_TOKENS", "estimate_request_tokens", "estimate_tokens"]

MESSAGE_OVERHEAD_TOKENS = 4  # role and separators per message
IMAGE_TOKENS = 1000  # a typical high-detail image tile budget
SAMPLE_CHARS = 2000


def estimate_tokens(text: str) -> int:
    """Estimated tokens in ``text`` (≈ chars/4 for ASCII, ≈ 1 per non-ASCII character)."""
    n = len(text)
    if n == 0:
        return 0
    if text.isascii():
        return n // 4 + 1
    if n > 2 * SAMPLE_CHARS:
        # a long text's share of non-ASCII characters, estimated from four evenly spread slices
        step = (n - SAMPLE_CHARS // 4) // 3
        sample = "".join(text[i * step : i * step + SAMPLE_CHARS // 4] for i in range(4))
        share = 1.0 - len(sample.encode("ascii", "ignore")) / len(sample)
        non_ascii = round(share * n)
        return (n - non_ascii) // 4 + non_ascii + 1
    non_ascii = n - len(text.encode("ascii", "ignore"))
    return (n - non_ascii) // 4 + non_ascii + 1


def estimate_request_tokens(request: ChatRequest) -> int:
    """Estimated prompt tokens of a whole request: messages, images and tool schemas."""
    total = 0
    for message in request.messages:
        total += MESSAGE_OVERHEAD_TOKENS
        for part in message.content:
            if isinstance(part, ImagePart):
                total += IMAGE_TOKENS
            else:
                total += estimate_tokens(part.text)
        for call in message.tool_calls:
            total += estimate_tokens(call.arguments) + MESSAGE_OVERHEAD_TOKENS
    for tool in request.tools:
        total += estimate_tokens(tool.name) + estimate_tokens(tool.description) + 8
        total += len(str(tool.parameters)) // 4
    return total
