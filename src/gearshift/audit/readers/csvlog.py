"""CSV prompt logs: one request per row, a prompt column (``prompt``, ``input``, ``question``,
``query``, ``message``…) and, when present, model, token, cost, timestamp and tag columns."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from typing import IO, Any

from gearshift.audit.entry import LogEntry, ReadStats
from gearshift.audit.readers.content import as_float, as_int, as_timestamp

PROMPT_COLUMNS = ("prompt", "input", "question", "query", "user_message", "message", "text")
_SYSTEM = ("system", "system_prompt")
_MODEL = ("model", "model_name", "model_id", "modelid")
_PROMPT_TOKENS = ("prompt_tokens", "input_tokens", "tokens_in", "inputtokencount")
_COMPLETION_TOKENS = ("completion_tokens", "output_tokens", "tokens_out", "outputtokencount")
_CACHED = ("cached_tokens", "cache_read_tokens", "cache_read_input_tokens")
_COST = ("cost_usd", "cost", "total_cost", "price_usd")
_TIME = ("timestamp", "time", "created_at", "date", "ts")
TAG_COLUMNS = (
    "feature", "team", "project", "app", "application", "environment", "env", "key", "customer",
)  # fmt: skip


def _find(columns: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in columns:
            return columns[name]
    return None


def sniff_header(first_line: str) -> bool:
    """Whether a first line looks like the header of a CSV prompt log."""
    try:
        header = next(csv.reader([first_line], dialect=_dialect(first_line)))
    except (csv.Error, StopIteration):
        return False
    return any(h.strip().lower() in PROMPT_COLUMNS for h in header)


def _dialect(sample: str) -> type[csv.Dialect]:
    if sample.count("\t") > sample.count(","):
        return csv.excel_tab
    return csv.excel


def read_csv(stream: IO[str], where: str, stats: ReadStats) -> Iterator[LogEntry]:
    # A whole document in one cell is legitimate; the default 128 KiB cell limit is not.
    csv.field_size_limit(sys.maxsize)
    first = stream.readline()
    if not first:
        return
    header = next(csv.reader([first], dialect=_dialect(first)))
    rest = csv.reader(stream, dialect=_dialect(first))
    columns = {h.strip().lower().lstrip("\ufeff"): h for h in header}
    index = {h: i for i, h in enumerate(header)}
    prompt_col = _find(columns, PROMPT_COLUMNS)
    if prompt_col is None:
        stats.problem(where, "CSV without a prompt column", malformed=True)
        return
    picks: dict[str, str | None] = {
        "system": _find(columns, _SYSTEM),
        "model": _find(columns, _MODEL),
        "pt": _find(columns, _PROMPT_TOKENS),
        "ct": _find(columns, _COMPLETION_TOKENS),
        "cached": _find(columns, _CACHED),
        "cost": _find(columns, _COST),
        "time": _find(columns, _TIME),
    }
    tag_cols = [(k, columns[k]) for k in columns if k in TAG_COLUMNS or k.startswith("tag_")]
    line = 1
    while True:
        try:
            row = next(rest)
        except StopIteration:
            return
        except csv.Error as exc:
            line += 1
            stats.lines += 1
            stats.problem(f"{where}:{line}", f"bad CSV row: {exc}", malformed=True)
            continue
        line = rest.line_num
        stats.lines += 1
        if not row or all(not cell.strip() for cell in row):
            stats.blank += 1
            continue
        if len(row) != len(header):
            stats.problem(
                f"{where}:{line}", f"CSV row has {len(row)} cells, header {len(header)}",
                malformed=True,
            )  # fmt: skip
            continue

        def cell(col: str | None, row: list[str] = row) -> Any:
            return row[index[col]] if col is not None else None

        prompt = cell(prompt_col)
        if not prompt or not prompt.strip():
            stats.problem(f"{where}:{line}", "empty prompt", malformed=False)
            continue
        messages = [{"role": "user", "content": prompt}]
        system = cell(picks["system"])
        if system:
            messages.insert(0, {"role": "system", "content": system})
        model = cell(picks["model"])
        stats.entries += 1
        stats.formats["csv"] += 1
        yield LogEntry(
            messages=messages,
            model=model.strip() or None if model else None,
            prompt_tokens=as_int(cell(picks["pt"]) or None),
            completion_tokens=as_int(cell(picks["ct"]) or None),
            cached_tokens=as_int(cell(picks["cached"]) or None) or 0,
            logged_cost_usd=as_float(cell(picks["cost"])),
            tags={k.removeprefix("tag_"): row[index[c]] for k, c in tag_cols if row[index[c]]},
            ts=as_timestamp(cell(picks["time"]) or None),
        )
