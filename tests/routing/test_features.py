"""Features: bounded work, few-shot robustness, kinds, conversation structure."""

from __future__ import annotations

from gearshift.chat import ChatRequest, ImagePart, Message, TextPart, Tool
from gearshift.routing.features import DENSE_NAMES, MAX_TOKENS, extract, extract_text


def test_few_shot_block_does_not_change_the_question_features() -> None:
    shots = "".join(
        f"Question: what is {i} plus {i}?\nA. {i}\nB. {2 * i}\nC. 0\nD. 1\nAnswer: B\n\n"
        for i in range(5)
    )
    question = (
        "Question: Which gas do plants absorb?\nA. Oxygen\nB. CO2\nC. Neon\nD. Argon\nAnswer:"
    )
    bare, few_shot = extract_text(question), extract_text(shots + question)
    assert few_shot.dense == bare.dense
    assert few_shot.tokens == bare.tokens
    assert bare.kind == "exam"


def test_long_prompts_are_windowed() -> None:
    long = "alpha beta gamma delta " * 5000 + "final question about zeta?"
    feats = extract_text(long)
    assert len(feats.tokens) <= 2 * MAX_TOKENS  # unigrams + bigrams of a bounded window
    assert "zeta" in feats.tokens  # the tail (where the question is) is always read
    assert len(feats.dense) == len(DENSE_NAMES)


def test_kinds() -> None:
    assert (
        extract_text("Write a Python function to parse a CSV file and unit test it").kind == "code"
    )
    assert extract_text("def f(x):\n    return x + 1\n\nWhy does this fail?").kind == "code"
    assert extract_text("Solve the equation 3x + 5 = 20 and compute x squared").kind == "math"
    assert extract_text("Write a short poem about rain").kind == "writing"
    assert extract_text("Extract all dates from this text as JSON: ...").kind == "extraction"
    assert extract_text("Pretend you are a pirate captain greeting the crew").kind == "roleplay"
    assert extract_text("hello there").kind == "chat"


def test_conversation_structure() -> None:
    request = ChatRequest(
        model="auto",
        messages=[
            Message(role="system", content=[TextPart("You are terse.")]),
            Message(role="user", content=[TextPart("hi"), ImagePart(url="http://x/y.png")]),
            Message(role="assistant", content=[TextPart("hello")]),
            Message(role="user", content=[TextPart("and now?")]),
        ],
        tools=[Tool(name="search")],
        response_format={"type": "json_object"},
    )
    dense = dict(zip(DENSE_NAMES, extract(request).dense, strict=True))
    assert dense["turns"] == 3 and dense["assistant_turns"] == 1
    assert dense["has_system"] == 1.0 and dense["json_mode"] == 1.0
    assert dense["tools"] > 0 and dense["images"] > 0
    assert "s:terse" in extract(request).tokens
