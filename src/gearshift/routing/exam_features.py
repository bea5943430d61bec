"""Exam-structure features: answer options, wording flags, the stem's length and numbers.

``exam_dense(text)`` reads the text the rest of the dense vector reads as the request's question:
the final question of a few-shot prompt (``features.extract_text`` passes it in after dropping the
worked examples), otherwise the final user turn, bounded to its last ``WINDOW`` characters. The
options are the ``A.``/``B)`` lines; the stem is what precedes the first of them. One regex pass
over the window, one over the stem's last ``STEM_CHARS`` characters, and ``str.count`` calls, so
the cost does not grow with the prompt.
"""

from __future__ import annotations

import math
import operator
import re
from itertools import repeat

__all__ = ["EXAM_NAMES", "WINDOW", "exam_dense"]

WINDOW = 1300  # options are looked for here, as far back as the focus window reads
STEM_CHARS = 300  # the stem's words and numbers are read from its last this many characters

_OPTION = re.compile(r"\n([A-E])[.)] ?(.*)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_DIGITS = tuple("0123456789")
_NEGATIONS = ("not ", "except", "false", "incorrect", "least", "never", "cannot")

EXAM_NAMES: tuple[str, ...] = (
    "options",
    "option_len_mean",
    "option_len_max",
    "option_len_spread",
    "numeric_option_share",
    "option_words_mean",
    "all_of_above",
    "none_of_above",
    "stem_negation",
    "stem_chars",
    "stem_numbers",
    "stem_max_digits",
    "stem_decimals",
    "stem_slashes",
    "stem_percents",
    "stem_dollars",
    "stem_sentences",
    "stem_long_word_share",
    "roman_numeral_items",
    "stem_blank",
    "stem_short",
    "stem_long",
)

_ln = math.log1p


def _is_number(option: str) -> bool:
    bare = option.strip().rstrip(".").replace("$", "").replace("%", "")
    return _NUMBER.fullmatch(bare) is not None


def exam_dense(text: str) -> list[float]:
    """The exam-structure features of ``text`` (see ``EXAM_NAMES``)."""
    q = text[-WINDOW:]
    options = [o for _, o in _OPTION.findall(q)]
    if not options:
        return _without_options(q)
    first = q.find("\nA.")
    stem = q[:first] if first >= 0 else q
    # Numbers, words and marks are read from the end of the stem only (the question sits there).
    tail = stem[-STEM_CHARS:]
    end = tail.lower()
    lengths = [len(o) for o in options] or [0]
    mean = sum(lengths) / len(lengths)
    spread = (sum((x - mean) ** 2 for x in lengths) / len(lengths)) ** 0.5
    n_opt = max(1, len(options))
    said = end + " " + " ".join(options).lower()
    listed = tail + "\n" + "\n".join(options)
    roman = " I." in listed or "\nI." in listed or "I and II" in listed or "II." in listed
    return [
        float(len(options)),
        _ln(mean),
        _ln(max(lengths)),
        spread / (mean + 1),
        sum(map(_is_number, options)) / n_opt,
        sum(o.count(" ") + 1 for o in options) / n_opt,
        *_question_terms(stem, tail, end, said, roman),
    ]


def _question_terms(stem: str, tail: str, end: str, said: str, roman: bool) -> list[float]:
    """The features after the option terms: what the question says, the stem's length, and the
    numbers, marks and words of its end (``tail``, ``end`` lower-cased)."""
    # most chat text has no digits at all: ten C-level scans beat the regex there
    numbers = _NUMBER.findall(end) if any(map(end.__contains__, _DIGITS)) else []
    words = end.split()
    return [
        float("all of the above" in said or "both" in said),
        float("none of the above" in said),
        float(any(map(end.__contains__, _NEGATIONS))),
        _ln(len(stem)),
        _ln(len(numbers)),
        _ln(max(map(len, numbers), default=0)),
        _ln(sum(map(operator.contains, numbers, repeat(".")))),
        _ln(tail.count("/")),
        _ln(tail.count("%")),
        _ln(tail.count("$")),
        _ln(tail.count(". ") + tail.count("? ") + 1),
        sum(map((8).__lt__, map(len, words))) / max(1, len(words)),
        float(roman),
        float("_" in tail),
        float(len(stem) < 80),
        float(len(stem) > 400),
    ]


def _without_options(q: str) -> list[float]:
    """``exam_dense`` of a window with no ``A.``/``B)`` lines (most traffic), the option terms
    written out as the constants they are: the same numbers, ~40% less time."""
    tail = q[-STEM_CHARS:]
    end = tail.lower()
    roman = " I." in tail or "\nI." in tail or "I and II" in tail or "II." in tail
    # options, _ln(mean) and _ln(max) of [0], spread, numeric option share, option words
    return [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, *_question_terms(q, tail, end, end, roman)]
