"""``Pricer``: the cost of a call, from config overrides first and genai-prices second.

Two faces: ``cost(model, usage) -> Quote`` is exact (``Decimal``) and goes into the ledger;
``estimate(model, prompt_tokens, completion_tokens) -> float`` is the router's per-decision
estimate, a dict lookup and two multiplications on rates precomputed as floats.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from gearshift.chat import Usage
from gearshift.config import ModelConfig, Settings
from gearshift.pricing.catalog import lookup_rates
from gearshift.pricing.rates import MTOK, Price, Quote, Rates, quote, unknown_quote

log = logging.getLogger("gearshift.pricing")

_UNKNOWN_FLOAT = (0.0, 0.0)


def rates_from_config(model: ModelConfig) -> Rates | None:
    """The rates a model's ``price:`` block sets, or ``None`` when it has none."""
    p = model.price
    if p is None:
        return None
    return Rates(
        input=Price(p.input_per_mtok),
        output=Price(p.output_per_mtok),
        cache_read=Price(p.cache_read_per_mtok) if p.cache_read_per_mtok is not None else None,
        cache_write=Price(p.cache_write_per_mtok) if p.cache_write_per_mtok is not None else None,
        reasoning=Price(p.reasoning_per_mtok) if p.reasoning_per_mtok is not None else None,
        source="config",
    )


def _float_rates(rates: Rates | None) -> tuple[float, float]:
    if rates is None:
        return _UNKNOWN_FLOAT
    return (float(rates.input.base / MTOK), float(rates.output.base / MTOK))


class Pricer:
    """Prices calls to configured models (by name or ``ModelConfig``) and to bare model names.

    Thread-safe: lookups of new bare names are cached under a lock; configured models are resolved
    once, when the pricer is built, so the request path never imports genai-prices lazily.
    """

    def __init__(self, models: Iterable[ModelConfig] = ()) -> None:
        self._configured: dict[str, ModelConfig] = {m.name: m for m in models}
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        # key -> (UTC date resolved, rates); re-resolved when the date changes, because
        # genai-prices prices are date-bounded (a new price can start tomorrow).
        self._rates: dict[str, tuple[str, Rates | None]] = {}
        self._floats: dict[str, tuple[float, float]] = {}
        today = _today()
        for m in self._configured.values():
            r = self._resolve(m)
            self._rates[m.name] = (today, r)
            self._floats[m.name] = _float_rates(r)

    @classmethod
    def from_settings(cls, settings: Settings) -> Pricer:
        return cls(settings.models)

    # ---- exact ---------------------------------------------------------------------------

    def cost(self, model: ModelConfig | str, usage: Usage, *, at: datetime | None = None) -> Quote:
        """Exact cost of one call. ``at`` prices a historical request at its own date.

        An unknown price is cost 0 with ``source="unknown"`` and one warning per model, so a
        request is never refused or lost because a price is missing.
        """
        rates = self.rates_for(model, at=at)
        if rates is None:
            return unknown_quote()
        return quote(rates, usage)

    def rates_for(self, model: ModelConfig | str, *, at: datetime | None = None) -> Rates | None:
        key = model.name if isinstance(model, ModelConfig) else model
        if at is not None:
            return self._resolve(self._config_for(model), when=at)
        day = _today()
        cached = self._rates.get(key)
        if cached is not None and cached[0] == day:
            return cached[1]
        with self._lock:
            rates = self._resolve(self._config_for(model))
            self._rates[key] = (day, rates)
            self._floats[key] = _float_rates(rates)
        return rates

    def source(self, model: ModelConfig | str) -> str:
        rates = self.rates_for(model)
        return rates.source if rates is not None else "unknown"

    # ---- fast float estimate for the router -----------------------------------------------

    def rates(self, model: ModelConfig | str) -> tuple[float, float]:
        """(USD per input token, USD per output token) as floats; (0, 0) when unknown."""
        key = model.name if isinstance(model, ModelConfig) else model
        found = self._floats.get(key)
        if found is None:
            self.rates_for(model)
            found = self._floats.get(key, _UNKNOWN_FLOAT)
        return found

    def estimate(
        self, model: ModelConfig | str, prompt_tokens: int, completion_tokens: int
    ) -> float:
        """Expected USD of a call, for ranking candidates (not for the ledger)."""
        key = model.name if isinstance(model, ModelConfig) else model
        r = self._floats.get(key) or self.rates(model)
        return prompt_tokens * r[0] + completion_tokens * r[1]

    # ---- internals -------------------------------------------------------------------------

    def _config_for(self, model: ModelConfig | str) -> ModelConfig | str:
        if isinstance(model, str):
            return self._configured.get(model, model)
        return model

    def _resolve(self, model: ModelConfig | str, *, when: datetime | None = None) -> Rates | None:
        if isinstance(model, ModelConfig):
            rates = rates_from_config(model)
            if rates is not None:
                return rates
            refs = [model.upstream_model]
            if model.name != model.upstream_model:
                refs.append(model.name)
            for ref in refs:
                rates = lookup_rates(
                    ref, provider_kind=model.provider, base_url=model.base_url, when=when
                )
                if rates is not None:
                    return rates
            self._warn_unknown(model.name, f"upstream model {model.upstream_model!r}")
            return None
        rates = lookup_rates(model, when=when)
        if rates is None:
            self._warn_unknown(model, "bare model name")
        return rates

    def _warn_unknown(self, name: str, what: str) -> None:
        if name in self._warned:
            return
        self._warned.add(name)
        log.warning(
            "no price known for model %r (%s): its calls are recorded at $0 with price_source="
            "'unknown'; add `price: {input_per_mtok: ..., output_per_mtok: ...}` to its config",
            name,
            what,
        )


def _today() -> str:
    return datetime.now(tz=UTC).date().isoformat()


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Exact decimal of a config or JSON number (floats via their shortest repr)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)
