"""Deployments of one model: which upstream serves the next attempt, and which ones to skip.

A model with ``deployments:`` (several keys, regions or Azure deployments of one model) is served
by all of them; a model without is one implicit deployment, so every model gets the same health
tracking. Per attempt the pipeline asks its ``DeploymentPool`` for ``attempts()``:

- **spread**: usable deployments ordered by in-flight requests per unit of weight (least loaded
  first), ties broken by a weighted random draw, so at low concurrency traffic splits by weight
  and under load it goes where there is room;
- **limits**: a deployment that has used its ``rpm`` or ``tpm`` in the current minute (counted in
  this process) is skipped until the minute turns;
- **cooldowns**: after ``cooldown.failures`` consecutive failed attempts a deployment is skipped
  for ``cooldown.cooldown_s`` (at least what its 429 ``Retry-After`` asked). Then one request at a
  time probes it: success makes it healthy, failure cools it down again for twice as long (up to
  ``cooldown.max_cooldown_s``). So a dead upstream costs one failed attempt per cooldown period,
  not one per request;
- **trials** (a half-open circuit, as in Envoy's outlier detection): a deployment that has not
  proven itself (no success since start, or a failure since its last success) takes at most one
  request at a time while another usable deployment exists, so a burst of concurrent requests
  cannot all land on a dead upstream before its first failure comes back. When every usable
  deployment is on trial, a request waits for a verdict (up to ``cooldown.trial_wait_s``, then
  goes anyway). A model's only usable deployment is never held back.

Everything here runs on the event loop, one coroutine at a time: plain attribute updates, no locks.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from gearshift.config import CooldownConfig, ModelConfig
from gearshift.errors import UpstreamError

if TYPE_CHECKING:
    from gearshift.providers.base import Provider

Clock = Callable[[], float]
# The label of the one deployment of a model that lists none.
IMPLICIT = "default"


class Deployment:
    """One upstream of a model: where to call (``model``, a ModelConfig with this deployment's
    base URL, key and region), its share, its limits and its health."""

    __slots__ = (
        "attempts_failed",
        "attempts_ok",
        "consecutive_failures",
        "cooldowns",
        "cooldowns_total",
        "cooled_until",
        "identity",
        "in_flight",
        "label",
        "last_error",
        "minute",
        "minute_requests",
        "minute_tokens",
        "model",
        "probing",
        "proven",
        "provider",
        "rpm",
        "tpm",
        "weight",
    )

    def __init__(
        self,
        label: str,
        model: ModelConfig,
        provider: Provider,
        *,
        weight: float = 1.0,
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> None:
        self.label = label
        self.model = model
        self.provider = provider
        self.weight = weight
        self.rpm = rpm
        self.tpm = tpm
        # What must stay equal for a reload to keep this deployment's health and counters.
        self.identity = (model.name, label, model.provider, model.base_url, model.api_key_env)
        self.in_flight = 0
        self.consecutive_failures = 0
        self.cooldowns = 0  # cooldowns in a row (the backoff exponent); 0 when healthy
        self.cooldowns_total = 0
        self.cooled_until: float | None = None  # None = healthy
        self.probing = False  # a probe attempt is in flight
        self.proven = False  # its last verdict was a success (so it may take many at once)
        self.last_error = ""
        self.minute = -1
        self.minute_requests = 0
        self.minute_tokens = 0
        self.attempts_ok = 0
        self.attempts_failed = 0

    def adopt(self, old: Deployment) -> None:
        """Carry health and this minute's counts over from the same upstream in the configuration
        a reload replaces (a reload must not forget a dead upstream). In-flight counts stay with
        the old object, which the requests started before the reload still hold."""
        for name in (
            "consecutive_failures",
            "cooldowns",
            "cooldowns_total",
            "cooled_until",
            "last_error",
            "minute",
            "minute_requests",
            "minute_tokens",
            "attempts_ok",
            "attempts_failed",
            "proven",
        ):
            setattr(self, name, getattr(old, name))

    # ---- state -------------------------------------------------------------------------------

    def _roll(self, now: float) -> None:
        minute = int(now // 60)
        if minute != self.minute:
            self.minute = minute
            self.minute_requests = 0
            self.minute_tokens = 0

    def within_limits(self, now: float) -> bool:
        self._roll(now)
        if self.rpm is not None and self.minute_requests >= self.rpm:
            return False
        return self.tpm is None or self.minute_tokens < self.tpm

    def cooling(self, now: float) -> bool:
        """Skipped for now: cooling down, or cooled down and already being probed."""
        if self.cooled_until is None:
            return False
        return now < self.cooled_until or self.probing

    def on_trial(self) -> bool:
        """Unproven with its one trial request in flight: takes no more while another usable
        deployment can (see the module docstring)."""
        return not self.proven and self.in_flight > 0

    def state(self, now: float) -> str:
        if self.cooled_until is None:
            return "up"
        if now < self.cooled_until:
            return "cooling_down"
        return "probing" if self.probing else "probe_due"

    def status(self, now: float) -> dict[str, Any]:
        """For ``/healthz/ready`` and logs."""
        out: dict[str, Any] = {
            "deployment": self.label,
            "state": self.state(now),
            "in_flight": self.in_flight,
            "consecutive_failures": self.consecutive_failures,
            "proven": self.proven,
        }
        if self.cooled_until is not None:
            out["retry_in_s"] = round(max(0.0, self.cooled_until - now), 3)
        if self.last_error:
            out["last_error"] = self.last_error
        return out


class DeploymentPool:
    """The deployments of one model, and the bookkeeping of attempts on them."""

    def __init__(
        self,
        model: ModelConfig,
        deployments: list[Deployment],
        cooldown: CooldownConfig,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.model = model
        self.deployments = deployments
        self.cooldown = cooldown
        self._clock = clock
        self._rand = random.random
        # Requests waiting for a verdict while every usable deployment is on trial.
        self._waiters: list[asyncio.Future[None]] = []

    # ---- choosing ----------------------------------------------------------------------------

    def usable(self, now: float | None = None) -> list[Deployment]:
        """Deployments an attempt may go to now, best first."""
        now = self._clock() if now is None else now
        deps = self.deployments
        if len(deps) == 1:  # the common case: no ordering to do
            d = deps[0]
            return [d] if not d.cooling(now) and d.within_limits(now) else []
        ready = [d for d in deps if not d.cooling(now) and d.within_limits(now)]
        if len(ready) > 1:
            # Least in-flight per unit of weight first; among equals, a weighted random order
            # (Efraimidis-Spirakis keys: u ** (1 / weight), largest first).
            rand = self._rand
            ready.sort(key=lambda d: (d.in_flight / d.weight, -(rand() ** (1.0 / d.weight))))
        return ready

    def attempts(self, max_retries: int) -> Iterator[Deployment | float]:
        """The deployments to try for one request, in order: each usable one once (the best at
        the time of each attempt), then (while retries remain) round again over those still
        usable. Usability is re-read before every attempt, so one cooled down during this
        request is not tried again. A float instead of a deployment means every usable
        deployment is on trial: wait up to that many seconds for a verdict (``until_verdict``),
        then iterate on."""
        total = max_retries + 1
        if len(self.deployments) == 1:  # the common case: nothing to choose, no trials to gate
            d = self.deployments[0]
            for _ in range(total):
                now = self._clock()
                if d.cooling(now) or not d.within_limits(now):
                    return
                yield d
            return
        given = 0
        waited_since: float | None = None
        tried: list[Deployment] = []
        while True:  # the first round: each deployment at most once
            pick = self._pick(tried, waited_since)
            if pick is None:
                break
            if isinstance(pick, float):
                if waited_since is None:
                    waited_since = self._clock()
                yield pick
                continue
            tried.append(pick)
            given += 1
            yield pick
        while given < total and tried:
            again = self.usable()
            if not again:
                return
            for d in again:
                if given >= total:
                    return
                yield d
                given += 1

    def _pick(
        self, tried: list[Deployment], waited_since: float | None
    ) -> Deployment | float | None:
        """The best deployment not yet ``tried`` for the next attempt; None when none is left;
        the seconds still to wait when every candidate is on trial and another usable deployment
        exists (after ``trial_wait_s`` of waiting, a deployment on trial is taken anyway)."""
        now = self._clock()
        ready = [d for d in self.deployments if not d.cooling(now) and d.within_limits(now)]
        candidates = [d for d in ready if d not in tried]
        if not candidates:
            return None
        if len(ready) > 1:
            free = [d for d in candidates if not d.on_trial()]
            if free:
                candidates = free
            else:
                left = self.cooldown.trial_wait_s - (now - (waited_since or now))
                if left > 0:
                    return left
        if len(candidates) == 1:
            return candidates[0]
        rand = self._rand
        return min(
            candidates, key=lambda d: (d.in_flight / d.weight, -(rand() ** (1.0 / d.weight)))
        )

    async def until_verdict(self, timeout: float) -> None:
        """Wait until an attempt on this model ends (a deployment may have proven itself or
        freed its trial), or ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _wake(waiter)

    # ---- bookkeeping -------------------------------------------------------------------------

    def begin(self, d: Deployment) -> bool:
        """An attempt starts on ``d``; returns whether it is the probe after a cooldown."""
        now = self._clock()
        d._roll(now)
        d.minute_requests += 1
        d.in_flight += 1
        probe = d.cooled_until is not None and now >= d.cooled_until and not d.probing
        if probe:
            d.probing = True
        return probe

    def end(self, d: Deployment) -> None:
        """The attempt's connection is done (its answer read, or the stream finished)."""
        d.in_flight -= 1
        if self._waiters:
            self._wake_all()

    def succeeded(self, d: Deployment) -> None:
        d.proven = True
        if self._waiters:
            self._wake_all()
        d.attempts_ok += 1
        d.consecutive_failures = 0
        d.cooldowns = 0
        d.cooled_until = None
        d.probing = False

    def failed(self, d: Deployment, exc: UpstreamError) -> None:
        d.proven = False
        if self._waiters:
            self._wake_all()
        d.attempts_failed += 1
        d.consecutive_failures += 1
        d.last_error = exc.message[:300]
        was_probe = d.probing
        d.probing = False
        # Once cooled down, only a probe may extend the cooldown: other failures now are of
        # attempts that began before it (a burst in flight when the upstream died), and letting
        # each of them double the period turned a 2 s upstream restart into minutes of 503s.
        first_cooldown = d.cooled_until is None and d.consecutive_failures >= self.cooldown.failures
        if was_probe or first_cooldown:
            period = min(self.cooldown.max_cooldown_s, self.cooldown.cooldown_s * 2**d.cooldowns)
            period = max(period, exc.retry_after_s or 0.0)
            d.cooled_until = self._clock() + period
            d.cooldowns += 1
            d.cooldowns_total += 1

    def abandoned(self, d: Deployment) -> None:
        """The attempt ended without a verdict (client gone, our own bug): a probe is let go so
        the next request probes instead."""
        d.probing = False
        if self._waiters:
            self._wake_all()

    def add_tokens(self, d: Deployment, tokens: int) -> None:
        """Count a finished request's tokens against the deployment's ``tpm``."""
        now = self._clock()
        d._roll(now)
        d.minute_tokens += tokens

    def unavailable(self) -> UpstreamError:
        """The error when no deployment may take an attempt now (all cooling down or at their
        per-minute limits): 503 with ``Retry-After`` for the soonest one."""
        now = self._clock()
        waits = []
        reasons = []
        for d in self.deployments:
            if d.cooling(now):
                waits.append(max(0.0, (d.cooled_until or now) - now))
                reasons.append(f"{d.label} cooling down after failures ({d.last_error})")
            else:
                waits.append(max(1.0, 60.0 - now % 60))
                reasons.append(f"{d.label} at its per-minute limit")
        what = "its deployment" if len(self.deployments) == 1 else "every deployment"
        error = UpstreamError(
            f"{self.model.name}: {what} is unavailable for now: {'; '.join(reasons)}",
            model=self.model.name,
            retryable=True,
        )
        error.status = 503
        error.retry_after_s = max(1.0, math.ceil(min(waits, default=1.0)))
        return error

    def status(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [d.status(now) for d in self.deployments]

    def any_usable(self) -> bool:
        """At least one deployment could take a request now or is due a probe (readiness)."""
        now = self._clock()
        return any(d.cooled_until is None or now >= d.cooled_until for d in self.deployments)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


DeploymentView = tuple[str, ModelConfig, float, int | None, int | None]


def deployment_views(model: ModelConfig) -> list[DeploymentView]:
    """(label, per-deployment ModelConfig, weight, rpm, tpm) for each deployment of ``model``;
    one entry, the model itself, when it lists none. A deployment's unset fields are the
    model's."""
    if not model.deployments:
        return [(IMPLICIT, model, 1.0, None, None)]
    out = []
    for label, d in zip(model.deployment_labels(), model.deployments, strict=True):
        view = model.model_copy(
            update={
                "base_url": d.base_url or model.base_url,
                "api_key_env": d.api_key_env or model.api_key_env,
                "region": d.region or model.region,
                "deployments": [],
            }
        )
        out.append((label, view, d.weight, d.rpm, d.tpm))
    return out


def build_pool(
    model: ModelConfig,
    cooldown: CooldownConfig,
    provider_for: Callable[[ModelConfig], Provider],
    previous: DeploymentPool | None = None,
    *,
    clock: Clock = time.monotonic,
) -> DeploymentPool:
    """The pool for ``model``, its deployments' state carried over from ``previous`` (the same
    model in the configuration a reload replaces) where a deployment is unchanged."""
    old = {d.identity: d for d in previous.deployments} if previous is not None else {}
    deployments = []
    for label, view, weight, rpm, tpm in deployment_views(model):
        d = Deployment(label, view, provider_for(view), weight=weight, rpm=rpm, tpm=tpm)
        before = old.get(d.identity)
        if before is not None:
            if (before.model, before.weight, before.rpm, before.tpm) == (view, weight, rpm, tpm):
                d = before  # unchanged: the same object, so in-flight counts stay exact
            else:
                d.adopt(before)
        deployments.append(d)
    return DeploymentPool(model, deployments, cooldown, clock=clock)
