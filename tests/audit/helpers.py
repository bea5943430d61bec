"""Writers for audit test logs (imported by the tests as ``tests.audit.helpers``)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "helpdesk.jsonl"


def openai_line(
    prompt: str,
    *,
    model: str = "gpt-4o",
    prompt_tokens: int | None = 1000,
    completion_tokens: int | None = 200,
    cached: int = 0,
    tags: dict[str, str] | None = None,
    system: str | None = None,
) -> dict[str, Any]:
    messages = [{"role": "user", "content": prompt}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    record: dict[str, Any] = {
        "timestamp": "2025-03-03T10:00:00Z",
        "metadata": tags or {},
        "request": {"model": model, "messages": messages},
    }
    if prompt_tokens is not None:
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        }
        if cached:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        record["response"] = {
            "object": "chat.completion",
            "model": model,
            "choices": [{"message": {"role": "assistant", "content": "ok"}}],
            "usage": usage,
        }
    return record


def write_lines(path: Path, lines: Iterable[dict[str, Any] | str], *, gz: bool = False) -> Path:
    text = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path
