"""Which candidates are "light": a rank per model from config tier, else from price, else order.

Used by soft budgets (route to lighter candidates only) and by the targets controller (share of
requests on light models, and a prior cost order before any cost has been observed).
"""

from __future__ import annotations

from collections.abc import Sequence

from gearshift.config import ModelConfig, Settings

# Typical request shape, only to order models by price before real costs are observed.
_PRIOR_INPUT_TOKENS = 600
_PRIOR_OUTPUT_TOKENS = 300


def prior_cost_usd(model: ModelConfig | None) -> float | None:
    if model is None or model.price is None:
        return None
    return (
        float(
            model.price.input_per_mtok * _PRIOR_INPUT_TOKENS
            + model.price.output_per_mtok * _PRIOR_OUTPUT_TOKENS
        )
        / 1e6
    )


def model_ranks(settings: Settings, names: Sequence[str]) -> dict[str, float]:
    """Lower is lighter. Tier wins; models without a tier are placed by price among each other."""
    ranks: dict[str, float] = {}
    for i, name in enumerate(names):
        cfg = settings.model(name)
        if cfg is not None and cfg.tier is not None:
            ranks[name] = float(cfg.tier)
        elif cfg is not None and cfg.ability is not None:
            ranks[name] = 1.0 + cfg.ability * 4
        else:
            price = prior_cost_usd(cfg)
            ranks[name] = 100.0 + (price * 1e4 if price is not None else float(i))
    return ranks


def light_models(ranks: dict[str, float]) -> frozenset[str]:
    """The lightest rank's models (tier 1 when tiers are given)."""
    if not ranks:
        return frozenset()
    lowest = min(ranks.values())
    return frozenset(m for m, r in ranks.items() if r == lowest)


def lighter_models(ranks: dict[str, float]) -> frozenset[str]:
    """Every model below the heaviest rank (what a soft budget still allows)."""
    if not ranks:
        return frozenset()
    highest = max(ranks.values())
    lighter = frozenset(m for m, r in ranks.items() if r < highest)
    return lighter or frozenset(ranks)


def prior_costs(settings: Settings, names: Sequence[str]) -> dict[str, float]:
    """A relative cost per model: from configured price, else grown with rank (unknown prices)."""
    ranks = model_ranks(settings, names)
    out: dict[str, float] = {}
    for name in names:
        price = prior_cost_usd(settings.model(name))
        out[name] = price if price is not None else 0.001 * (2 ** min(ranks[name], 30))
    return out
