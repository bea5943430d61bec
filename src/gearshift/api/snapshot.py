"""One configuration generation of the gateway, as a single immutable object.

The pipeline reads ``gateway.snapshot`` once when a request arrives and uses that object until
the request is finished, so a reload (``SIGHUP``, ``gearshift reload``) swapping in a new snapshot
never changes models, routers, deployments or prices under a request already running: the swap is
one attribute assignment, atomic on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gearshift.config import ModelConfig, RouterConfig, Settings
from gearshift.providers.deployments import DeploymentPool, build_pool

if TYPE_CHECKING:
    from gearshift.providers.base import Provider
    from gearshift.routing.decision import RouterEngine


@dataclass(frozen=True, slots=True)
class Snapshot:
    settings: Settings
    models: dict[str, ModelConfig]
    router_configs: dict[str, RouterConfig]
    routers: dict[str, RouterEngine]
    pools: dict[str, DeploymentPool] = field(default_factory=dict)
    pricer: Any = None  # the Pricer protocol of api/pipeline.py
    generation: int = 0


def initial_snapshot(settings: Settings, routers: dict[str, RouterEngine] | None) -> Snapshot:
    """Before ``open()``: names only (routers given by the caller, nothing built or pooled)."""
    return Snapshot(
        settings,
        {m.name: m for m in settings.models},
        {r.name: r for r in settings.routers},
        dict(routers or {}),
    )


def build_snapshot(
    settings: Settings,
    previous: Snapshot,
    provider_for: Callable[[ModelConfig], Provider],
    build_router: Callable[[Settings, RouterConfig], RouterEngine],
    pricer: Any,
) -> Snapshot:
    """Everything a request needs for ``settings``. From ``previous`` it keeps router engines whose
    router and candidate models are unchanged (no re-loading a predictor for nothing) and the
    health of unchanged deployments (a reload does not forget a dead upstream)."""
    models = {m.name: m for m in settings.models}
    router_configs = {r.name: r for r in settings.routers}
    routers: dict[str, RouterEngine] = {}
    for name, cfg in router_configs.items():
        engine = previous.routers.get(name)
        if engine is None or not _same_router(previous, settings, cfg):
            engine = build_router(settings, cfg)
        routers[name] = engine
    pools = {
        m.name: build_pool(m, settings.cooldown, provider_for, previous.pools.get(m.name))
        for m in settings.models
    }
    return Snapshot(
        settings, models, router_configs, routers, pools, pricer, previous.generation + 1
    )


def _same_router(previous: Snapshot, settings: Settings, cfg: RouterConfig) -> bool:
    if not previous.pools:
        # The first build: an engine handed in by the caller (tests) is kept as given.
        return True
    if previous.router_configs.get(cfg.name) != cfg:
        return False
    names = [*cfg.models, *([cfg.fallback] if cfg.fallback else [])]
    return all(previous.models.get(n) == settings.model(n) for n in names)
