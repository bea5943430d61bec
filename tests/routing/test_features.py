"""Features: bounded work, few-shot robustness, kinds, conversation structure."""

from __future__ import annotations

import itertools
import math
import random
import re

from gearshift.chat import ChatRequest, ImagePart, Message, TextPart, Tool
from gearshift.routing.features import (
    _CODE_MARKS,
    DENSE_NAMES,
    MAX_TOKENS,
    _final_question,
    _without_courtesies,
    extract,
    extract_text,
)


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
    assert bare.kind == few_shot.kind == "knowledge"  # an exam question asks for knowledge


def test_long_prompts_are_windowed() -> None:
    long = "alpha beta gamma delta " * 5000 + "final question about zeta?"
    feats = extract_text(long)
    assert len(feats.tokens) <= 2 * MAX_TOKENS  # unigrams + bigrams of a bounded window
    assert "zeta" in feats.tokens  # the tail (where the question is) is always read
    assert len(feats.dense) == len(DENSE_NAMES)


def test_kinds() -> None:
    """Features carry the kind detector's answer (routing/kinds.py; its accuracy: test_kinds.py)."""
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


def _reference_tokens(text: str) -> set[str]:
    """The token set by its plain definition (what the fast tokeniser must reproduce)."""
    words = re.findall(r"[a-z]+|[0-9]+", text.lower())
    if len(words) > MAX_TOKENS:
        words = words[: MAX_TOKENS // 4] + words[-(MAX_TOKENS - MAX_TOKENS // 4) :]
    return set(words) | {a + " " + b for a, b in itertools.pairwise(words)}


_FEW_SHOT = ("Answer:", "\nQ:", "\nA:", "Question:", "Example", "Input:", "Output:")
_PIECES = (
    *("word ", "Word ", "H2O ", "3x ", "a1b2c3 ", "café ", "naïve ", "12.5 ", "x\u00a0y "),
    *("\n", "\n\n", ":", " ", ". ", "? ", "- ", "* ", "1.", "2)", "• ", "(A)", "\nB.", "Q", "A"),
    *("```", "def ", "class ", "=>", ");", "{\n", "</", "print(", "self.", "#include"),
)


def test_fast_paths_match_the_plain_definitions() -> None:
    rng = random.Random(7)
    for pieces in (_PIECES, _PIECES + _FEW_SHOT):
        for size in (0, 3, 40, 200, 700, 2500):
            for _ in range(10):
                prompt = "".join(rng.choice(pieces) for _ in range(size))
                # whitespace and courtesies around a prompt are not read
                text = _without_courtesies(prompt.strip())
                question = _final_question(text)
                shots = sum(text[-3000:].count(m) for m in _FEW_SHOT)
                if shots >= 3 and len(text) > len(question) + 200:
                    text = question  # the few-shot rule: only the final question is read
                    shots = sum(question.count(m) for m in _FEW_SHOT)
                focus = text if len(text) <= 1301 else text[:300] + "\n" + text[-1000:]
                lists = sum(
                    focus.count(m) for m in ("\n- ", "\n* ", "\n• ", "\n1.", "\n2.", "\n3.")
                )
                lists += focus.count("\n1)") + focus.count("\n2)")
                feats = extract_text(prompt)
                dense = dict(zip(DENSE_NAMES, feats.dense, strict=True))
                assert feats.tokens == _reference_tokens(focus)
                assert dense["list_items"] == math.log1p(lists)
                assert dense["fewshot_marks"] == math.log1p(shots)
                assert dense["code_marks"] == math.log1p(sum(map(focus.count, _CODE_MARKS)))
                assert dense["code_fence"] == float("```" in focus)
                assert dense["newlines"] == math.log1p(focus.count("\n"))


def test_tokens_split_letters_from_digits_and_at_non_ascii() -> None:
    tokens = extract_text("H2O at 3PM, café 12.5 a1b2").tokens
    assert {"h", "2", "o", "3", "pm", "caf", "12", "5", "a", "1", "b"} <= tokens
    assert {"h 2", "2 o", "caf 12"} <= tokens
    many = "ab12" * 400  # past the boundary budget: same tokens by the slower route
    assert extract_text(many).tokens == _reference_tokens(many[:300] + "\n" + many[-1000:])


def test_whitespace_around_a_prompt_changes_nothing() -> None:
    # "ok" and "ok\n" are one prompt: a trailing newline once moved "thanks!" between models
    import json
    from importlib import resources

    from gearshift.routing import decide_prompt, router_for_models

    data = resources.files("gearshift.routing") / "data" / "kinds_labelled.jsonl"
    texts = [json.loads(line)["text"] for line in data.read_text("utf-8").splitlines()[::8]]
    texts += ["ok", "thanks!", "What is 2 + 2?"]
    router = router_for_models(["gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"])
    for text in texts:
        plain = extract(ChatRequest(model="m", messages=[Message(role="user", content=text)]))
        base = decide_prompt(router, text)
        for padded in (text + "\n", "  " + text, "\n\n" + text + " \t\n"):
            request = ChatRequest(
                model="m",
                messages=[
                    Message(role="system", content=" \n"),
                    Message(role="user", content=padded),
                ],
            )
            got = extract(request)
            assert got.dense == plain.dense, (text, padded)
            assert got.tokens == plain.tokens and got.kind == plain.kind, (text, padded)
            assert decide_prompt(router, padded).predicted == base.predicted, (text, padded)


def test_an_empty_prompt_is_not_foreign_text() -> None:
    # it once counted as 100% non-ASCII, which the kind detector read as a translation request
    for text in ("", "   \n"):
        dense = dict(zip(DENSE_NAMES, extract_text(text).dense, strict=True))
        assert dense["non_ascii_share"] == 0.0
    assert extract_text("").kind != "translation"
    assert dict(zip(DENSE_NAMES, extract_text("日本").dense, strict=True))["non_ascii_share"] == 1.0


def test_greetings_and_thanks_around_a_request_change_nothing() -> None:
    from gearshift.routing import decide_prompt, router_for_models

    router = router_for_models(["gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"])
    for core in ("What is 2 + 2?", "how do I reset my password?", "Summarise this: the cat sat."):
        base = extract_text(core)
        for dressed in (
            f"Hi! {core}",
            f"Hello there, {core}",
            f"Good morning team, {core}",
            f"Please {core}",
            f"{core} Thanks!",
            f"hey, {core} thank you so much :)",
        ):
            got = extract_text(dressed)
            assert got.tokens == base.tokens and got.dense == base.dense, dressed
            assert decide_prompt(router, dressed).predicted == decide_prompt(router, core).predicted
    # a courtesy that is the whole message is the message; a word that only starts like one stays
    assert extract_text("thanks!").tokens == {"thanks"}
    assert "hiring" in extract_text("Hiring plan for Q3").tokens
    assert "thanks" in extract_text("Thanks for sharing!").tokens
