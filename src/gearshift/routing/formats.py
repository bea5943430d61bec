"""Read and write the routing data formats of DESIGN.md (labelled JSONL in, predictions JSONL out).

Every malformed line is a clear error naming the file and line number; nothing is skipped
silently. ``null`` in ``scores`` or ``costs`` means "not recorded" for that model (many public
sets leave costs null, and not every model answered every prompt); ``"category": null`` is none.
A row may give ``messages`` (OpenAI-style: ``content`` a string or a list of
``text``/``image_url`` parts) or, as a convenience for ``score``, a bare ``prompt`` string.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gearshift.chat import ChatRequest, ContentPart, ImagePart, Message, TextPart, Tool
from gearshift.errors import InvalidRequest

__all__ = ["LabelledRow", "iter_rows", "read_labelled", "row_to_request", "write_jsonl"]

_ROLES = {"system", "user", "assistant", "tool", "developer"}


@dataclass(slots=True)
class LabelledRow:
    id: str
    request: ChatRequest
    scores: dict[str, float] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    category: str = ""  # optional domain label (an exam subject, a task category)


def _fail(source: str, line: int, message: str) -> InvalidRequest:
    return InvalidRequest(f"{source}, line {line}: {message}")


def _parts(content: Any, where: str) -> list[ContentPart]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise ValueError(f"{where}: content must be a string or a list of parts")
    parts: list[ContentPart] = []
    for part in content:
        if isinstance(part, str):
            parts.append(TextPart(part))
        elif isinstance(part, dict) and part.get("type") == "text":
            parts.append(TextPart(str(part.get("text", ""))))
        elif isinstance(part, dict) and part.get("type") in ("image_url", "image"):
            url = part.get("image_url")
            parts.append(ImagePart(url=str(url.get("url") if isinstance(url, dict) else url)))
        else:
            raise ValueError(f"{where}: unknown content part {str(part)[:60]!r}")
    return parts


def row_to_request(obj: dict[str, Any]) -> ChatRequest:
    """A ``ChatRequest`` from a row's ``messages`` (or ``prompt``); raises ``ValueError``."""
    messages = obj.get("messages")
    if messages is None and isinstance(obj.get("prompt"), str):
        messages = [{"role": "user", "content": obj["prompt"]}]
    if not isinstance(messages, list) or not messages:
        raise ValueError("row needs a non-empty 'messages' list (or a 'prompt' string)")
    parsed: list[Message] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"messages[{i}] must be an object")
        role = m.get("role")
        if role not in _ROLES:
            raise ValueError(f"messages[{i}] has unknown role {role!r}")
        parsed.append(
            Message(
                role="system" if role == "developer" else role,
                content=_parts(m.get("content"), f"messages[{i}]"),
            )
        )
    tools = [
        Tool(name=str(t.get("function", t).get("name", "tool")))
        for t in obj.get("tools") or []
        if isinstance(t, dict)
    ]
    fmt = obj.get("response_format")
    return ChatRequest(
        model=str(obj.get("model", "auto")),
        messages=parsed,
        tools=tools,
        response_format=fmt if isinstance(fmt, dict) else None,
        max_tokens=obj.get("max_tokens") if isinstance(obj.get("max_tokens"), int) else None,
    )


def _numbers(obj: Any, name: str, *, unit: bool) -> dict[str, float]:
    """model -> number; a ``null`` value means "not recorded" (the model is left out)."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise ValueError(f"'{name}' must be an object of model -> number")
    out: dict[str, float] = {}
    for model, value in obj.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float) or value != value:
            raise ValueError(f"'{name}' for model {model!r} is not a number: {value!r}")
        if unit and not 0.0 <= value <= 1.0:
            raise ValueError(f"'{name}' for model {model!r} must be in [0, 1], got {value}")
        if not unit and value < 0:
            raise ValueError(f"'{name}' for model {model!r} must be >= 0, got {value}")
        out[str(model)] = float(value)
    return out


def iter_rows(
    path: str | Path, *, need_scores: bool, stream: IO[str] | None = None
) -> Iterator[LabelledRow]:
    """Rows of a JSONL file; blank lines are skipped, anything malformed raises with its line."""
    source = str(path)
    fh = stream if stream is not None else _open(path)
    seen = 0
    try:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _fail(source, lineno, f"not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise _fail(source, lineno, "each line must be a JSON object")
            try:
                request = row_to_request(obj)
                scores = _numbers(obj.get("scores"), "scores", unit=True)
                costs = _numbers(obj.get("costs"), "costs", unit=False)
            except ValueError as exc:
                raise _fail(source, lineno, str(exc)) from None
            if need_scores and not scores:
                raise _fail(source, lineno, "row has no 'scores' (model -> quality in [0, 1])")
            category = obj.get("category") or ""
            if not isinstance(category, str):
                raise _fail(source, lineno, "'category' must be a string")
            seen += 1
            yield LabelledRow(str(obj.get("id", lineno)), request, scores, costs, category)
    finally:
        if stream is None:
            fh.close()
    if seen == 0:
        raise InvalidRequest(f"{source}: no rows (the file is empty)")


def _open(path: str | Path) -> IO[str]:
    try:
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror}") from None


def read_labelled(path: str | Path, *, need_scores: bool = True) -> list[LabelledRow]:
    return list(iter_rows(path, need_scores=need_scores))


def write_jsonl(path: str | Path, rows: Sequence[dict[str, Any]] | Iterator[dict[str, Any]]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n
