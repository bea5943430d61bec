"""Offline audit of prompt logs: what would routing have saved?

``audit(sources, options) -> dict`` reads the logs (any supported format, streaming), proposes
candidates (or takes a configured router), runs the router over every distinct prompt once and
prices every request as logged and as routed, at several tolerances in one pass. The dict is the
``--format json`` output; ``render_text`` and ``render_html`` present it.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from gearshift.audit.engine import DEFAULT_TOLERANCES
from gearshift.audit.entry import LogEntry, ReadStats

__all__ = ["AuditOptions", "LogEntry", "ReadStats", "audit"]

PEEK = 2000  # entries read before choosing candidates and tag dimensions
PARALLEL_BYTES = 32 * 2**20  # logs bigger than this are predicted in worker processes
_MAX_TAG_VALUES_IN_PEEK = 60  # a tag with more distinct values than this is an id, not a group


@dataclass(slots=True)
class AuditOptions:
    config: str | None = None
    router: str | None = None
    tolerance: float | None = None
    model: str | None = None  # the model for lines that name none
    tolerances: tuple[float, ...] = DEFAULT_TOLERANCES
    batch_size: int = 4096
    progress: bool = False
    workers: int = 0  # predictor processes; 0 = one per CPU core, 1 = in this process
    verify: int = 0  # replay and judge this many moved prompts (needs config)
    judge: str | None = None  # the judge for verify (default: the router's learning.judge)


def _entries(sources: list[str], stats: ReadStats) -> Iterator[LogEntry]:
    from gearshift.audit.readers import read_log

    for source in sources:
        yield from read_log(source, stats)


def expand_sources(sources: list[str]) -> list[str]:
    """A directory stands for every file under it (as Bedrock delivers its logs to S3:
    ``AWSLogs/<account>/BedrockModelInvocationLogs/<region>/<date>/*.json.gz``), in name order;
    hidden files are left out."""
    out: list[str] = []
    for source in sources:
        if not os.path.isdir(source):
            out.append(source)
            continue
        found = []
        for root, dirs, files in os.walk(source):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [os.path.join(root, f) for f in files if not f.startswith(".")]
        out += sorted(found)
    return out


def _tag_keys(peek: list[LogEntry]) -> list[str]:
    values: dict[str, set[str]] = {}
    counts: Counter[str] = Counter()
    for e in peek:
        for k, v in e.tags.items():
            counts[k] += 1
            seen = values.setdefault(k, set())
            if len(seen) <= _MAX_TAG_VALUES_IN_PEEK:
                seen.add(v)
    return [k for k, _ in counts.most_common() if len(values[k]) <= _MAX_TAG_VALUES_IN_PEEK]


def audit(sources: list[str], options: AuditOptions | None = None) -> dict[str, Any]:
    from gearshift.audit.candidates import from_config, propose
    from gearshift.audit.engine import Auditor, run_entries
    from gearshift.audit.readers import detect_format
    from gearshift.audit.report import build_report

    options = options or AuditOptions()
    sources = expand_sources(sources)
    for source in sources:  # fail fast on a missing or unknown file, before any work
        detect_format(source)
    stats = ReadStats()
    stream = _entries(sources, stats)
    peek = list(itertools.islice(stream, PEEK))
    if options.config:
        candidates = from_config(options.config, options.router, options.tolerance)
    else:
        seen = Counter(e.model or options.model for e in peek)
        seen.pop(None, None)
        if not seen and options.model:
            seen[options.model] = 1
        if not seen and not peek:
            seen["gpt-4o"] = 1  # nothing to audit: any candidate set gives the empty report
        candidates = propose([m for m, _ in seen.most_common() if m], options.tolerance)
    auditor = Auditor(
        candidates,
        tolerances=options.tolerances,
        assumed_model=options.model,
        tag_keys=_tag_keys(peek),
        workers=options.workers or _default_workers(sources),
    )
    progress = _progress_bar(stats, _plain_size(sources)) if options.progress else None
    try:
        run_entries(
            auditor,
            itertools.chain(peek, stream),
            batch_size=options.batch_size,
            on_batch=progress[1] if progress else None,
        )
    finally:
        auditor.close()
        if progress:
            progress[0]()
    report = build_report(auditor, stats, sources)
    if options.verify and options.config:
        from gearshift.audit.report import PREDICTED_QUALITY_NOTE
        from gearshift.audit.verify import quality_note, verify

        report["verification"] = verify(
            _entries(sources, ReadStats()),
            candidates.settings,
            candidates.router,
            options.verify,
            judge=options.judge,
            default_model=options.model,
            moved_pct=report.get("moved_pct"),
        )
        note = quality_note(report["verification"])
        report["assumptions"] = [
            note if n == PREDICTED_QUALITY_NOTE else n for n in report["assumptions"]
        ]
    return report


def _default_workers(sources: list[str]) -> int:
    """One predictor process per core on big logs; none on small ones, where starting the
    processes would cost more than it saves."""
    size = sum(os.path.getsize(s) for s in sources if os.path.isfile(s))
    return (os.cpu_count() or 1) if size > PARALLEL_BYTES else 1


def _plain_size(sources: list[str]) -> int | None:
    """Total bytes when every source is an uncompressed file (the progress bar's 100%)."""
    total = 0
    for source in sources:
        if not os.path.isfile(source):
            return None
        with open(source, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                return None
        total += os.path.getsize(source)
    return total


def _progress_bar(
    stats: ReadStats, total_bytes: int | None
) -> tuple[Callable[[], None], Callable[[int], None]]:
    """A rich progress display on stderr: (stop, advance). With a known size it shows a bar,
    the share read and the time left; otherwise a spinner and the count."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [
        SpinnerColumn(),
        TextColumn("auditing: {task.fields[requests]:,} requests"),
    ]
    if total_bytes:
        columns += [BarColumn(), TaskProgressColumn(), TimeRemainingColumn()]
    columns.append(TimeElapsedColumn())
    progress = Progress(*columns, console=Console(stderr=True), transient=True)
    task = progress.add_task("audit", total=total_bytes or None, requests=0)
    progress.start()
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        progress.update(task, completed=stats.bytes_read, requests=done)

    return progress.stop, advance
