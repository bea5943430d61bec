"""Targets controller: keeps a router's cost, light-model share and latency targets by moving its
effective quality tolerance, never past ``max_quality_tolerance`` (the quality floor).

It is a pure object: ``advise()`` gives the tolerance and allowed models for the next request,
``observe()`` feeds one finished request (predicted qualities, model served, cost, latency). No
I/O and no clock, so the bench replays a workload through it offline.

How it decides. Over the sliding window of recent requests it replays the decision rule (the
cheapest allowed candidate predicted within ``t`` of the best) at candidate tolerances ``t``,
pricing each model by its observed mean cost scaled to each prompt's size, and takes the smallest
``t`` that meets the cost and light-share targets; a slow integral term corrects the long-run
average for what the estimate missed (warm-up, drift). For latency, models whose observed p80
exceeds the target are left out of the candidates (one request in ``explore_every`` may still use
them, so a model that got faster is noticed). Targets that cannot be met within the floor, or that
pull against each other, are reported by ``status()`` and logged once when the state changes.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gearshift.config import RouterTargets

log = logging.getLogger("gearshift.policy.controller")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the controller learns from one finished request."""

    predicted: Mapping[str, float]  # model -> predicted quality (the decision's inputs)
    served: str | None  # model that answered (None: failed before any model answered)
    cost_usd: float
    latency_ms: float | None = None


@dataclass(slots=True)
class Advice:
    tolerance: float
    allowed: frozenset[str] | None  # None = every candidate
    notes: list[str] = field(default_factory=list)


class TargetsController:
    def __init__(
        self,
        router: str,
        models: Collection[str],
        base_tolerance: float,
        targets: RouterTargets,
        *,
        light: Collection[str],
        prior_cost: Mapping[str, float],
        recompute_every: int = 20,
        min_samples: int = 30,
        explore_every: int = 50,
        integral_gain: float = 0.5,
    ) -> None:
        self.router = router
        self.models = tuple(models)
        self.base = min(base_tolerance, targets.max_quality_tolerance)
        self.targets = targets
        self.light = frozenset(light)
        self._prior = dict(prior_cost)
        self._recompute_every = recompute_every
        self._min_samples = min_samples
        self._explore_every = explore_every
        self._gain = integral_gain
        self._window: deque[Outcome] = deque(maxlen=targets.window_requests)
        # Latency per model kept apart from the window: an excluded model is seldom served, and
        # its few exploration samples must not be diluted away (which would re-admit it).
        self._latency: dict[str, deque[float]] = {
            m: deque(maxlen=max(20, targets.window_requests // 5)) for m in self.models
        }
        self._since_recompute = 0
        self._recomputes = 0
        self._advised = 0
        # Long-run cost memory for the integral term: decayed sums, half-life ~10 windows.
        self._decay = 0.5 ** (1.0 / (10 * targets.window_requests))
        self._cost_sum = 0.0
        self._count_sum = 0.0
        self._tolerance = self.base
        self._allowed: frozenset[str] | None = None
        self._state = "warming_up"
        self._messages: list[str] = []
        self._observed: dict[str, Any] = {}

    # ---- per request ---------------------------------------------------------------------------

    def advise(self) -> Advice:
        self._advised += 1
        allowed = self._allowed
        if allowed is not None and self._advised % self._explore_every == 0:
            allowed = None  # exploration: let excluded models be measured again
        notes = []
        if self._tolerance != self.base:
            notes.append(f"targets controller: tolerance {self._tolerance:.3f}")
        if allowed is not None:
            notes.append("targets controller: latency allows " + ",".join(sorted(allowed)))
        return Advice(self._tolerance, allowed, notes)

    def observe(self, outcome: Outcome) -> None:
        self._window.append(outcome)
        if outcome.served in self._latency and outcome.latency_ms is not None:
            self._latency[outcome.served].append(outcome.latency_ms)
        if outcome.served is not None:
            self._cost_sum = self._cost_sum * self._decay + outcome.cost_usd
            self._count_sum = self._count_sum * self._decay + 1.0
        self._since_recompute += 1
        if self._since_recompute >= self._recompute_every:
            self._since_recompute = 0
            self.recompute()

    # ---- status ---------------------------------------------------------------------------------

    @property
    def tolerance(self) -> float:
        return self._tolerance

    def status(self) -> dict[str, Any]:
        return {
            "router": self.router,
            "state": self._state,  # warming_up | ok | unmet | conflict
            "effective_tolerance": round(self._tolerance, 4),
            "base_tolerance": self.base,
            "max_quality_tolerance": self.targets.max_quality_tolerance,
            "latency_allowed": sorted(self._allowed) if self._allowed is not None else None,
            "messages": list(self._messages),
            "window": dict(self._observed),
        }

    # ---- the control step ----------------------------------------------------------------------

    def recompute(self) -> None:
        served = [o for o in self._window if o.served is not None]
        if len(served) < self._min_samples:
            return
        t = self.targets
        messages: list[str] = []
        conflict = False
        mean_cost = self._mean_costs(served)
        costs = np.array([o.cost_usd for o in served])
        latencies = [o.latency_ms for o in served if o.latency_ms is not None]
        observed: dict[str, Any] = {
            "requests": len(served),
            "avg_cost_usd": float(costs.mean()),
            "light_share": sum(o.served in self.light for o in served) / len(served),
            "latency_p80_ms": _p80(latencies),
        }

        allowed = self._latency_allowed(messages)
        if allowed is not None and t.light_share_min and not (allowed & self.light):
            conflict = True
            messages.append(
                f"conflict: light_share_min {t.light_share_min:.0%} needs "
                f"{'/'.join(sorted(self.light))}, whose p80 latency exceeds latency_p80_ms "
                f"{t.latency_p80_ms:g}; latency wins"
            )

        pred, scale, names = self._matrices(served, mean_cost)
        cand_cost = scale[:, None] * np.array([mean_cost[m] for m in names])[None, :]
        mask = np.array([allowed is None or m in allowed for m in names])
        is_light = np.array([m in self.light for m in names])

        everyone = np.ones(len(names), dtype=bool)

        def simulate(tol: float, allow: np.ndarray = mask) -> tuple[float, float]:
            best = np.where(allow[None, :], pred, -np.inf).max(axis=1, keepdims=True)
            ok = allow[None, :] & (pred >= best - tol - 1e-12)
            choice = np.where(ok, cand_cost, np.inf).argmin(axis=1)
            rows = np.arange(len(choice))
            return float(cand_cost[rows, choice].mean()), float(is_light[choice].mean())

        cost_goal = self._cost_goal()
        lo, hi = self.base, t.max_quality_tolerance
        need = lo
        at_floor_cost, at_floor_light = simulate(hi)
        if cost_goal is not None:
            if at_floor_cost > cost_goal:
                need = hi
                messages.append(
                    f"unmet: avg_cost_per_request_usd {t.avg_cost_per_request_usd:g} needs more "
                    f"than max_quality_tolerance {hi:g} allows (est. ${at_floor_cost:.6f})"
                )
            else:
                need = max(need, _smallest(lambda x: simulate(x)[0] <= cost_goal, lo, hi))
        if t.light_share_min is not None:
            if at_floor_light < t.light_share_min:
                need = hi
                messages.append(
                    f"unmet: light_share_min {t.light_share_min:.0%} needs more than "
                    f"max_quality_tolerance {hi:g} allows (est. {at_floor_light:.0%})"
                )
            else:
                share_min = t.light_share_min
                need = max(need, _smallest(lambda x: simulate(x)[1] >= share_min, lo, hi))
        if (
            allowed is not None
            and cost_goal is not None
            and at_floor_cost > cost_goal >= simulate(hi, everyone)[0]
        ):
            conflict = True
            messages.append(
                "conflict: avg_cost_per_request_usd needs models that latency_p80_ms excludes "
                f"({'/'.join(sorted(set(names) - allowed))}); latency wins"
            )
        self._tolerance = need
        self._allowed = allowed
        observed["cost_goal_usd"] = cost_goal
        self._observed = observed
        state = "conflict" if conflict else ("unmet" if messages else "ok")
        self._recomputes += 1
        # Log when the state changes, and every 100 control steps while a target is missed.
        if state != self._state or (state != "ok" and self._recomputes % 100 == 0):
            level = logging.INFO if state == "ok" else logging.WARNING
            log.log(level, "router %s targets %s: %s", self.router, state, "; ".join(messages))
        self._state = state
        self._messages = messages

    def _cost_goal(self) -> float | None:
        """The window's cost goal, nudged so the long-run average comes back to the target."""
        target = self.targets.avg_cost_per_request_usd
        if target is None:
            return None
        if self._count_sum <= 0:
            return target
        long_run = self._cost_sum / self._count_sum
        correction = self._gain * (target - long_run) / target
        return target * (1.0 + max(-0.5, min(0.5, correction)))

    def _mean_costs(self, served: list[Outcome]) -> dict[str, float]:
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for o in served:
            assert o.served is not None
            sums[o.served] = sums.get(o.served, 0.0) + o.cost_usd
            counts[o.served] = counts.get(o.served, 0) + 1
        observed = {m: sums[m] / counts[m] for m in sums if counts[m] >= 3}
        # Unobserved models: their prior, rescaled by how observed models compare to theirs.
        ratios = [observed[m] / self._prior[m] for m in observed if self._prior.get(m)]
        scale = float(np.median(ratios)) if ratios else 1.0
        out = {}
        for m in self.models:
            out[m] = observed.get(m, self._prior.get(m, 1.0) * scale)
        return out

    def _matrices(
        self, served: list[Outcome], mean_cost: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        names = self.models
        pred = np.array([[o.predicted.get(m, 0.0) for m in names] for o in served])
        scale = np.array(
            [
                o.cost_usd / mean_cost[o.served] if o.served and mean_cost.get(o.served) else 1.0
                for o in served
            ]
        )
        return pred, scale, names

    def _latency_allowed(self, messages: list[str]) -> frozenset[str] | None:
        target = self.targets.latency_p80_ms
        if target is None:
            return None
        too_slow = {
            m
            for m, lat in self._latency.items()
            if len(lat) >= max(5, self._min_samples // 3) and (_p80(list(lat)) or 0) > target
        }
        if not too_slow:
            return None
        fits = frozenset(self.models) - too_slow
        if not fits:
            messages.append(
                f"unmet: latency_p80_ms {target:g}: no candidate's observed p80 fits "
                "(serving all candidates)"
            )
            return None
        return fits


def _p80(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.8 * len(ordered)) - 1)]


def _smallest(ok: Any, lo: float, hi: float, steps: int = 18) -> float:
    """Smallest tolerance in [lo, hi] for which ``ok`` holds (ok is monotone in tolerance)."""
    if ok(lo):
        return lo
    for _ in range(steps):
        mid = (lo + hi) / 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi
