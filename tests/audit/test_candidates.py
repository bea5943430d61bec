"""Candidate proposal from the catalogue, and audits against a configured router."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.audit.helpers import openai_line, write_lines

from gearshift.audit.candidates import match_candidate, propose
from gearshift.errors import ConfigError


def test_a_frontier_log_gets_lighter_models_of_its_family() -> None:
    assert propose(["gpt-4o"]).names == ("gpt-4o", "gpt-4.1-mini", "gpt-4o-mini")
    assert propose(["gemini-2.5-pro"]).names == (
        "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
    )  # fmt: skip
    # A Bedrock id is recognised, and its lighter relative is priced through the catalogue.
    bedrock = propose(["anthropic.claude-3-5-sonnet-20240620-v1:0"])
    assert bedrock.names == ("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-haiku")
    assert bedrock.proposed["claude-3-5-haiku"].startswith("lighter claude model")


def test_light_and_unknown_models_get_no_invented_relatives() -> None:
    assert propose(["gpt-4o-mini"]).names == ("gpt-4o-mini",)
    assert propose(["our-finetune-v3"]).names == ("our-finetune-v3",)
    with pytest.raises(ConfigError, match="--model"):
        propose([])


def test_logged_names_match_their_candidates() -> None:
    names = ["gpt-4o", "gpt-4o-mini"]
    assert match_candidate("gpt-4o-2024-08-06", names) == "gpt-4o"
    assert match_candidate("gpt-4o-mini-2024-07-18", names) == "gpt-4o-mini"
    assert match_candidate("openai/gpt-4o", names) == "gpt-4o"
    assert match_candidate("claude-3-haiku", names) is None


CONFIG = """
models:
  - name: small
    provider: openai
    base_url: http://127.0.0.1:9100/v1
    tier: 1
    price: {input_per_mtok: 0.25, output_per_mtok: 1.25}
  - name: large
    provider: openai
    base_url: http://127.0.0.1:9100/v1
    tier: 3
    price: {input_per_mtok: 15, output_per_mtok: 75}
routers:
  - name: auto
    models: [small, large]
    quality_tolerance: 0.1
"""


def test_audit_against_a_configured_router(
    tmp_path: Path, audit_json: Callable[..., dict[str, Any]]
) -> None:
    config = tmp_path / "gearshift.yaml"
    config.write_text(CONFIG)
    log = write_lines(tmp_path / "log.jsonl", [openai_line("What are your opening hours?")])
    r = audit_json(str(log), "--config", str(config), "--router", "auto", "--tolerance", "1")
    assert [c["name"] for c in r["router"]["candidates"]] == ["small", "large"]
    assert r["router"]["candidates"][0]["price_source"] == "config"
    # logged on gpt-4o (genai-prices): 1000 * 2.5e-6 + 200 * 1e-5; routed to small (config price)
    assert r["actual_cost_usd"] == pytest.approx(0.0045, abs=1e-12)
    assert r["routed_cost_usd"] == pytest.approx(1000 * 0.25e-6 + 200 * 1.25e-6, abs=1e-12)
    assert r["by_model"]["small"]["requests"] == 1
    recommended = r["recommended_config"]
    assert "- name: auto" in recommended and "\nmodels:" not in recommended  # router only


def test_unknown_router_in_config_is_a_clear_error(
    tmp_path: Path, run_audit: Callable[..., tuple[int, str, str]]
) -> None:
    config = tmp_path / "gearshift.yaml"
    config.write_text(CONFIG)
    log = write_lines(tmp_path / "log.jsonl", [openai_line("hi")])
    code, _, err = run_audit(str(log), "--config", str(config), "--router", "nope")
    assert code == 1 and "no router named 'nope'" in err and "auto" in err
