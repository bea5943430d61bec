"""Marks are counted only where the character they all hold occurs (a speed-up): the counts must
be those of counting every mark everywhere, including for digits outside ASCII (``\\d``)."""

from __future__ import annotations

import math

import pytest

from gearshift.routing import features as F

TEXTS = [
    "٣ apples and ٤ pears",  # Arabic-Indic digits: \\d matches them
    "１２３ full-width",
    "pick (A) or (B) or (C)",
    "Which one?\nA. one\nB) two\nC. three",
    "$x$ and \\frac{1}{2} and \\sqrt{2}",
    "no marks at all",
    "1.5, 2,000 and 3",
    "a\\b",
]


@pytest.mark.parametrize("text", TEXTS)
def test_gated_counts_equal_full_counts(text: str) -> None:
    dense = dict(zip(F.DENSE_NAMES, F.extract_text(text, kinds=False).dense, strict=False))
    question = text  # short single-block texts: the final question is the whole text
    assert dense["latex_marks"] == math.log1p(sum(map(question.count, F._LATEX_MARKS)))
    assert dense["numbers"] == math.log1p(len(F._NUMBER.findall(question)))
    assert dense["choices"] == math.log1p(sum(map(question.count, F._CHOICE_MARKS)))
