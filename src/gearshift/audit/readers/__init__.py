"""Read prompt logs of any supported format, detected per file, gzip transparently, streaming.

``read_log(source, stats)`` yields ``LogEntry`` objects one at a time; memory stays bounded by
the largest single line. Formats: OpenAI-style JSONL (request bodies, request + response +
usage, Batch API input), Bedrock model-invocation logs (also with CloudWatch's timestamp prefix),
CSV with a prompt column, and gearshift's ledger (SQLite file or URL, PostgreSQL URL, or JSONL
export).
A line that cannot be used is counted in ``stats`` with its reason, never raised.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from gearshift.audit.entry import LogEntry, ReadStats
from gearshift.audit.readers.bedrock import is_bedrock, parse_bedrock
from gearshift.audit.readers.csvlog import read_csv, sniff_header
from gearshift.audit.readers.fast import parse_fast
from gearshift.audit.readers.ledger import (
    is_ledger_row,
    parse_ledger_row,
    read_postgres,
    read_sqlite,
    sqlite_path,
)
from gearshift.audit.readers.openai import parse_openai
from gearshift.errors import InvalidRequest

__all__ = ["detect_format", "read_log"]

_GZIP_MAGIC = b"\x1f\x8b"


def _open_binary(path: Path) -> IO[bytes]:
    raw = path.open("rb")
    if raw.read(2) == _GZIP_MAGIC:
        raw.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def detect_format(source: str) -> str:
    """``jsonl``, ``csv``, ``sqlite`` or ``postgres`` for a path or URL; raises ``InvalidRequest``
    with what was expected when the file is none of them."""
    if source.startswith(("postgresql://", "postgres://")):
        return "postgres"
    if source.startswith("sqlite:") or sqlite_path(source) is not None:
        return "sqlite"
    path = Path(source)
    if not path.is_file():
        raise InvalidRequest(f"log file not found: {source}")
    head = _head(path, source)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return "jsonl"  # empty: zero entries, reported as such
    if text[:1] in (b"{", b"["):
        return "jsonl"
    first_line = text.split(b"\n", 1)[0].decode("utf-8", "replace")
    if _timestamp_prefixed_json(text.split(b"\n", 1)[0]):
        return "jsonl"
    if sniff_header(first_line):
        return "csv"
    raise InvalidRequest(
        f"{source}: unknown log format. Expected JSON lines (OpenAI-style requests/responses, "
        "Bedrock invocation logs, a gearshift ledger export), a CSV with a 'prompt' column, "
        "or a gearshift ledger (SQLite file, sqlite:/// or postgresql:// URL)."
    )


def _head(path: Path, source: str, size: int = 65536) -> bytes:
    """The first bytes of the (decompressed) file; a damaged gzip tail is the reader's problem."""
    chunks: list[bytes] = []
    got = 0
    try:
        with _open_binary(path) as f:
            while got < size:
                chunk = f.read(4096)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
    except (EOFError, zlib.error, gzip.BadGzipFile):
        if not chunks:
            raise InvalidRequest(f"cannot read {source}: the compressed file is damaged") from None
    except OSError as exc:
        raise InvalidRequest(f"cannot read {source}: {exc.strerror or exc}") from None
    return b"".join(chunks)


def _timestamp_prefixed_json(line: bytes) -> bool:
    # CloudWatch Logs exports write "<ISO timestamp> <json>" per line.
    brace = line.find(b"{")
    return 0 < brace <= 40 and line[:4].isdigit()


def read_log(source: str, stats: ReadStats) -> Iterator[LogEntry]:
    kind = detect_format(source)
    if kind == "postgres":
        yield from read_postgres(source, stats)
        return
    if kind == "sqlite":
        path = sqlite_path(source)
        assert path is not None
        yield from read_sqlite(path, stats)
        return
    path = Path(source)
    stream = _open_binary(path)
    try:
        if kind == "csv":
            text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
            yield from _guard(read_csv(text, path.name, stats), path.name, stats)
        else:
            yield from _guard(_read_jsonl(stream, path.name, stats), path.name, stats)
    finally:
        stream.close()


def _guard(entries: Iterator[LogEntry], where: str, stats: ReadStats) -> Iterator[LogEntry]:
    """A truncated gzip file ends the file early; the entries before the damage still count."""
    try:
        yield from entries
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        stats.problem(where, f"compressed stream is damaged: {exc}", malformed=True)


def _read_jsonl(stream: IO[bytes], where: str, stats: ReadStats) -> Iterator[LogEntry]:
    loads = orjson.loads
    for number, line in enumerate(stream, 1):
        stats.lines += 1
        stats.bytes_read += len(line)
        fast = parse_fast(line)
        if fast is not None:
            stats.entries += 1
            stats.formats["openai-jsonl"] += 1
            yield fast
            continue
        if not line.strip():
            stats.blank += 1
            continue
        try:
            obj: Any = loads(line)
        except orjson.JSONDecodeError:
            obj = _after_prefix(line)
            if obj is None:
                stats.problem(f"{where}:{number}", "not valid JSON", malformed=True)
                continue
        if isinstance(obj, list) and number == 1 and all(isinstance(o, dict) for o in obj):
            # a whole JSON array on one line (an export): its items are the records
            stats.lines -= 1
            for item, record in enumerate(obj, 1):
                stats.lines += 1
                yield from _one(record, f"{where}:[{item}]", stats)
            continue
        if not isinstance(obj, dict):
            stats.problem(f"{where}:{number}", "a JSON line that is not an object", malformed=True)
            continue
        yield from _one(obj, f"{where}:{number}", stats)


def _one(obj: dict[str, Any], where: str, stats: ReadStats) -> Iterator[LogEntry]:
    """Dispatch one JSON record to its format's parser (zero or one entry)."""
    if is_bedrock(obj):
        fmt, parsed = "bedrock-invocation-log", parse_bedrock(obj)
    elif is_ledger_row(obj):
        fmt, parsed = "gearshift-ledger", parse_ledger_row(obj)
    else:
        fmt, parsed = "openai-jsonl", parse_openai(obj)
    if isinstance(parsed, str):
        stats.problem(where, parsed, malformed=False)
        return
    stats.entries += 1
    stats.formats[fmt] += 1
    yield parsed


def _after_prefix(line: bytes) -> Any:
    brace = line.find(b"{")
    if 0 < brace <= 40 and line[:4].isdigit():
        try:
            return orjson.loads(line[brace:])
        except orjson.JSONDecodeError:
            return None
    return None
