"""Prices of one model and the exact arithmetic that turns token usage into dollars.

Conventions follow genai-prices (and ``gearshift.chat.Usage``): ``input_tokens`` counts every prompt
token *including* cache reads and writes, and ``output_tokens`` includes reasoning tokens. A cache
or reasoning rate that a model does not have falls back to the plain input or output rate, which
is how providers bill such tokens. Tiered prices are "cliff" tiers, chosen by the request's total
input tokens (crossing a threshold re-prices every token), again as in genai-prices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from gearshift.chat import Usage

PriceSource = Literal["config", "genai-prices", "unknown"]

MTOK = Decimal(1_000_000)
ZERO = Decimal(0)


@dataclass(slots=True, frozen=True)
class Price:
    """USD per million tokens, optionally with cliff tiers ``(start, price)`` by total input."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...] = ()

    def at(self, total_input_tokens: int) -> Decimal:
        # The highest tier whose start the request's input exceeds wins (genai-prices semantics).
        for start, price in reversed(self.tiers):
            if total_input_tokens > start:
                return price
        return self.base


@dataclass(slots=True, frozen=True)
class Rates:
    """Every price needed to cost a chat call. ``None`` means "billed at the plain rate"."""

    input: Price
    output: Price
    cache_read: Price | None = None
    cache_write: Price | None = None
    reasoning: Price | None = None
    per_request_usd: Decimal = ZERO
    source: PriceSource = "config"
    provider: str | None = None  # genai-prices provider id, when the price came from there
    model_id: str | None = None  # genai-prices model id, when the price came from there


@dataclass(slots=True, frozen=True)
class Quote:
    """The cost of one call and the per-MTok prices that produced it (recorded in the ledger)."""

    cost_usd: Decimal
    source: PriceSource
    input_per_mtok: Decimal = ZERO
    output_per_mtok: Decimal = ZERO
    cache_read_per_mtok: Decimal = ZERO
    cache_write_per_mtok: Decimal = ZERO
    reasoning_per_mtok: Decimal = ZERO
    per_request_usd: Decimal = ZERO
    model_id: str | None = None
    provider: str | None = None
    breakdown: dict[str, Decimal] = field(default_factory=dict)


def unknown_quote() -> Quote:
    return Quote(cost_usd=ZERO, source="unknown")


def quote(rates: Rates, usage: Usage) -> Quote:
    """Exact cost of ``usage`` at ``rates``; never negative, even for inconsistent usage."""
    total_input = max(usage.input_tokens, 0)
    input_rate = rates.input.at(total_input)
    output_rate = rates.output.at(total_input)
    cache_read_rate = rates.cache_read.at(total_input) if rates.cache_read else input_rate
    cache_write_rate = rates.cache_write.at(total_input) if rates.cache_write else input_rate
    reasoning_rate = rates.reasoning.at(total_input) if rates.reasoning else output_rate

    cache_read = max(usage.cache_read_tokens, 0)
    cache_write = max(usage.cache_write_tokens, 0)
    # A provider that reports cache tokens beyond its input total is wrong; bill what it reported
    # for the cache and nothing negative for the rest rather than crash on the request path.
    uncached_input = max(total_input - cache_read - cache_write, 0)
    total_output = max(usage.output_tokens, 0)
    reasoning = min(max(usage.reasoning_tokens, 0), total_output)
    plain_output = total_output - reasoning

    parts = {
        "input": Decimal(uncached_input) * input_rate / MTOK,
        "cache_read": Decimal(cache_read) * cache_read_rate / MTOK,
        "cache_write": Decimal(cache_write) * cache_write_rate / MTOK,
        "output": Decimal(plain_output) * output_rate / MTOK,
        "reasoning": Decimal(reasoning) * reasoning_rate / MTOK,
        "request": rates.per_request_usd,
    }
    return Quote(
        cost_usd=sum(parts.values(), ZERO),
        source=rates.source,
        input_per_mtok=input_rate,
        output_per_mtok=output_rate,
        cache_read_per_mtok=cache_read_rate,
        cache_write_per_mtok=cache_write_rate,
        reasoning_per_mtok=reasoning_rate,
        per_request_usd=rates.per_request_usd,
        model_id=rates.model_id,
        provider=rates.provider,
        breakdown=parts,
    )
