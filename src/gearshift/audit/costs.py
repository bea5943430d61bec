"""Vectorised prices: the cost of many requests on one model in one numpy expression.

The audit prices every request twice (as logged, and on each candidate) over logs of millions of
lines, so it works on arrays of token counts with per-model rates taken from ``gearshift.pricing``
(the same rates the ledger uses: config override, else genai-prices, else the catalogue's list
price). Cached prompt tokens get the cache-read rate; cliff tiers (a price that changes above an
input size, as in genai-prices) are applied per request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gearshift.catalogue import lookup
from gearshift.pricing import Pricer, Rates
from gearshift.pricing.rates import MTOK, Price

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True, frozen=True)
class FloatPrice:
    base: float  # USD per token
    tiers: tuple[tuple[int, float], ...] = ()

    @classmethod
    def of(cls, price: Price) -> FloatPrice:
        return cls(
            float(price.base / MTOK), tuple((start, float(p / MTOK)) for start, p in price.tiers)
        )

    def per_token(self, prompt_tokens: IntArray) -> FloatArray | float:
        if not self.tiers:
            return self.base
        rate: FloatArray = np.full(prompt_tokens.shape, self.base)
        for start, price in self.tiers:  # ascending starts: the highest one exceeded wins
            rate = np.where(prompt_tokens > start, price, rate)
        return rate


@dataclass(slots=True, frozen=True)
class ModelRates:
    """Float rates of one model; ``priced`` is False when no source knows its price."""

    input: FloatPrice
    output: FloatPrice
    cache_read: FloatPrice
    per_request: float
    priced: bool
    source: str

    def cost(self, prompt: IntArray, completion: IntArray, cached: IntArray) -> FloatArray:
        cached = np.minimum(cached, prompt)
        value = (
            (prompt - cached) * self.input.per_token(prompt)
            + cached * self.cache_read.per_token(prompt)
            + completion * self.output.per_token(prompt)
            + self.per_request
        )
        return np.asarray(value, dtype=np.float64)


UNPRICED = ModelRates(FloatPrice(0.0), FloatPrice(0.0), FloatPrice(0.0), 0.0, False, "unknown")


def model_rates(pricer: Pricer, name: str) -> ModelRates:
    """Rates for a configured model or a bare name; a name genai-prices lacks in this spelling
    (a Bedrock id, say) is priced as its catalogue entry."""
    rates: Rates | None = pricer.rates_for(name)
    if rates is None:
        entry = lookup(name)
        if entry is not None:
            rates = pricer.rates_for(entry.pricing_ref)
            if rates is None:
                list_input = FloatPrice(entry.input_per_mtok / 1e6)
                return ModelRates(
                    list_input,
                    FloatPrice(entry.output_per_mtok / 1e6),
                    list_input,
                    0.0,
                    True,
                    "catalogue",
                )
    if rates is None:
        return UNPRICED
    input_price = FloatPrice.of(rates.input)
    return ModelRates(
        input=input_price,
        output=FloatPrice.of(rates.output),
        cache_read=FloatPrice.of(rates.cache_read) if rates.cache_read else input_price,
        per_request=float(rates.per_request_usd),
        priced=True,
        source=rates.source,
    )
