"""The attempts of one request: each ranked model in turn, within a model its deployments, a
retry on the same deployment only for a retryable failure, after a jittered backoff. Split from
``pipeline.py``, whose call loops drive these."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

from gearshift.errors import GearshiftError, InvalidRequest, UpstreamError
from gearshift.providers.deployments import Deployment, DeploymentPool

if TYPE_CHECKING:
    from gearshift.api.pipeline import _Plan
    from gearshift.config import ModelConfig

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "attempts",
    "backoff",
    "exhausted",
    "is_client_fault",
    "judge_failure",
    "note_failed",
]

# First retry waits about this long; each later one doubles, with jitter, capped.
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0


def attempts(plan: _Plan) -> Iterator[tuple[DeploymentPool, Deployment | None, int, float]]:
    """(pool, deployment, attempt number within the model, seconds to wait first) for each
    attempt of a request; a deployment of None means: wait up to that many seconds for a verdict
    on the pool (``until_verdict``: every usable deployment is on trial), then go on iterating.
    Each model in rank order; within a model its deployments
    (providers/deployments.py), the next one at once
    after a failure, the same one again only for a retryable failure that did not ask us to wait
    longer than a fallback would take, after a backoff. Raises the request's error when every
    attempt has failed (the caller records each failure in ``plan.last_error``)."""
    for model in plan.ranked:
        pool = plan.snap.pools[model.name]
        previous: Deployment | None = None
        attempt = -1
        for dep in pool.attempts(model.max_retries):
            if isinstance(dep, float):
                yield pool, None, attempt + 1, dep
                continue
            attempt += 1
            delay = 0.0
            if dep is previous:
                last = plan.last_error
                assert last is not None
                if not last.retryable or (last.retry_after_s or 0.0) > BACKOFF_CAP_S:
                    break
                delay = backoff(attempt - 1, last)
            previous = dep
            plan.record.deployment = dep.label
            yield pool, dep, attempt, delay
        if previous is None:
            plan.last_error = pool.unavailable()  # every deployment cooling down or at its limit
        note_failed(plan, model)
    raise exhausted(plan, plan.last_error)


def judge_failure(pool: DeploymentPool, dep: Deployment, exc: UpstreamError) -> None:
    """A failed attempt counts against the deployment's health, unless the request itself was
    at fault (it would fail anywhere)."""
    if is_client_fault(exc):
        pool.abandoned(dep)
    else:
        pool.failed(dep, exc)


def note_failed(plan: _Plan, model: ModelConfig) -> None:
    """Name a failed model in the row's ``fallbacks`` (the models tried that failed, in order),
    when there was a chain to fall along: a request for one model names none."""
    if len(plan.ranked) > 1:
        plan.record.fallbacks.append(model.name)


def is_client_fault(exc: UpstreamError) -> bool:
    """An upstream 400/422 means the request itself is bad: another model won't take it either."""
    return exc.upstream_status in (400, 413, 422)


def backoff(attempt: int, exc: UpstreamError) -> float:
    delay: float = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2**attempt))
    delay *= 0.5 + random.random() / 2
    return max(delay, exc.retry_after_s or 0.0)


def exhausted(plan: _Plan, last: UpstreamError | None) -> GearshiftError:
    if last is None:
        return InvalidRequest("no model is available to serve this request")
    tried = ", ".join(plan.record.fallbacks) or "(none)"
    if len(plan.ranked) > 1:
        last.message = f"every candidate model failed (tried {tried}); last error: {last.message}"
        last.args = (last.message,)
    return last
