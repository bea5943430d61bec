"""Offline price lookup in genai-prices' bundled snapshot.

genai-prices (about 0.4 s to import and load) is imported only when a price is first needed from
it, never at import of this module. Only the bundled data snapshot is read: this module never
starts ``UpdatePrices``, so pricing makes no network call, ever.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gearshift.pricing.rates import Price, Rates

# gearshift provider kind -> genai-prices provider id
PROVIDER_IDS: dict[str, str] = {"openai": "openai", "anthropic": "anthropic", "bedrock": "aws"}

_LOOPBACK = re.compile(r"^https?://(localhost|127\.|\[::1\]|0\.0\.0\.0)", re.IGNORECASE)


def _snapshot() -> Any:
    from genai_prices import data_snapshot

    return data_snapshot.get_snapshot()


def _price(value: Any) -> Price | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return Price(value)
    # genai_prices.types.TieredPrices: base + tiers sorted by start
    tiers = tuple((int(t.start), Decimal(t.price)) for t in value.tiers)
    return Price(Decimal(value.base), tiers)


def _rates_from(provider: Any, model: Any, when: datetime) -> Rates | None:
    prices = model.get_prices(when)
    input_price = _price(getattr(prices, "input_mtok", None))
    output_price = _price(getattr(prices, "output_mtok", None))
    if input_price is None and output_price is None:
        return None  # an audio/image-only model: nothing we can price tokens with
    per_request = getattr(prices, "requests_kcount", None)
    return Rates(
        input=input_price or Price(Decimal(0)),
        output=output_price or Price(Decimal(0)),
        cache_read=_price(getattr(prices, "cache_read_mtok", None)),
        cache_write=_price(getattr(prices, "cache_write_mtok", None)),
        reasoning=_price(getattr(prices, "output_reasoning_mtok", None)),
        per_request_usd=Decimal(per_request) / 1000 if per_request is not None else Decimal(0),
        source="genai-prices",
        provider=str(provider.id),
        model_id=str(model.id),
    )


def _attempts(
    model_ref: str, provider_kind: str | None, base_url: str | None
) -> list[tuple[str | None, str | None]]:
    """(provider_id, provider_api_url) pairs to try, most specific first."""
    attempts: list[tuple[str | None, str | None]] = []
    if base_url and not _LOOPBACK.match(base_url):
        attempts.append((None, base_url))  # e.g. https://api.groq.com/... -> groq
    if provider_kind in PROVIDER_IDS:
        attempts.append((PROVIDER_IDS[provider_kind], None))
    if "/" in model_ref:
        # "openai/gpt-4o", "anthropic/claude-..." (LiteLLM / OpenRouter style refs)
        attempts.append(("litellm", None))
    attempts.append((None, None))  # genai-prices guesses the provider from the model name
    return attempts


def lookup_rates(
    model_ref: str,
    *,
    provider_kind: str | None = None,
    base_url: str | None = None,
    when: datetime | None = None,
) -> Rates | None:
    """Rates for ``model_ref`` from genai-prices, or ``None`` when it does not know the model."""
    snapshot = _snapshot()
    moment = when or datetime.now(tz=UTC)
    for provider_id, api_url in _attempts(model_ref, provider_kind, base_url):
        try:
            provider, model = snapshot.find_provider_model(model_ref, None, provider_id, api_url)
        except LookupError:
            continue
        rates = _rates_from(provider, model, moment)
        if rates is not None:
            return rates
    return None
