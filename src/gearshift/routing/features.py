"""Prompt features for routing: cheap, bounded, no network, no ML framework.

Two views of a request:

* ``tokens`` — lower-cased word and symbol unigrams and bigrams of the *focus* text, for the
  learned text model. The focus is the final user turn, bounded to a head and a tail window: an
  exam prompt with a few-shot block puts its real question at the end, and an 8k-token prompt
  must cost no more than a short one. The system prompt contributes its head's unigrams.
* ``dense`` — structural numbers about the whole conversation (length of the final question and
  of the whole prompt, turns, system prompt, code, math, reasoning cues, constraints, requested
  length, few-shot examples, multiple choice, non-English text, tools, images, JSON mode), then
  exam structure (answer options, wording flags, the stem's length and numbers; see
  ``exam_features.py``). Most are ``str.count`` calls, which run in C over the whole text.

``kind`` is the task kind (code, math, reasoning, extraction, summarisation, writing, roleplay,
chat, translation, classification, knowledge) scored from these same tokens and numbers by the
model in ``kinds.py``; ``kind_probs`` holds every kind's probability, for routers that use them as
features.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from itertools import pairwise, repeat
from operator import add

import numpy as np
import numpy.typing as npt

from gearshift.chat import ChatRequest, ImagePart
from gearshift.routing.exam_features import EXAM_NAMES, exam_dense
from gearshift.routing.kinds import KINDS, kind_model

__all__ = ["DENSE_NAMES", "Features", "extract", "extract_text", "focus_window"]

FloatArray = npt.NDArray[np.float64]
_NO_PROBS: FloatArray = np.zeros(0)
HEAD_CHARS = 300
TAIL_CHARS = 1000
SYSTEM_CHARS = 300
FEWSHOT_CHARS = 3000  # few-shot markers are counted in this much of the final turn's tail
MAX_TOKENS = 150  # words per request, after windowing (200 cost 20-40 µs more, no better in CV)
HEAD_TOKENS = MAX_TOKENS // 4  # a longer focus text keeps its first and last words
TAIL_TOKENS = MAX_TOKENS - HEAD_TOKENS

_TOKEN = re.compile(r"[a-z]+|[0-9]+")  # on lower-cased ASCII; see _spaced
MAX_SPLITS = 64  # letter/digit boundaries spliced in one by one; past this the regex is cheaper
# bytes.translate tables; bytes.isalpha and bytes.isdigit are ASCII-only, like the token pattern.
_BYTE = [bytes((b,)) for b in range(256)]
_FOLD = b"".join(c.lower() if c.isalnum() else b" " for c in _BYTE)
_CLASS = b"".join(b"a" if c.isalpha() else b"0" if c.isdigit() else b" " for c in _BYTE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
# Code and math marks are counted with ``str.count`` (C speed, whole focus text).
_CODE_MARKS = (
    "```",
    "def ",
    "class ",
    "return ",
    "import ",
    "#include",
    "function",
    "=>",
    "const ",
    "public ",
    "SELECT ",
    "void ",
    ");",
    "{\n",
    "</",
    "self.",
    "print(",
    "console.",
)
_LATEX_MARKS = ("\\frac", "\\sqrt", "\\sum", "\\int", "\\cdot", "\\times", "\\pi", "\\boxed", "$")
_LATEX_COMMANDS = tuple(m for m in _LATEX_MARKS if m.startswith("\\"))
_DIGITS = tuple("0123456789")
_OPERATORS = ("=", "+", "*", "/", "^", "<", ">")
_CHOICE_MARKS = (*(f"\n{c}{p}" for c in "ABCDE" for p in ".)"), "(A)", "(B)", "(C)")
# The same marks, split by the character each one holds: a text without it cannot hold them.
_CHOICE_LINES = tuple(m for m in _CHOICE_MARKS if "\n" in m)
_CHOICE_PARENS = tuple(m for m in _CHOICE_MARKS if "\n" not in m)
_LIST_MARKS = ("\n- ", "\n* ", "\n• ", "\n1.", "\n2.", "\n3.", "\n1)", "\n2)")
_FEWSHOT_MARKS = ("Answer:", "\nQ:", "\nA:", "Question:", "Example", "Input:", "Output:")

# A substring count that finds nothing still scans the whole text (~1 ns a character and mark);
# ``char in text`` is a memchr. So a code mark holding a rare character is counted only where that
# character occurs, and marks bound to a separator (list items after a newline, few-shot labels
# before a colon) are checked at each separator while those are few.
_RARE = "`#>;{<("
_CODE_PLAIN = tuple(m for m in _CODE_MARKS if not set(m) & set(_RARE))
_CODE_GATED = tuple(
    (next(c for c in m if c in _RARE), m) for m in _CODE_MARKS if set(m) & set(_RARE)
)
_FEWSHOT_STEMS = tuple(m[:-1] for m in _FEWSHOT_MARKS if m.endswith(":"))
_FEWSHOT_OTHER = tuple(m for m in _FEWSHOT_MARKS if not m.endswith(":"))
MAX_SEPARATORS = 32  # past this many, counting each mark is cheaper than a check at each one

# Word and phrase cues, matched against the focus text's unigrams and bigrams.
_CUES: dict[str, tuple[str, ...]] = {
    "reasoning": (
        "step by",
        "by step",
        "prove",
        "proof",
        "derive",
        "justify",
        "why",
        "analyze",
        "analyse",
        "compare",
        "evaluate",
        "reason",
        "reasoning",
        "critique",
        "tradeoffs",
        "implications",
        "explain",
    ),
    "constraints": (
        "must",
        "should",
        "exactly",
        "at least",
        "at most",
        "no more",
        "without",
        "only",
        "do not",
        "don '",
        "ensure",
        "format",
        "include",
        "avoid",
        "limit",
    ),
    "long_output": (
        "essay",
        "in detail",
        "detailed",
        "comprehensive",
        "pages",
        "chapter",
        "thorough",
        "thoroughly",
        "elaborate",
        "report",
        "article",
    ),
    "short_output": (
        "brief",
        "briefly",
        "short",
        "concise",
        "one word",
        "one sentence",
        "yes or",
        "summarize",
        "summarise",
        "tl",
        "quick",
    ),
    "extraction": (
        "extract",
        "json",
        "parse",
        "list all",
        "identify",
        "classify",
        "categorize",
        "categorise",
        "label",
        "table",
        "csv",
    ),
    "writing": (
        "write",
        "poem",
        "story",
        "blog",
        "email",
        "letter",
        "draft",
        "rewrite",
        "compose",
        "slogan",
        "tweet",
        "song",
        "lyrics",
    ),
    "roleplay": (
        "pretend",
        "roleplay",
        "role play",
        "act as",
        "you are",
        "imagine you",
        "character",
    ),
    "math_words": (
        "calculate",
        "compute",
        "solve",
        "equation",
        "how many",
        "how much",
        "probability",
        "integral",
        "derivative",
        "theorem",
        "prime",
        "matrix",
        "sum",
        "percent",
        "total",
        "remainder",
        "digits",
        "integer",
    ),
}
_CUE_INDEX: dict[str, tuple[int, ...]] = {}
for _i, _words in enumerate(_CUES.values()):
    for _w in _words:
        _CUE_INDEX[_w] = (*_CUE_INDEX.get(_w, ()), _i)
_CUE_NAMES = tuple(_CUES)

DENSE_NAMES: tuple[str, ...] = (
    "log_chars_total",
    "log_chars_last_user",
    "log_chars_question",
    "log_words_question",
    "turns",
    "assistant_turns",
    "has_system",
    "log_chars_system",
    "code_marks",
    "code_fence",
    "latex_marks",
    "math_words",
    "numbers",
    "operators",
    "question_marks",
    "list_items",
    "constraints",
    "reasoning_cues",
    "long_output",
    "short_output",
    "extraction",
    "writing",
    "roleplay",
    "choices",
    "fewshot_marks",
    "newlines",
    "non_ascii_share",
    "tools",
    "images",
    "json_mode",
    "avg_word_len",
    "distinct_numbers",
    "sentences",
    *EXAM_NAMES,
)


@dataclass(slots=True)
class Features:
    dense: list[float]
    tokens: set[str]  # distinct n-grams of the focus text (and system-prompt unigrams)
    kind: str  # the most likely of kinds.KINDS ("" when extracted with kinds=False)
    kind_probs: FloatArray  # probability of each of kinds.KINDS (empty with kinds=False)
    # the focus text's words in order (the window the n-grams come from): the prompt encoder's
    # input (``encoder.py``), embedded only by a router that uses it
    words: list[str] = field(default_factory=list)


def focus_window(text: str) -> str:
    """The part of a long text the token model reads: its head and its tail."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def _final_question(text: str) -> str:
    """The last block of the final turn: the question after a few-shot block or a long context."""
    tail = text[-TAIL_CHARS:]
    cut = tail.rfind("\n\n")
    if cut > 0 and len(tail) - cut > 40:
        return tail[cut + 2 :]
    return tail


_ln = math.log1p


def _boundaries(kinds: bytes) -> list[int] | None:
    """Offsets where a letter run meets a digit run ("h2o", "3x"); None past ``MAX_SPLITS``."""
    cuts: list[int] = []
    for pair in (b"a0", b"0a"):
        at = kinds.find(pair)
        while at >= 0:
            if len(cuts) == MAX_SPLITS:
                return None
            cuts.append(at + 1)
            at = kinds.find(pair, at + 1)
    cuts.sort()
    return cuts


def _list_items(focus: str, newlines: int) -> int:
    """``_LIST_MARKS`` occurrences: every mark starts with the only newline in it."""
    if newlines > MAX_SEPARATORS:
        return sum(map(focus.count, _LIST_MARKS))
    found = 0
    at = focus.find("\n")
    while at >= 0:
        found += focus.startswith(_LIST_MARKS, at)
        at = focus.find("\n", at + 1)
    return found


def _fewshot_marks(text: str, start: int) -> int:
    """``_FEWSHOT_MARKS`` in ``text[start:]``; a label with a colon ends at the only colon in it."""
    if text.count(":", start) > MAX_SEPARATORS:
        return sum(map(text.count, _FEWSHOT_MARKS, repeat(start)))
    found = sum(map(text.count, _FEWSHOT_OTHER, repeat(start)))
    at = text.find(":", start)
    while at >= 0:
        found += text.endswith(_FEWSHOT_STEMS, start, at)
        at = text.find(":", at + 1)
    return found


def _spaced(text: str) -> str:
    """The text as its ``_TOKEN`` words, lower-cased and separated by whitespace, for ``split``.

    Every non-ASCII character separates words — including the few that ``str.lower`` would fold to
    ASCII (U+0130 'İ', U+212A Kelvin sign) and non-ASCII digits, the only differences from
    ``_TOKEN.findall(text.lower())``. ``_TOKEN.findall`` costs ~50 ns a character, most
    of a long prompt's features; two ``bytes.translate`` passes and ``split`` cost a few.
    """
    raw = text.encode("ascii", "replace")
    folded = raw.translate(_FOLD)
    cuts = _boundaries(raw.translate(_CLASS))
    if cuts is None:
        return " ".join(_TOKEN.findall(folded.decode("ascii")))
    if cuts:
        folded = b" ".join(folded[i:j] for i, j in pairwise((0, *cuts, len(folded))))
    return folded.decode("ascii")


def spaced_words(text: str) -> list[str]:
    """The words of ``text`` as the token model sees them (lower-cased ASCII runs)."""
    return _spaced(text).split()


def _ends(spaced: str) -> list[str]:
    """The words of ``spaced``, only the first ``HEAD_TOKENS`` and last ``TAIL_TOKENS`` if longer.

    ``maxsplit`` leaves the middle as one string instead of making words that are dropped.
    """
    head = spaced.split(maxsplit=HEAD_TOKENS)
    if len(head) <= HEAD_TOKENS:
        return head
    rest = head.pop()
    return head + rest.rsplit(maxsplit=TAIL_TOKENS)[-TAIL_TOKENS:]


def extract_text(
    last_user: str,
    *,
    total_chars: int | None = None,
    system: str = "",
    turns: int = 1,
    assistant_turns: int = 0,
    tools: int = 0,
    images: int = 0,
    json_mode: bool = False,
    kinds: bool = True,
) -> Features:
    """Features of a prompt given as text plus a few facts about its conversation.

    ``kinds=False`` skips the kind model: ``build_kinds`` trains that model from these features.
    Whitespace around the text carries no meaning, so it is not read: "ok" and "ok\n" are one
    prompt to every feature (and so to the router).
    """
    stripped = last_user.strip()
    last_user = _without_courtesies(stripped)
    if total_chars is not None:  # the conversation's length leaves them out too
        total_chars -= len(stripped) - len(last_user)
    system = system.strip()
    question = _final_question(last_user)
    fewshot = _fewshot_marks(last_user, max(0, len(last_user) - FEWSHOT_CHARS))
    # A few-shot prompt (worked examples, then the real question): every feature reads the final
    # question only, so the examples' length and words do not make an easy question look hard.
    if len(last_user) > len(question) + 200 and fewshot >= 3:
        if total_chars is not None:
            total_chars -= len(last_user) - len(question)
        last_user = question
        fewshot = _fewshot_marks(question, 0)
    focus = focus_window(last_user)
    tokens = _ends(_spaced(focus))
    distinct = set(tokens)
    distinct.update(map(" ".join, pairwise(tokens)))
    if system:
        distinct.update(map(add, repeat("s:"), _spaced(system[:SYSTEM_CHARS]).split()))

    cues = [0] * len(_CUE_NAMES)
    for g in _CUE_INDEX.keys() & distinct:  # distinct cue words present (C-speed intersection)
        for j in _CUE_INDEX[g]:
            cues[j] += 1
    reasoning, constraints, long_out, short_out, extraction, writing, roleplay, math_words = cues
    code = sum(map(focus.count, _CODE_PLAIN)) + sum(
        [focus.count(mark) for char, mark in _CODE_GATED if char in focus]
    )
    newlines = focus.count("\n")
    # Each group of marks is counted only where the character they all hold occurs (see _RARE).
    latex = question.count("$")
    if "\\" in question:
        latex += sum(map(question.count, _LATEX_COMMANDS))
    # \d is any Unicode digit: only an ASCII text without 0-9 is known to have none
    no_digits = question.isascii() and not any(map(question.__contains__, _DIGITS))
    found = [] if no_digits else _NUMBER.findall(question)
    numbers = len(found)
    choices = sum(map(question.count, _CHOICE_LINES)) if "\n" in question else 0
    if "(" in question:
        choices += sum(map(question.count, _CHOICE_PARENS))
    q_words = question.count(" ") + 1
    n_focus = len(focus)
    n_ascii = len(focus) if focus.isascii() else len(focus.encode("ascii", "ignore"))
    dense = [
        _ln(total_chars if total_chars is not None else len(last_user) + len(system)),
        _ln(len(last_user)),
        _ln(len(question)),
        _ln(q_words),
        float(min(turns, 20)),
        float(min(assistant_turns, 20)),
        1.0 if system else 0.0,
        _ln(len(system)),
        _ln(code),
        float("`" in focus and "```" in focus),
        _ln(latex),
        _ln(math_words),
        _ln(numbers),
        _ln(sum(map(question.count, _OPERATORS))),
        _ln(question.count("?")),
        _ln(_list_items(focus, newlines)),
        _ln(constraints),
        _ln(reasoning),
        _ln(long_out),
        _ln(short_out),
        _ln(extraction),
        _ln(writing),
        _ln(roleplay),
        _ln(choices),
        _ln(fewshot),
        _ln(newlines),
        (n_focus - n_ascii) / n_focus if n_focus else 0.0,  # an empty prompt is not foreign
        _ln(tools),
        _ln(images),
        1.0 if json_mode else 0.0,
        min(len(question) / q_words, 20.0) / 10.0,
        _ln(len(set(found))),
        _ln(question.count(". ") + question.count("? ") + question.count("! ")),
        # Answer options, wording, stem: of the final question for a few-shot prompt, else of
        # the final turn's last 1,300 characters (see exam_features.py).
        *exam_dense(last_user),
    ]
    if not kinds:
        return Features(dense=dense, tokens=distinct, kind="", kind_probs=_NO_PROBS, words=tokens)
    best, probs = kind_model().best_and_probabilities(distinct, dense, DENSE_NAMES)
    return Features(dense=dense, tokens=distinct, kind=KINDS[best], kind_probs=probs, words=tokens)


# A greeting before the request and thanks after it say nothing about the task; read, they moved
# "What is 2 + 2?" from difficulty 0.14 to 0.20. Only removed when a request is left.
_OPENING = re.compile(
    r"(?:hi|hello|hey|hiya|greetings|good (?:morning|afternoon|evening)|please)\b"
    r"(?:[\s,!.:;-]+(?:there|all|team|everyone|folks)\b)?[\s,!.:;-]*",
    re.IGNORECASE,
)
_CLOSING = re.compile(
    r"[\s,]*\b(?:thanks|thank you|thx|cheers|please)(?: (?:so much|a lot|in advance))?"
    r"[\s!.:)]*$",
    re.IGNORECASE,
)


def _without_courtesies(text: str) -> str:
    if len(text) > 2000 or not text[:1].isalpha():
        head = text
    else:
        m = _OPENING.match(text)
        head = text[m.end() :] if m and m.end() < len(text) else text
    m = _CLOSING.search(head, max(0, len(head) - 40))
    return head[: m.start()] if m and m.start() > 0 else head


def extract(request: ChatRequest) -> Features:
    """Features of a whole chat request."""
    last_user = ""
    system_parts: list[str] = []
    total = 0
    turns = 0
    assistant_turns = 0
    images = 0
    for message in request.messages:
        text = message.text().strip()
        total += len(text)
        if message.role == "system":
            system_parts.append(text)
            continue
        turns += 1
        if message.role == "assistant":
            assistant_turns += 1
        elif message.role == "user":
            last_user = text
        images += sum(1 for p in message.content if isinstance(p, ImagePart))
    fmt = request.response_format or {}
    return extract_text(
        last_user,
        total_chars=total,
        system="\n".join(system_parts),
        turns=turns,
        assistant_turns=assistant_turns,
        tools=len(request.tools),
        images=images,
        json_mode=str(fmt.get("type", "")).startswith("json"),
    )
