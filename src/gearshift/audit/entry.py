"""What every log reader yields: one request as logged, in a format-neutral shape."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class LogEntry:
    """One logged request.

    ``messages`` are OpenAI-style ``{"role", "content"}`` dicts whose content is already plain text.
    The fast JSONL path leaves them as the raw JSON array in ``messages_json`` instead, so the
    audit can key a prompt on its bytes and decode it only where needed (``message_list()``).
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
    messages_json: bytes | None = None

    def message_list(self) -> list[dict[str, Any]]:
        """The messages, decoded from ``messages_json`` on first use ([] when unusable)."""
        if self.messages_json is not None and not self.messages:
            from gearshift.audit.readers.content import decode_messages

            self.messages = decode_messages(self.messages_json) or []
        return self.messages


@dataclass(slots=True)
class ReadStats:
    """Counts of what the readers saw; problems are counted, never fatal."""

    lines: int = 0
    bytes_read: int = 0  # of uncompressed JSONL, for the progress bar
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
