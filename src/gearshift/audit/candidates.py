"""Which models an audit routes between, and the router that decides among them.

Without a config, the candidates are the models seen in the log plus, for each, lighter models of
its family from the built-in catalogue (one per lighter tier, the closest relative by name: a
``gpt-4o`` log gets ``gpt-4o-mini`` and ``gpt-4.1-mini``). With a config, they are the named
router's models.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gearshift.catalogue import CatalogueEntry, family_members, lookup, normalise_name
from gearshift.config import ModelConfig, PriceOverride, RouterConfig, Settings, load_settings
from gearshift.errors import ConfigError

AUDIT_ROUTER = "audit"
_PROVIDER_OF_FAMILY = {"claude": "anthropic", "nova": "bedrock"}


@dataclass(slots=True)
class Candidates:
    settings: Settings
    router: RouterConfig
    proposed: dict[str, str]  # candidate -> why it is there ("seen in the log", "lighter ...")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.router.models)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def lighter_relatives(entry: CatalogueEntry) -> list[CatalogueEntry]:
    """For each tier below ``entry``'s, the family member closest to it by name (then the most
    able), cheaper than it, and not a reasoning-only model standing in for a chat model."""
    price = entry.input_per_mtok + entry.output_per_mtok
    chosen: list[CatalogueEntry] = []
    for tier in range(entry.tier - 1, 0, -1):
        pool = [
            m
            for m in family_members(entry.family)
            if m.tier == tier and m.input_per_mtok + m.output_per_mtok < price
        ]
        if not pool:
            continue
        pool.sort(key=lambda m: (-_common_prefix(m.name, entry.name), -m.ability, m.name))
        chosen.append(pool[0])
    return chosen


@contextmanager
def _quiet_pricing() -> Iterator[None]:
    """Probing genai-prices for a spelling it lacks is expected here, not worth a warning."""
    logger = logging.getLogger("gearshift.pricing")
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


def _model_config(name: str, entry: CatalogueEntry | None, pricer: Any) -> ModelConfig:
    fields: dict[str, Any] = {"name": name}
    if entry is not None:
        fields["provider"] = _PROVIDER_OF_FAMILY.get(entry.family, "openai")
        fields["context_window"] = entry.context_window
        # The audit never calls upstream: the model id only matters for pricing, so it is the
        # catalogue's genai-prices reference (a Bedrock id is priced as its vendor's model).
        fields["model"] = entry.pricing_ref
        if pricer.rates_for(entry.pricing_ref) is None:
            # genai-prices does not know this model: the catalogue's list price stands in.
            fields["price"] = PriceOverride(
                input_per_mtok=Decimal(str(entry.input_per_mtok)),
                output_per_mtok=Decimal(str(entry.output_per_mtok)),
            )
    return ModelConfig(**fields)


def propose(seen_models: Iterable[str], tolerance: float | None = None) -> Candidates:
    """Candidates for a log without a config: what it used plus lighter relatives."""
    from gearshift.pricing import Pricer

    pricer = Pricer()
    proposed: dict[str, str] = {}
    entries: dict[str, CatalogueEntry | None] = {}
    canonical_seen: set[str] = set()
    for model in seen_models:
        entry = lookup(model)
        entries[model] = entry
        proposed[model] = "seen in the log"
        canonical_seen.add(entry.name if entry else normalise_name(model))
    for entry in list(entries.values()):
        if entry is None:
            continue
        for relative in lighter_relatives(entry):
            if relative.name in canonical_seen or relative.name in proposed:
                continue
            entries[relative.name] = relative
            proposed[relative.name] = f"lighter {relative.family} model (tier {relative.tier})"
    if not proposed:
        raise ConfigError(
            "the log names no model: pass --model NAME (what it was sent to) or --config FILE"
        )
    with _quiet_pricing():
        models = [_model_config(name, entries[name], pricer) for name in proposed]
    router_fields: dict[str, Any] = {"name": AUDIT_ROUTER, "models": list(proposed)}
    if tolerance is not None:
        router_fields["quality_tolerance"] = tolerance
    router = RouterConfig(**router_fields)
    settings = Settings(models=models, routers=[router], storage="sqlite:///:memory:")
    return Candidates(settings=settings, router=router, proposed=proposed)


def from_config(
    path: str | os.PathLike[str], router_name: str | None, tolerance: float | None
) -> Candidates:
    settings = load_settings(path)
    if not settings.routers:
        raise ConfigError(f"{path} defines no routers; add one under 'routers:' to audit against")
    if router_name is None:
        router = settings.routers[0]
    else:
        found = settings.router(router_name)
        if found is None:
            names = ", ".join(r.name for r in settings.routers)
            raise ConfigError(f"no router named {router_name!r} in {path}; it defines: {names}")
        router = found
    if tolerance is not None:
        router = router.model_copy(update={"quality_tolerance": tolerance})
    return Candidates(
        settings=settings, router=router, proposed={m: "in the router" for m in router.models}
    )


def match_candidate(logged: str, candidates: Iterable[str]) -> str | None:
    """The candidate a logged model name is (``gpt-4o-2024-08-06`` is ``gpt-4o``), if any."""
    names = list(candidates)
    if logged in names:
        return logged
    norm = normalise_name(logged)
    for name in names:
        if normalise_name(name) == norm:
            return name
    entry = lookup(logged)
    if entry is not None:
        for name in names:
            other = lookup(name)
            if other is not None and other.name == entry.name:
                return name
    return None
