"""Policies: virtual keys, budgets, spend-rate limits and router targets (see docs/policies.md).

``create_policy(settings)`` builds the engine the gateway calls; it checks at startup that a
configured Redis answers, so an unreachable one is a clear configuration error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gearshift.config import Settings
    from gearshift.policy.engine import GearshiftPolicy

__all__ = ["create_policy"]


def create_policy(settings: Settings) -> GearshiftPolicy:
    from gearshift.errors import ConfigError
    from gearshift.policy.engine import GearshiftPolicy

    if settings.server.workers > 1 and settings.policy.budgets and not settings.policy.redis_url:
        # Each worker process would count spend on its own and let N times the budget through.
        raise ConfigError(
            f"server.workers is {settings.server.workers} and policy.budgets are set: budgets "
            "must be shared by the workers, so set policy.redis_url (or run one worker)"
        )
    if settings.server.workers > 1 and settings.policy.limits and not settings.policy.redis_url:
        raise ConfigError(
            f"server.workers is {settings.server.workers} and policy.limits are set: rate "
            "limits must be counted for all workers together, so set policy.redis_url (or run "
            "one worker)"
        )
    if settings.policy.redis_url:
        from gearshift.policy.redis_counters import check_reachable

        check_reachable(settings.policy.redis_url)
    return GearshiftPolicy(settings)
