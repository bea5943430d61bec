"""Policies: virtual keys, budgets, spend-rate limits and router targets (see docs/policies.md).

``create_policy(settings)`` builds the engine the gateway calls; it checks at startup that a
configured Redis answers, so an unreachable one is a clear configuration error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gearshift.config import Settings
    from gearshift.policy.engine import GearshiftPolicy

__all__ = ["create_policy", "limited_keys_problem", "shared_counters_problem"]


def shared_counters_problem(settings: Settings, workers: int) -> str | None:
    """Why ``workers`` processes cannot enforce this policy (each would count on its own and let
    N times a budget or rate through), or None. ``gearshift serve`` asks before it starts the
    workers; ``create_policy`` asks again for ``server.workers``."""
    if workers <= 1 or settings.policy.redis_url:
        return None
    if settings.policy.budgets:
        return (
            f"{workers} workers and policy.budgets are set: budgets must be shared by the "
            "workers, so set policy.redis_url (or run one worker)"
        )
    if settings.policy.limits:
        return (
            f"{workers} workers and policy.limits are set: rate limits must be counted for all "
            "workers together, so set policy.redis_url (or run one worker)"
        )
    return None


def limited_keys_problem(settings: Settings, workers: int) -> str | None:
    """The same question for virtual keys with their own budget or rate limit (they live in the
    ledger database, not the file): without Redis each worker would count a key's spend and
    requests on its own. A database that cannot be read now is no answer: the gateway starts and
    spools, and the keys are checked by the next start."""
    if workers <= 1 or settings.policy.redis_url or not settings.storage:
        return None
    from gearshift.policy.keys import KeyStore

    try:
        store = KeyStore.open(settings.storage)
    except Exception:  # any driver's error: the database is down or unreadable right now
        return None
    try:
        keys = store.active_by_hash().values()
    except Exception:
        return None
    finally:
        store.close()
    limited = sorted(k.id for k in keys if k.budget_usd is not None or k.rpm or k.tpm)
    if not limited:
        return None
    shown = ", ".join(limited[:3]) + (f" and {len(limited) - 3} more" if len(limited) > 3 else "")
    return (
        f"{workers} workers and virtual keys with a budget or rate limit ({shown}): their spend "
        "and requests must be counted for all workers together, so set policy.redis_url (or run "
        "one worker)"
    )


def create_policy(settings: Settings) -> GearshiftPolicy:
    from gearshift.errors import ConfigError
    from gearshift.policy.engine import GearshiftPolicy

    problem = shared_counters_problem(settings, settings.server.workers)
    if problem is not None:
        raise ConfigError(problem)
    if settings.policy.redis_url:
        from gearshift.policy.redis_counters import check_reachable

        check_reachable(settings.policy.redis_url)
    return GearshiftPolicy(settings)
