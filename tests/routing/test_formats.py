"""Labelled JSONL reading: good rows, and every kind of bad input is a clear, located error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gearshift.errors import InvalidRequest
from gearshift.routing.formats import read_labelled


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "data.jsonl"
    p.write_text(text, encoding="utf-8")
    return p


def test_reads_rows_and_content_shapes(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "messages": [{"role": "user", "content": "hi"}], "scores": {"m": 1, "n": 0}},
        {
            "id": "b",
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": "x"}},
                    ],
                },
            ],
            "scores": {"m": 0.5, "n": True},
            "costs": {"m": 0.01},
        },
        {"id": "c", "prompt": "bare prompt", "scores": {"m": 0.25}},
    ]
    path = _write(tmp_path, "\n".join(json.dumps(r) for r in rows) + "\n\n")
    got = read_labelled(path)
    assert [r.id for r in got] == ["a", "b", "c"]
    assert got[1].scores == {"m": 0.5, "n": 1.0}
    assert got[1].costs == {"m": 0.01}
    assert got[1].request.system_text() == "be brief"
    assert got[2].request.last_user_text() == "bare prompt"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: each line must be a JSON object"),
        ('{"id": "x", "scores": {"m": 1}}', "line 2: row needs a non-empty 'messages'"),
        ('{"id": "x", "prompt": "p"}', "line 2: row has no 'scores'"),
        ('{"id": "x", "prompt": "p", "scores": {"m": 1.5}}', "must be in [0, 1]"),
        ('{"id": "x", "prompt": "p", "scores": {"m": "good"}}', "is not a number"),
        ('{"id": "x", "prompt": "p", "scores": {"m": 1}, "costs": {"m": -1}}', "must be >= 0"),
        (
            '{"id": "x", "messages": [{"role": "robot", "content": "hi"}], "scores": {"m": 1}}',
            "unknown role",
        ),
        ('{"id": "x", "prompt": "p", "scores": {"m": 1}, "category": 3}', "'category' must be"),
    ],
)
def test_bad_lines_name_their_line(tmp_path: Path, line: str, message: str) -> None:
    good = json.dumps({"id": "ok", "prompt": "fine", "scores": {"m": 1}})
    path = _write(tmp_path, good + "\n" + line + "\n")
    with pytest.raises(InvalidRequest) as info:
        read_labelled(path)
    assert str(path) in info.value.message
    assert message in info.value.message


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="empty"):
        read_labelled(_write(tmp_path, "\n  \n"))
    with pytest.raises(InvalidRequest, match="cannot read"):
        read_labelled(tmp_path / "nope.jsonl")


def test_scores_optional_for_scoring(tmp_path: Path) -> None:
    path = _write(tmp_path, json.dumps({"id": "x", "prompt": "p"}) + "\n")
    assert read_labelled(path, need_scores=False)[0].scores == {}


def test_category_is_read_and_optional(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "prompt": "p", "scores": {"m": 1}, "category": "mmlu/anatomy"}),
        json.dumps({"id": "b", "prompt": "q", "scores": {"m": 0}}),
    ]
    rows = read_labelled(_write(tmp_path, "\n".join(lines) + "\n"))
    assert [r.category for r in rows] == ["mmlu/anatomy", ""]
