"""What the router knows about each candidate model, resolved once when a router is built.

Ability: config ``ability``, else the built-in catalogue, else config ``tier``, else the model's
place in the candidates' price order. Prices (USD per token, for *expected* cost only; the ledger
prices calls exactly through ``gearshift.pricing``): config ``price``, else the catalogue's list
price, else genai-prices' bundled snapshot (imported lazily, only for models the catalogue does
not know), else unknown (ordered by tier). Context window and capabilities: config when given
explicitly, else the catalogue, else the configuration defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gearshift.catalogue import CatalogueEntry, lookup

if TYPE_CHECKING:
    from gearshift.config import Capabilities, ModelConfig

__all__ = ["TIER_ABILITY", "ModelProfile", "build_profiles", "price_per_token"]

# Ability assumed for a configured tier when nothing better is known.
TIER_ABILITY: dict[int, float] = {1: 0.65, 2: 0.76, 3: 0.85}
_PER_MTOK = 1e-6


@dataclass(slots=True, frozen=True)
class ModelProfile:
    name: str
    ability: float
    ability_source: str  # "config", "catalogue", "tier", "price order"
    tier: int
    input_per_token: float  # USD; 0 when unknown (see ``priced``)
    output_per_token: float
    priced: bool
    price_source: str  # "config", "catalogue", "genai-prices", "unknown"
    context_window: int | None
    tools: bool
    vision: bool
    json_mode: bool
    upstream: str = ""  # the provider's model name, when it differs from ``name``

    def expected_cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * self.input_per_token + completion_tokens * self.output_per_token

    @property
    def ability_description(self) -> str:
        """Where a predictor that maps through the ability gets this model's quality from."""
        return f"profile ({self.ability_source} ability {self.ability:.2f})"


def _genai_prices_rates(
    entry: CatalogueEntry | None, model: ModelConfig
) -> tuple[float, float] | None:
    """Per-token rates from genai-prices' bundled snapshot (offline; never UpdatePrices)."""
    try:
        from genai_prices import Usage, calc_price
    except ImportError:  # pragma: no cover - genai-prices is a dependency
        return None
    refs: list[tuple[str, str | None]] = [(model.upstream_model, None), (model.name, None)]
    if entry is not None:
        refs.insert(0, (entry.pricing_ref, entry.pricing_provider))
    for ref, provider in refs:
        try:
            calc = calc_price(
                Usage(input_tokens=1_000_000, output_tokens=0), ref, provider_id=provider
            )
            out = calc_price(
                Usage(input_tokens=0, output_tokens=1_000_000), ref, provider_id=provider
            )
        except (LookupError, ValueError):
            continue
        return float(calc.total_price) * _PER_MTOK, float(out.total_price) * _PER_MTOK
    return None


def price_per_token(model: ModelConfig, entry: CatalogueEntry | None) -> tuple[float, float, str]:
    """(input USD/token, output USD/token, source); the one place the router looks up prices."""
    if model.price is not None:
        return (
            float(model.price.input_per_mtok) * _PER_MTOK,
            float(model.price.output_per_mtok) * _PER_MTOK,
            "config",
        )
    if entry is not None:
        return entry.input_per_mtok * _PER_MTOK, entry.output_per_mtok * _PER_MTOK, "catalogue"
    rates = _genai_prices_rates(entry, model)
    if rates is not None:
        return rates[0], rates[1], "genai-prices"
    return 0.0, 0.0, "unknown"


def _entry_for(model: ModelConfig) -> CatalogueEntry | None:
    return lookup(model.upstream_model) or lookup(model.name)


def build_profiles(models: Sequence[ModelConfig]) -> list[ModelProfile]:
    """Resolve ability, price, context and capabilities for each model (order kept)."""
    entries = [_entry_for(m) for m in models]
    prices = [price_per_token(m, e) for m, e in zip(models, entries, strict=True)]
    # price order is the last resort for ability: rank by the blended (1:1) price
    blended = [p[0] + p[1] for p in prices]
    order = sorted(range(len(models)), key=lambda i: (blended[i], models[i].name))
    rank = {i: r for r, i in enumerate(order)}
    n = len(models)
    profiles = []
    for i, (model, entry) in enumerate(zip(models, entries, strict=True)):
        tier = model.tier or (entry.tier if entry else None)
        if model.ability is not None:
            ability, source = model.ability, "config"
        elif entry is not None:
            ability, source = entry.ability, "catalogue"
        elif model.tier is not None:
            ability, source = TIER_ABILITY.get(model.tier, 0.9), "tier"
        elif prices[i][2] != "unknown":
            ability = 0.4 + 0.5 * (rank[i] / (n - 1) if n > 1 else 1.0)
            source = "price order"
        else:
            ability, source = TIER_ABILITY[2], "unknown (mid-tier assumed)"
        caps_given = "capabilities" in model.model_fields_set
        caps: Capabilities | CatalogueEntry = (
            model.capabilities if caps_given or entry is None else entry
        )
        profiles.append(
            ModelProfile(
                name=model.name,
                ability=ability,
                ability_source=source,
                tier=tier if tier is not None else 2,
                input_per_token=prices[i][0],
                output_per_token=prices[i][1],
                priced=prices[i][2] != "unknown",
                price_source=prices[i][2],
                context_window=model.context_window
                or (entry.context_window if entry is not None else None),
                tools=caps.tools,
                vision=caps.vision,
                json_mode=caps.json_mode,
                upstream=model.upstream_model,
            )
        )
    return profiles
