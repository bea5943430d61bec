"""The judge contract (DESIGN.md): one answer per call, a JSON reply ``{"score": 1-10, "reason":
...}``; a reply that does not parse, or a score outside 1-10, is dropped, never guessed. Stored
quality = (score - 1) / 9."""

from __future__ import annotations

import json
import re

from gearshift.chat import ChatRequest, Message, TextPart

__all__ = ["JUDGE_SYSTEM", "JudgeReplyError", "judge_request", "parse_judge_reply"]

JUDGE_SYSTEM = (
    "You are grading one answer from an AI assistant. Judge how well it answers the user's "
    "request: correctness first, then helpfulness, completeness and clarity. Reply with a JSON "
    'object only: {"score": <integer 1-10>, "reason": "<one sentence>"}, where 10 is a perfect '
    "answer and 1 is useless or wrong."
)
# Long prompts and answers are cut for the judge: its cost stays bounded and predictable.
MAX_PROMPT_CHARS = 12_000
MAX_ANSWER_CHARS = 12_000
JUDGE_MAX_TOKENS = 200
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class JudgeReplyError(ValueError):
    """The judge's reply is not a JSON object with an integer score in 1-10."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n[... cut ...]"


def _conversation(request: ChatRequest) -> str:
    parts = []
    for message in request.messages:
        text = message.text()
        if text:
            parts.append(f"[{message.role}]\n{text}")
    return "\n\n".join(parts)


def judge_request(
    request: ChatRequest, answer: str, *, judge_model: str, json_mode: bool
) -> ChatRequest:
    """The call that asks ``judge_model`` to grade ``answer`` to ``request``."""
    user = (
        "## The user's request\n"
        + _cut(_conversation(request), MAX_PROMPT_CHARS)
        + "\n\n## The answer to grade\n"
        + _cut(answer, MAX_ANSWER_CHARS)
        + '\n\nReply with the JSON object only: {"score": <1-10>, "reason": "..."}'
    )
    return ChatRequest(
        model=judge_model,
        messages=[
            Message(role="system", content=[TextPart(JUDGE_SYSTEM)]),
            Message(role="user", content=[TextPart(user)]),
        ],
        max_tokens=JUDGE_MAX_TOKENS,
        temperature=0.0,
        response_format={"type": "json_object"} if json_mode else None,
    )


def parse_judge_reply(text: str) -> float:
    """Quality in [0, 1] from the judge's reply, or ``JudgeReplyError``."""
    found = _OBJECT.search(text)
    if found is None:
        raise JudgeReplyError(f"no JSON object in the judge's reply: {text[:120]!r}")
    try:
        data = json.loads(found.group(0))
    except json.JSONDecodeError as exc:
        raise JudgeReplyError(f"the judge's reply is not JSON: {exc}") from None
    score = data.get("score") if isinstance(data, dict) else None
    if isinstance(score, bool) or not isinstance(score, int | float) or score != int(score):
        raise JudgeReplyError(f"the judge's score is not an integer: {score!r}")
    if not 1 <= score <= 10:
        raise JudgeReplyError(f"the judge's score {score} is outside 1-10")
    return (int(score) - 1) / 9.0
