"""What every log reader yields: one request as logged, in a format-neutral shape."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class LogEntry:
    """One logged request.

    ``messages`` are OpenAI-style ``{"role", "content"}`` dicts whose content is already plain text.
    Token counts are ``None`` when the log does not say (the audit then counts or assumes, and
    reports how often it had to). ``cached_tokens`` are prompt tokens served from a prompt cache.
    """

    messages: list[dict[str, Any]]
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    logged_cost_usd: float | None = None  # a cost the log itself states (CSV, ledger), if any
    tags: dict[str, str] = field(default_factory=dict)
    ts: float | None = None  # unix seconds
    # Decisions the log already carries (gearshift's ledger): model -> predicted quality.
    predicted: dict[str, float] | None = None
    difficulty: float | None = None
    kind: str | None = None


@dataclass(slots=True)
class ReadStats:
    """Counts of what the readers saw; problems are counted, never fatal."""

    lines: int = 0
    entries: int = 0
    blank: int = 0
    malformed: int = 0  # not parseable (bad JSON, bad CSV row, bad gzip tail)
    skipped: Counter[str] = field(default_factory=Counter)  # parseable but unusable, by reason
    formats: Counter[str] = field(default_factory=Counter)  # entries per detected format
    examples: list[str] = field(default_factory=list)  # first few problems, "file:line: why"

    def problem(self, where: str, why: str, *, malformed: bool) -> None:
        if malformed:
            self.malformed += 1
        else:
            self.skipped[why] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{where}: {why}")

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())
