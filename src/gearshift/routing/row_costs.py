"""Estimated call costs for labelled rows that record none (``"costs": {model: null}``).

Public outcome sets (MMLU-Pro, arena-bench, AlpacaEval) say how good each answer was, not what it
cost, yet training and evaluating a router over many models needs a cost per (prompt, model).
A missing cost is estimated as ``prompt tokens × input price + answer tokens × output price``:
prompt tokens from ``gearshift.routing.tokens`` (≈ chars/4), a fixed answer length
(``DEFAULT_ANSWER_TOKENS`` unless given), and per-model list prices looked up in this order:

1. the built-in catalogue (``gearshift.catalogue``), which also normalises vendor prefixes and
   dates;
2. genai-prices' bundled snapshot (offline, never updated at run time);
3. ``LEGACY_PRICES`` below: retired API models that appear in public benchmark data;
4. an open-weights model whose name gives its size (``Qwen1.5-72B-Chat``, ``vicuna-13b``) is
   priced like hosted open models of that size (``SIZE_PRICES``).

A model none of these can price raises ``InvalidRequest`` naming it: give ``costs`` in the rows.
Costs a row records are never replaced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from gearshift.errors import InvalidRequest
from gearshift.routing.formats import LabelledRow
from gearshift.routing.tokens import estimate_request_tokens

__all__ = [
    "DEFAULT_ANSWER_TOKENS",
    "fill_missing_costs",
    "list_price",
]

DEFAULT_ANSWER_TOKENS = 300  # a short explained answer; exam CoT and chat answers run 200-400
# USD per million tokens (input, output): list prices at the time these models were served
LEGACY_PRICES: dict[str, tuple[float, float]] = {
    "claude-1": (8.0, 24.0),
    "claude-instant-1": (0.8, 2.4),
    "palm-2-chat-bison": (0.5, 0.5),
    "text-davinci-003": (20.0, 20.0),
    "text-davinci-001": (20.0, 20.0),
    "c4ai-command-r": (0.5, 1.5),
    "cohere-command": (1.0, 2.0),
    "jamba-1.5-large": (2.0, 8.0),
    "openchat-3.5": (0.2, 0.2),  # 7B
    "phi-3-mini": (0.1, 0.1),  # 3.8B
    "phi-2": (0.1, 0.1),  # 2.7B
}
# Hosted open-weights models by parameter count (billions, upper bound): USD/Mtok in and out
SIZE_PRICES: tuple[tuple[float, float], ...] = (
    (4, 0.1),
    (9, 0.2),
    (15, 0.3),
    (41, 0.8),
    (75, 0.9),
    (1e9, 3.0),
)
_SIZE = re.compile(r"(?<![0-9.])(\d+(?:\.\d+)?)b(?![a-z])")


def _size_price(name: str) -> tuple[float, float] | None:
    sizes = [float(s) for s in _SIZE.findall(name.lower())]
    if not sizes:
        return None
    billions = max(sizes)
    price = next(p for limit, p in SIZE_PRICES if billions <= limit)
    return price, price


@lru_cache(maxsize=512)
def list_price(model: str) -> tuple[float, float, str] | None:
    """(input, output) USD per million tokens and where they came from; None if unknown."""
    from gearshift.catalogue import lookup, normalise_name

    entry = lookup(model)
    if entry is not None:
        return entry.input_per_mtok, entry.output_per_mtok, "catalogue"
    from gearshift.pricing.catalog import lookup_rates

    rates = lookup_rates(model)
    if rates is not None:
        return float(rates.input.base), float(rates.output.base), "genai-prices"
    name = normalise_name(model)
    for known, (pin, pout) in LEGACY_PRICES.items():
        if name == known or (name.startswith(known) and name[len(known)] in "-._ :"):
            return pin, pout, "legacy list price"
    sized = _size_price(name)
    if sized is not None:
        return sized[0], sized[1], "open-weights size"
    return None


def fill_missing_costs(
    rows: Iterable[LabelledRow],
    models: Sequence[str] | None = None,
    *,
    answer_tokens: int = DEFAULT_ANSWER_TOKENS,
) -> dict[str, str]:
    """Estimate, in place, every missing cost of a scored model; returns model -> price source.

    ``models`` limits which models are priced (default: every model a row scores).
    """
    rows = list(rows)
    wanted = models or list(dict.fromkeys(m for r in rows for m in r.scores))
    sources: dict[str, str] = {}
    unpriced: list[str] = []
    for model in wanted:
        if all(model in r.costs for r in rows if model in r.scores):
            sources[model] = "recorded"
            continue
        price = list_price(model)
        if price is None:
            unpriced.append(model)
        else:
            sources[model] = price[2]
    if unpriced:
        raise InvalidRequest(
            "no recorded costs and no known price for "
            + ", ".join(sorted(unpriced))
            + ": give 'costs' in the rows (USD per call)"
        )
    for r in rows:
        tokens: int | None = None
        for model in wanted:
            if model in r.scores and model not in r.costs:
                price = list_price(model)
                assert price is not None  # checked above
                if tokens is None:
                    tokens = estimate_request_tokens(r.request)
                r.costs[model] = (tokens * price[0] + answer_tokens * price[1]) / 1e6
    return sources
