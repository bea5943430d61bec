"""The README's first command on the committed sample log, the text report, and the engine's
agreement with the router it replays."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.audit.helpers import REPO, SAMPLE, openai_line, write_lines

from gearshift.audit.candidates import propose
from gearshift.audit.engine import Auditor
from gearshift.audit.entry import ReadStats
from gearshift.audit.predict import to_request
from gearshift.audit.readers import read_log


def test_sample_log_is_what_its_generator_writes(tmp_path: Path) -> None:
    out = tmp_path / "helpdesk.jsonl"
    subprocess.run(
        [sys.executable, str(REPO / "examples" / "make_helpdesk.py"), "--out", str(out)],
        check=True,
    )
    assert out.read_bytes() == SAMPLE.read_bytes()


def test_sample_log_is_varied_and_realistic() -> None:
    features: dict[str, int] = {}
    prompts = set()
    lines = SAMPLE.read_bytes().splitlines()
    for line in lines:
        record = orjson.loads(line)
        features[record["metadata"]["feature"]] = features.get(record["metadata"]["feature"], 0) + 1
        prompts.add(record["request"]["messages"][-1]["content"])
        assert record["request"]["model"] == "gpt-4o"
        assert record["response"]["usage"]["prompt_tokens"] > 0
    assert len(lines) >= 2000
    assert len(features) >= 8 and len(prompts) > len(lines) // 2


def test_make_demo_command_runs_offline_with_no_keys() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["NO_PROXY"] = "*"
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "gearshift"), "audit", "examples/helpdesk.jsonl"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for expected in (
        "cost as logged", "savings", "Tolerance / savings trade-off", "Savings by feature",
        "Which prompts moved, and why", "Recommended router", "quality_tolerance:",
    ):  # fmt: skip
        assert expected in done.stdout
    assert "Traceback" not in done.stderr


def test_text_report_explains_moves_and_counts_problems(
    tmp_path: Path, run_audit: Callable[..., tuple[int, str, str]]
) -> None:
    log = write_lines(tmp_path / "log.jsonl", [openai_line("Reset my password please"), "oops"])
    code, out, _ = run_audit(str(log), "--tolerance", "1")
    assert code == 0
    assert "gpt-4o → gpt-4o-mini: 1 requests" in out
    assert "Reset my password please" in out and "cheapest such model" in out
    assert "1 malformed" in out and "log.jsonl:2: not valid JSON" in out


def test_bad_arguments_and_empty_logs_say_what_to_do(
    tmp_path: Path, run_audit: Callable[..., tuple[int, str, str]]
) -> None:
    log = write_lines(tmp_path / "log.jsonl", [openai_line("hi")])
    assert run_audit(str(log), "--tolerance", "2")[0] == 1
    code, _, err = run_audit(str(log), "--format", "html")
    assert code == 1 and "--out" in err
    empty = write_lines(tmp_path / "empty.jsonl", ["", '{"cut off'])
    code, _, err = run_audit(str(empty), "--format", "json")
    assert code == 1 and "no usable requests" in err and "1 malformed" in err
    no_model = write_lines(
        tmp_path / "nomodel.jsonl", [{"messages": [{"role": "user", "content": "x"}]}]
    )
    code, _, err = run_audit(str(no_model))
    assert code == 1 and "--model" in err
    code, out, _ = run_audit(str(no_model), "--model", "gpt-4o", "--format", "json")
    assert code == 0 and orjson.loads(out)["requests"] == 1


def test_multi_tolerance_pass_agrees_with_the_routers_own_decisions() -> None:
    """The one-pass curve must choose exactly what ``Router.decide`` chooses at each tolerance."""
    candidates = propose(["gpt-4o"])
    entries = list(read_log(str(SAMPLE), ReadStats()))[:400]
    # tolerances equal to recorded gaps too: there the rule keeps the model only if the audit
    # decides on the same (rounded) numbers as the router
    router = Auditor(candidates).router
    gaps = set()
    for e in entries[:12]:
        d = router.decide(to_request(e.message_list(), truncate=False))
        gaps |= {round(max(d.predicted.values()) - q, 4) for q in d.predicted.values()}
    auditor = Auditor(candidates, tolerances=(0.0, 0.05, 0.1, 0.2, *sorted(gaps)))
    auditor.feed(entries)
    router = auditor.router
    for t, point in auditor.curve.items():
        expected: dict[str, int] = {}
        for e in entries:
            request = to_request(e.message_list(), truncate=False)
            chosen = router.decide(request, tolerance=t).chosen
            expected[chosen] = expected.get(chosen, 0) + 1
        got = {m: int(c) for m, c in zip(auditor.names, point.model_requests, strict=True) if c}
        assert got == expected, f"tolerance {t}"


def test_huge_prompts_are_audited_with_honest_token_counts(
    tmp_path: Path, audit_json: Callable[..., dict[str, Any]]
) -> None:
    # 2.4 MB of text, about 596k tokens counted: beyond gpt-4o's and gpt-4o-mini's 128k context,
    # within gpt-4.1-mini's 1M, so even at tolerance 0 it can only go there.
    huge = "The quick brown fox jumps over the lazy dog. " * 53_000
    beyond_all = "y" * 4_400_000  # 1.1M tokens: no candidate fits; counted, not crashed on
    log = write_lines(
        tmp_path / "log.jsonl",
        [
            openai_line(huge, prompt_tokens=None, completion_tokens=100),
            openai_line("hello", prompt_tokens=50),
            openai_line(beyond_all, prompt_tokens=None),
        ],
    )
    r = audit_json(str(log), "--tolerance", "0", "--tolerances", "0")
    assert r["requests"] == 2
    assert r["tokens"]["prompt"] == (len(huge) + 3) // 4 + 4 + 3 + 50
    assert r["by_model"]["gpt-4.1-mini"]["requests"] == 1
    assert r["by_model"]["gpt-4o"]["requests"] == 1
    assert r["skipped_reasons"] == {"longer than every candidate's context window": 1}


def test_worker_processes_give_the_same_report_as_one_process(
    tmp_path: Path, audit_json: Callable[..., dict[str, Any]]
) -> None:
    one = audit_json(str(SAMPLE), "--workers", "1", "--batch-size", "500")
    two = audit_json(str(SAMPLE), "--workers", "2", "--batch-size", "500", "--progress")
    for key in ("requests", "actual_cost_usd", "routed_cost_usd", "by_model", "curve", "by_kind"):
        assert one[key] == two[key], key
    assert one["prompts_predicted"] == two["prompts_predicted"]


def test_recommended_config_is_a_valid_gearshift_config(
    audit_json: Callable[..., dict[str, Any]],
) -> None:
    import yaml

    from gearshift.config import parse_settings

    r = audit_json(str(SAMPLE))
    settings = parse_settings(yaml.safe_load(r["recommended_config"]))
    (router,) = settings.routers
    assert router.quality_tolerance == r["recommended_tolerance"]["tolerance"]
    assert sorted(router.models) == sorted(c["name"] for c in r["router"]["candidates"])
    assert router.fallback == "gpt-4o"


def test_audit_makes_no_network_call(
    monkeypatch: pytest.MonkeyPatch, run_audit: Callable[..., tuple[int, str, str]]
) -> None:
    import socket

    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    code, out, err = run_audit(str(SAMPLE), "--workers", "1")
    assert code == 0, err
    assert "savings" in out
    assert attempts == []


def test_a_dead_predictor_process_does_not_lose_predictions() -> None:
    import signal

    from gearshift.audit.predict import PredictionPool

    candidates = propose(["gpt-4o"])
    names = list(candidates.names)
    pool = PredictionPool(candidates.settings, candidates.router, names, workers=2)
    try:
        items: list[Any] = [
            (i, [{"role": "user", "content": f"question number {i}"}]) for i in range(600)
        ]
        first = pool.collect(pool.submit(items[:10]))  # workers are up
        assert len(first) == 10
        workers = list(pool._pool._processes) if pool._pool else []  # type: ignore[attr-defined]
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        results = pool.collect(pool.submit(items))
        assert sorted(k for k, _ in results) == list(range(600))
        assert all(p is not None for _, p in results)
    finally:
        pool.close()


def test_bounded_cache_keeps_recurring_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    import gearshift.audit.engine as engine
    from gearshift.audit.entry import LogEntry

    monkeypatch.setattr(engine, "CACHE_GENERATION", 5)
    auditor = Auditor(propose(["gpt-4o"]))

    def entry(text: str) -> LogEntry:
        messages = [{"role": "user", "content": text}]
        return LogEntry(messages=messages, model="gpt-4o", prompt_tokens=10, completion_tokens=5)

    unique = iter(range(1000))
    for _ in range(6):
        auditor.feed(
            [entry("How do I reset my password?")]
            + [entry(f"ticket {next(unique)}") for _ in range(3)]
        )
    assert auditor.requests == 24
    assert auditor.predictions == 1 + 18  # the recurring prompt was predicted once
    assert len(auditor.cache) + len(auditor._older) <= 2 * 5 + 4


def test_batches_in_flight_do_not_change_the_report() -> None:
    """Workers predict several batches ahead; routing stays in log order, so the report is the
    same as with one batch in flight (and in one process)."""
    from gearshift.audit.engine import run_entries
    from gearshift.audit.report import build_report

    reports = []
    for workers, ahead in ((1, 1), (2, 1), (2, 4)):
        stats = ReadStats()
        entries = list(read_log(str(SAMPLE), stats))
        auditor = Auditor(propose(["gpt-4o"]), workers=workers)
        try:
            run_entries(auditor, entries, batch_size=200, ahead=ahead)
        finally:
            auditor.close()
        reports.append(build_report(auditor, stats, [str(SAMPLE)]))
    assert reports[0]["prompts_predicted"] < reports[0]["requests"]
    assert reports[0] == reports[1] == reports[2]


def _pasted_config(report: str) -> str:
    """The recommended router as a user copies it: the lines after "paste into gearshift.yaml:"
    up to the blank line that ends the block."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", report).splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith("paste into gearshift.yaml:"))
    block = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        block.append(line)
    return "\n".join(block) + "\n"


@pytest.mark.parametrize(
    "terminal",
    [
        {"COLUMNS": "80"},  # piped (`> out.txt`): the stable 100-column layout
        {"COLUMNS": "60", "TTY_COMPATIBLE": "1", "NO_COLOR": "1"},  # a narrow terminal
    ],
    ids=["pipe", "narrow-terminal"],
)
def test_recommended_config_pastes_into_gearshift_yaml(
    terminal: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from gearshift.api.pipeline import Gateway
    from gearshift.config import load_settings

    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")} | terminal
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "gearshift"), "audit", "examples/helpdesk.jsonl"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pasted = _pasted_config(done.stdout)
    assert pasted.startswith("# Recommended by `gearshift audit`")
    assert isinstance(yaml.safe_load(pasted), dict)
    config = tmp_path / "gearshift.yaml"
    config.write_text(pasted, encoding="utf-8")
    settings = load_settings(config)  # what `serve --config` reads, then checks:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    Gateway(settings).check_environment()
    (router,) = settings.routers
    assert router.fallback == "gpt-4o" and "gpt-4o-mini" in router.models
