"""Labelled rows with null costs, null categories and missing models; costs priced from lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gearshift.errors import InvalidRequest
from gearshift.routing.formats import read_labelled
from gearshift.routing.row_costs import DEFAULT_ANSWER_TOKENS, fill_missing_costs, list_price


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_null_costs_and_category_read_as_not_recorded(tmp_path: Path) -> None:
    data = _write(
        tmp_path / "mm.jsonl",
        [
            {
                "id": "a",
                "messages": [{"role": "user", "content": "What is 2+2?"}],
                "scores": {"gpt-4-0314": 1.0, "llama-13b": 0.0, "claude-1": None},
                "costs": {"gpt-4-0314": None, "llama-13b": 0.002},
                "category": None,
            }
        ],
    )
    (row,) = read_labelled(data)
    assert row.scores == {"gpt-4-0314": 1.0, "llama-13b": 0.0}  # claude-1 did not answer
    assert row.costs == {"llama-13b": 0.002}
    assert row.category == ""


def test_fill_missing_costs_prices_from_lists_and_keeps_recorded(tmp_path: Path) -> None:
    prompt = "x" * 400  # 101 estimated tokens + 4 message overhead
    data = _write(
        tmp_path / "mm.jsonl",
        [
            {
                "id": "a",
                "messages": [{"role": "user", "content": prompt}],
                "scores": {"gpt-4-0314": 1.0, "Qwen1.5-72B-Chat": 0.5, "claude-1": 0.0},
                "costs": {"gpt-4-0314": None, "Qwen1.5-72B-Chat": None, "claude-1": 0.123},
            }
        ],
    )
    rows = read_labelled(data)
    sources = fill_missing_costs(rows)
    assert sources == {
        "gpt-4-0314": "catalogue",
        "Qwen1.5-72B-Chat": "open-weights size",
        "claude-1": "recorded",
    }
    tokens = 105
    assert rows[0].costs["gpt-4-0314"] == pytest.approx(
        (tokens * 30 + DEFAULT_ANSWER_TOKENS * 60) / 1e6
    )
    assert rows[0].costs["Qwen1.5-72B-Chat"] == pytest.approx(
        (tokens + DEFAULT_ANSWER_TOKENS) * 0.9 / 1e6
    )
    assert rows[0].costs["claude-1"] == 0.123


def test_unpriceable_model_is_a_clear_error(tmp_path: Path) -> None:
    data = _write(
        tmp_path / "mm.jsonl",
        [{"id": "a", "prompt": "hi", "scores": {"my-private-model": 1.0, "gpt-4-0314": 1.0}}],
    )
    with pytest.raises(InvalidRequest, match="my-private-model"):
        fill_missing_costs(read_labelled(data))


def test_list_price_sources() -> None:
    assert list_price("claude-instant-1.2") == (0.8, 2.4, "legacy list price")
    assert list_price("vicuna-13b-v1.5") == (0.3, 0.3, "open-weights size")
    assert list_price("no-such-model") is None
