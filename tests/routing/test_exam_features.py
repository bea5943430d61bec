"""Exam-structure features: read from the final question of a few-shot prompt, bounded work."""

from __future__ import annotations

from gearshift.routing.exam_features import EXAM_NAMES, exam_dense
from gearshift.routing.features import DENSE_NAMES, extract_text

QUESTION = (
    "Which of the following is NOT a noble gas? Choose the best answer.\n"
    "A. Neon\nB. Argon\nC. Nitrogen\nD. All of the above\nAnswer:"
)
# A 5-shot exam prompt: worked examples with numbers, long options and negations of their own.
SHOTS = "".join(
    f"The following is a question about arithmetic, {i}/7 of 100% in $ and 3.{i} units.\n"
    f"What is {i} plus {i}? Do not guess.\n"
    f"A. {i} and a long explanation of why it could be\nB. {2 * i}\nC. 0\nD. 1\nE. 5\n"
    "Answer: B\n\n"
    for i in range(5)
)


def _exam_part(text: str) -> dict[str, float]:
    feats = extract_text(text)
    named = dict(zip(DENSE_NAMES, feats.dense, strict=True))
    return {name: named[name] for name in EXAM_NAMES}


def test_five_shot_prompt_reads_only_its_final_question() -> None:
    bare, few_shot = _exam_part(QUESTION), _exam_part(SHOTS + QUESTION)
    assert few_shot == bare
    assert bare["options"] == 4.0  # the final question's options, not the 25 of the examples
    assert bare["stem_negation"] == 1.0 and bare["all_of_above"] == 1.0
    assert bare["stem_numbers"] == 0.0 and bare["stem_dollars"] == 0.0
    # The whole-text view would have seen the examples' options and numbers.
    assert exam_dense(SHOTS + QUESTION) != exam_dense(QUESTION)


def test_exam_features_are_bounded_and_in_the_dense_vector() -> None:
    long = "a sentence with 12 numbers and 3.5 more. " * 5000 + QUESTION
    assert exam_dense(long)[0] == 4.0
    assert len(extract_text(long).dense) == len(DENSE_NAMES)
    assert len(set(DENSE_NAMES)) == len(DENSE_NAMES)
    assert len(exam_dense("")) == len(EXAM_NAMES)
