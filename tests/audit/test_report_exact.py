"""The JSON contract with exact figures on a small crafted log, costs computed by hand.

Prices (genai-prices snapshot, USD per million tokens): gpt-4o 2.50 in / 1.25 cached in / 10 out;
gpt-4o-mini 0.15 in / 0.075 cached in / 0.60 out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.audit.helpers import openai_line, write_lines

# as logged:
#   a: gpt-4o       1000 in, 200 out          = 0.0025 + 0.002                 = 0.0045
#   b: gpt-4o       2000 in (1000 cached), 500 = 0.0025 + 0.00125 + 0.005      = 0.00875
#   c: gpt-4o-mini   400 in, 100 out          = 0.00006 + 0.00006              = 0.00012
ACTUAL = 0.01337
# all on gpt-4o-mini:
#   a: 0.00015 + 0.00012 = 0.00027; b: 0.00015 + 0.000075 + 0.0003 = 0.000525; c: 0.00012
ALL_MINI = 0.000915


@pytest.fixture
def crafted(tmp_path: Path) -> Path:
    return write_lines(
        tmp_path / "crafted.jsonl",
        [
            openai_line("Summarise our refund policy for a customer.", tags={"feature": "faq"}),
            "",
            openai_line(
                "Draft a data retention policy for EU customers with an FAQ.",
                prompt_tokens=2000,
                completion_tokens=500,
                cached=1000,
                tags={"feature": "policy"},
            ),
            "{this is not json",
            '{"response": {"usage": {"prompt_tokens": 5}}}',
            openai_line(
                "How do I reset my password?",
                model="gpt-4o-mini",
                prompt_tokens=400,
                completion_tokens=100,
                tags={"feature": "faq"},
            ),
        ],
    )


def test_json_keys_and_exact_figures_when_everything_moves_to_the_cheapest(
    crafted: Path, audit_json: Callable[..., dict[str, Any]]
) -> None:
    # tolerance 1: every candidate is within tolerance, so the cheapest serves everything.
    r = audit_json(str(crafted), "--tolerance", "1", "--tolerances", "0,1")
    assert r["requests"] == 3
    assert r["actual_cost_usd"] == pytest.approx(ACTUAL, abs=1e-12)
    assert r["routed_cost_usd"] == pytest.approx(ALL_MINI, abs=1e-12)
    assert r["savings_usd"] == pytest.approx(ACTUAL - ALL_MINI, abs=1e-12)
    assert r["savings_pct"] == 93.16  # 0.012455 / 0.01337
    assert r["by_model"]["gpt-4o-mini"] == {"requests": 3, "cost_usd": 0.000915, "share": 1.0}
    assert r["by_model"]["gpt-4o"] == {"requests": 0, "cost_usd": 0.0, "share": 0.0}
    assert set(r["by_model"]) == {"gpt-4o", "gpt-4o-mini", "gpt-4.1-mini"}
    assert r["as_logged"] == {
        "gpt-4o": {"requests": 2, "cost_usd": 0.01325},
        "gpt-4o-mini": {"requests": 1, "cost_usd": 0.00012},
    }
    assert (r["lines"], r["blank"], r["malformed"], r["skipped"]) == (6, 1, 1, 1)
    assert r["moved_pct"] == pytest.approx(66.67)  # c was already on gpt-4o-mini
    faq = next(g for g in r["by_tag"]["feature"] if g["value"] == "faq")
    assert faq["requests"] == 2
    assert faq["actual_cost_usd"] == pytest.approx(0.00462, abs=1e-12)
    assert faq["routed_cost_usd"] == pytest.approx(0.00039, abs=1e-12)


def test_tolerance_zero_keeps_every_request_on_the_best_model(
    crafted: Path, audit_json: Callable[..., dict[str, Any]]
) -> None:
    r = audit_json(str(crafted), "--tolerance", "0", "--tolerances", "0,1")
    # The most able candidate (gpt-4o) is predicted best on every prompt: c moves *up* to it.
    assert r["by_model"]["gpt-4o"]["requests"] == 3
    # c on gpt-4o: 400 * 2.5e-6 + 100 * 1e-5 = 0.002
    assert r["routed_cost_usd"] == pytest.approx(0.0045 + 0.00875 + 0.002, abs=1e-12)
    assert r["savings_usd"] == pytest.approx(ACTUAL - 0.01525, abs=1e-12)
    # one pass, both points of the curve
    assert [p["tolerance"] for p in r["curve"]] == [0.0, 1.0]
    assert r["curve"][1]["routed_cost_usd"] == pytest.approx(ALL_MINI, abs=1e-12)
    assert r["curve"][0]["quality_retained_pct"] == 100.0


def test_missing_usage_is_counted_and_assumed_and_said_so(
    tmp_path: Path, audit_json: Callable[..., dict[str, Any]]
) -> None:
    log = write_lines(tmp_path / "bodies.jsonl", [openai_line("x" * 4000, prompt_tokens=None)])
    r = audit_json(str(log), "--tolerance", "1")
    # 4000 ASCII chars -> 1000 tokens + 4 per message + 3 per request; 256 completion assumed
    assert r["tokens"] == {
        "prompt": 1007,
        "completion": 256,
        "prompt_counted_requests": 1,
        "completion_assumed_requests": 1,
    }
    assert r["actual_cost_usd"] == pytest.approx(1007 * 2.5e-6 + 256 * 1e-5, abs=1e-12)
    assert any("256 completion tokens were assumed" in note for note in r["assumptions"])


def test_bedrock_log_is_priced_through_the_catalogue(
    tmp_path: Path, audit_json: Callable[..., dict[str, Any]]
) -> None:
    from tests.audit.test_readers import _bedrock_record

    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Summarise"}]}]}
    record = _bedrock_record(
        body, model="anthropic.claude-3-5-sonnet-20240620-v1:0", tokens=(1200, 300)
    )
    r = audit_json(str(write_lines(tmp_path / "b.jsonl", [record])), "--tolerance", "1")
    # claude-3-5-sonnet: $3 in / $15 out per million; claude-3-5-haiku: $0.80 / $4
    assert r["actual_cost_usd"] == pytest.approx(1200 * 3e-6 + 300 * 15e-6, abs=1e-12)
    assert r["routed_cost_usd"] == pytest.approx(1200 * 0.8e-6 + 300 * 4e-6, abs=1e-12)
    assert r["by_model"]["claude-3-5-haiku"]["requests"] == 1
    assert r["by_tag"]["feature"][0]["value"] == "helpdesk"
    assert "provider: bedrock" in r["recommended_config"]


def test_csv_log_with_model_given_on_the_command_line(
    tmp_path: Path, audit_json: Callable[..., dict[str, Any]]
) -> None:
    path = tmp_path / "prompts.csv"
    path.write_text(
        "prompt,input_tokens,output_tokens,team\n"
        '"Translate ""hello"" to French",1000,200,growth\n'
        "What is 2+2?,400,100,growth\n",
        encoding="utf-8",
    )
    r = audit_json(str(path), "--model", "gpt-4o", "--tolerance", "1", "--tolerances", "1")
    # gpt-4o: 0.0045 + (400 * 2.5e-6 + 100 * 1e-5 = 0.002); all on gpt-4o-mini: 0.00027 + 0.00012
    assert r["actual_cost_usd"] == pytest.approx(0.0065, abs=1e-12)
    assert r["routed_cost_usd"] == pytest.approx(0.00039, abs=1e-12)
    assert r["by_tag"]["team"] == [
        {
            "value": "growth",
            "requests": 2,
            "actual_cost_usd": 0.0065,
            "routed_cost_usd": 0.00039,
            "savings_usd": 0.00611,
            "savings_pct": 94.0,
            "moved_pct": 100.0,
            "quality_mean": r["by_tag"]["team"][0]["quality_mean"],
            "share": {"gpt-4o-mini": 1.0},
        }
    ]
    assert r["formats"] == {"csv": 2}
