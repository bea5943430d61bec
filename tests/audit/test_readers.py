"""Every input format, detected per file, gzip, blank/broken lines, huge prompts."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.audit.helpers import openai_line, write_lines

from gearshift.audit.entry import ReadStats
from gearshift.audit.readers import detect_format, read_log
from gearshift.errors import InvalidRequest


def read(path: Path | str) -> tuple[list, ReadStats]:  # type: ignore[type-arg]
    stats = ReadStats()
    return list(read_log(str(path), stats)), stats


def test_openai_request_response_usage_and_tags(tmp_path: Path) -> None:
    line = openai_line(
        "Reset my password", cached=100, tags={"feature": "account"}, system="Be brief"
    )
    entries, stats = read(write_lines(tmp_path / "log.jsonl", [line]))
    (e,) = entries
    assert e.model == "gpt-4o"
    assert (e.prompt_tokens, e.completion_tokens, e.cached_tokens) == (1000, 200, 100)
    assert e.message_list() == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Reset my password"},
    ]
    assert e.tags == {"feature": "account"}
    assert e.ts == 1740996000.0
    assert stats.formats == {"openai-jsonl": 1}


def test_openai_request_bodies_alone_batch_input_and_anthropic_bodies(tmp_path: Path) -> None:
    lines = [
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "plain body"}]},
        {
            "custom_id": "r1",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "batch"}]},
        },
        {
            "model": "claude-3-5-sonnet-20241022",
            "system": "sys",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "blocks"}]}],
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 90},
        },
        {"model": "gpt-3.5-turbo-instruct", "prompt": "legacy completion"},
    ]
    entries, stats = read(write_lines(tmp_path / "log.jsonl", lines))
    assert [e.message_list()[-1]["content"] for e in entries] == [
        "plain body", "batch", "blocks", "legacy completion",
    ]  # fmt: skip
    assert entries[0].prompt_tokens is None and entries[0].completion_tokens is None
    # Anthropic's input_tokens exclude cache reads; the audit counts all prompt tokens.
    assert (entries[2].prompt_tokens, entries[2].cached_tokens) == (100, 90)
    assert entries[2].message_list()[0] == {"role": "system", "content": "sys"}
    assert stats.entries == 4 and stats.malformed == 0


def test_blank_broken_and_unusable_lines_are_counted_never_fatal(tmp_path: Path) -> None:
    lines = [
        openai_line("first"),
        "",
        "   ",
        '{"request": {"model": "gpt-4o", "messages": [',  # cut off mid-line
        "[1, 2, 3]",
        '{"response": {"usage": {"prompt_tokens": 3}}}',  # batch output line, no request
        '{"request": {"model": "gpt-4o", "messages": "not a list"}}',
        openai_line("last"),
    ]
    entries, stats = read(write_lines(tmp_path / "log.jsonl", lines))
    assert [e.message_list()[0]["content"] for e in entries] == ["first", "last"]
    assert stats.lines == 8 and stats.blank == 2 and stats.malformed == 2
    assert stats.skipped_total == 2
    assert any("log.jsonl:4: not valid JSON" in ex for ex in stats.examples)


def test_gzip_jsonl_and_damaged_gzip(tmp_path: Path) -> None:
    lines = [openai_line(f"prompt {i}") for i in range(50)]
    path = write_lines(tmp_path / "log.jsonl.gz", lines, gz=True)
    entries, stats = read(path)
    assert len(entries) == 50 and stats.malformed == 0
    data = path.read_bytes()
    damaged = tmp_path / "damaged.jsonl.gz"
    damaged.write_bytes(data[: len(data) * 2 // 3])
    entries, stats = read(damaged)
    assert 0 < len(entries) < 50
    assert stats.malformed >= 1
    assert any("compressed stream is damaged" in ex for ex in stats.examples)


def _bedrock_record(body: object, *, model: str, tokens: tuple[int, int]) -> dict[str, object]:
    return {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": "2025-03-04T12:00:00Z",
        "accountId": "123456789012",
        "region": "us-east-1",
        "requestId": "8a1b",
        "operation": "InvokeModel",
        "modelId": model,
        "input": {
            "inputContentType": "application/json",
            "inputBodyJson": body,
            "inputTokenCount": tokens[0],
        },
        "output": {
            "outputContentType": "application/json",
            "outputBodyJson": {"content": [{"type": "text", "text": "answer"}]},
            "outputTokenCount": tokens[1],
        },
        "requestMetadata": {"feature": "helpdesk"},
    }


def test_bedrock_invocation_logs_all_body_shapes_and_cloudwatch_prefix(tmp_path: Path) -> None:
    anthropic = _bedrock_record(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "system": "You are helpful",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Summarise"}]}],
        },
        model="anthropic.claude-3-5-sonnet-20240620-v1:0",
        tokens=(1200, 300),
    )
    converse = _bedrock_record(
        {"messages": [{"role": "user", "content": [{"text": "Converse call"}]}],
         "system": [{"text": "Be terse"}]},
        model="arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
        tokens=(40, 10),
    )  # fmt: skip
    titan = _bedrock_record(
        {"inputText": "Titan prompt"}, model="amazon.titan-text-express-v1", tokens=(5, 5)
    )
    pointer = _bedrock_record(None, model="x", tokens=(1, 1))
    pointer["input"] = {"inputBodyS3Path": "s3://bucket/data/1.json", "inputTokenCount": 1}
    lines = [
        json.dumps(anthropic),
        "2025-03-04T12:00:01.000Z " + json.dumps(converse),  # CloudWatch Logs export line
        json.dumps(titan),
        json.dumps(pointer),
    ]
    path = write_lines(tmp_path / "bedrock.json.gz", lines, gz=True)
    assert detect_format(str(path)) == "jsonl"
    entries, stats = read(path)
    assert [e.model for e in entries] == [
        "anthropic.claude-3-5-sonnet-20240620-v1:0", "amazon.nova-pro-v1:0",
        "amazon.titan-text-express-v1",
    ]  # fmt: skip
    assert entries[0].message_list() == [
        {"role": "system", "content": "You are helpful"},
        {"role": "user", "content": "Summarise"},
    ]
    assert (entries[0].prompt_tokens, entries[0].completion_tokens) == (1200, 300)
    assert entries[0].tags == {"feature": "helpdesk"}
    assert entries[1].message_list()[0] == {"role": "system", "content": "Be terse"}
    assert stats.formats == {"bedrock-invocation-log": 3}
    assert stats.skipped == {"Bedrock input body stored separately in S3 (inputBodyS3Path)": 1}


def test_csv_with_prompt_column_optional_columns_and_multiline_cells(tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["timestamp", "Prompt", "model", "input_tokens", "output_tokens", "cost", "feature"]
        )
        w.writerow(
            ["2025-03-03T10:00:00Z", "How do I\nexport CSV?", "gpt-4o", "12", "30", "0.0003", "faq"]
        )
        w.writerow(["", "", "gpt-4o", "1", "1", "", ""])  # empty prompt
        w.writerow(["", "no tokens here", "", "", "", "", ""])
        w.writerow(["", "short row"])
    assert detect_format(str(path)) == "csv"
    entries, stats = read(path)
    assert [e.message_list()[0]["content"] for e in entries] == [
        "How do I\nexport CSV?",
        "no tokens here",
    ]
    assert (entries[0].model, entries[0].prompt_tokens, entries[0].completion_tokens) == (
        "gpt-4o",
        12,
        30,
    )
    assert entries[0].logged_cost_usd == 0.0003 and entries[0].tags == {"feature": "faq"}
    assert entries[1].model is None and entries[1].prompt_tokens is None
    assert stats.skipped == {"empty prompt": 1} and stats.malformed == 1


def test_gzip_csv_and_a_huge_cell(tmp_path: Path) -> None:
    huge = "word " * 400_000  # 2 MB in one cell, beyond csv's default field limit
    path = tmp_path / "p.csv.gz"
    with gzip.open(path, "wt", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "model"])
        w.writerow([huge, "gpt-4o"])
    entries, stats = read(path)
    assert len(entries) == 1 and len(entries[0].message_list()[0]["content"]) == len(huge)
    assert stats.formats == {"csv": 1}


def test_unknown_format_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    odd = tmp_path / "notes.txt"
    odd.write_text("just some words\nand more\n")
    with pytest.raises(InvalidRequest, match="unknown log format"):
        detect_format(str(odd))
    with pytest.raises(InvalidRequest, match="log file not found"):
        detect_format(str(tmp_path / "missing.jsonl"))


def test_huge_single_prompt_line(tmp_path: Path) -> None:
    big = "x" * 6_000_000
    entries, stats = read(
        write_lines(tmp_path / "big.jsonl", [openai_line(big, prompt_tokens=None)])
    )
    assert len(entries) == 1 and entries[0].message_list()[0]["content"] == big
    assert stats.malformed == 0


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"  # no .gz suffix
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(openai_line("hi")) + "\n")
    entries, _ = read(path)
    assert len(entries) == 1


def test_a_json_array_export_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps([openai_line("one"), openai_line("two"), {"unrelated": 1}]))
    entries, stats = read(path)
    assert [e.message_list()[0]["content"] for e in entries] == ["one", "two"]
    assert stats.lines == 3 and stats.skipped_total == 1


def test_a_directory_of_bedrock_deliveries_is_read_file_by_file(
    tmp_path: Path, audit_json: Callable[..., dict[str, Any]]
) -> None:
    from gearshift.audit import expand_sources

    day = tmp_path / "AWSLogs" / "123456789012" / "BedrockModelInvocationLogs" / "us-east-1"
    for i, hour in enumerate(("2025", "2026")):
        folder = day / hour
        folder.mkdir(parents=True)
        body = {"messages": [{"role": "user", "content": [{"text": f"question {i}"}]}]}
        record = _bedrock_record(body, model="amazon.nova-pro-v1:0", tokens=(100, 20))
        write_lines(folder / f"part-{i}.json.gz", [json.dumps(record)], gz=True)
    (day / ".DS_Store").write_text("junk")
    assert len(expand_sources([str(tmp_path)])) == 2
    r = audit_json(str(tmp_path))
    assert r["requests"] == 2 and r["formats"] == {"bedrock-invocation-log": 2}
    assert len(r["sources"]) == 2
