"""Targets controller: keeps a router's cost, light-model share and latency targets by moving its
effective quality tolerance, never past ``max_quality_tolerance`` (the quality floor).

It is a pure object: ``advise()`` gives the tolerance and allowed models for the next request,
``observe()`` feeds one finished request (predicted qualities, model served, cost, latency). No
I/O and no clock, so the bench replays a workload through it offline.

How it decides. Over the sliding window of recent requests it replays the decision rule (the
cheapest allowed candidate predicted within ``t`` of the best) at candidate tolerances ``t``,
pricing each model by its observed mean cost scaled to each prompt's size, and takes the smallest
``t`` that meets the cost and light-share targets. That replay is calibrated against what
happened: each request in the window is replayed at the tolerance it was actually served with,
and the ratio of its observed cost to that replay scales every estimate, so a router whose
decisions the simple rule does not reproduce (constraints, stickiness, its own cost model) does
not leave the target missed while the controller believes it met. A slow term corrects the
long-run average for what remains (warm-up, drift). A cost target still missed by more than
``MISS_TOLERANCE`` at the quality floor is reported ``unmet``, never ``ok``. For latency, models
whose observed p80 exceeds the target are left out of the candidates (one request in
``explore_every`` may still use them, so a model that got faster is noticed). Targets that cannot
be met within the floor, or that pull against each other, are reported by ``status()`` and logged
once when the state changes.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gearshift.config import RouterTargets

log = logging.getLogger("gearshift.policy.controller")

# A window averaging this much over the cost target, with the tolerance at its floor, is unmet.
MISS_TOLERANCE = 0.05
# The calibration ratio (observed / replayed cost) is trusted within these bounds.
CALIBRATION_RANGE = (0.2, 5.0)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the controller learns from one finished request."""

    predicted: Mapping[str, float]  # model -> predicted quality (the decision's inputs)
    served: str | None  # model that answered (None: failed before any model answered)
    cost_usd: float
    latency_ms: float | None = None
    tolerance: float | None = None  # the tolerance the decision applied (None: the current one)


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
        self._min_samples = min(min_samples, targets.window_requests)
        self._explore_every = explore_every
        self._gain = integral_gain
        # The window as ring buffers (one row per finished request), so a control step is a few
        # vectorised operations instead of a walk over Python objects.
        size = targets.window_requests
        self._index = {m: i for i, m in enumerate(self.models)}
        self._pred = np.zeros((size, len(self.models)))
        self._cost = np.zeros(size)
        self._lat = np.full(size, np.nan)
        self._served = np.full(size, -1, dtype=np.int64)
        self._tol = np.full(size, self.base)  # tolerance in effect when each request was served
        self._pos = 0
        self._filled = 0
        self._is_light = np.array([m in self.light for m in self.models])
        self._prior_arr = np.array([self._prior.get(m, 0.0) for m in self.models])
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
        self._append(outcome)
        if outcome.served in self._latency and outcome.latency_ms is not None:
            self._latency[outcome.served].append(outcome.latency_ms)
        if outcome.served is not None:
            self._cost_sum = self._cost_sum * self._decay + outcome.cost_usd
            self._count_sum = self._count_sum * self._decay + 1.0
        self._since_recompute += 1
        if self._since_recompute >= self._recompute_every:
            self._since_recompute = 0
            self.recompute()

    def _append(self, outcome: Outcome) -> None:
        row = self._pos
        self._pos = (row + 1) % len(self._cost)
        self._filled = min(self._filled + 1, len(self._cost))
        pred = outcome.predicted
        self._pred[row] = [pred.get(m, 0.0) for m in self.models]
        self._cost[row] = outcome.cost_usd
        self._lat[row] = np.nan if outcome.latency_ms is None else outcome.latency_ms
        self._served[row] = self._index.get(outcome.served, -1) if outcome.served else -1
        self._tol[row] = self._tolerance if outcome.tolerance is None else outcome.tolerance

    def load(
        self,
        outcomes: Sequence[Outcome],
        latency: Mapping[str, Sequence[float]],
        cost_sum: float,
        count_sum: float,
    ) -> None:
        """Replace the window by a shared one (oldest first) and re-decide: how replicas that
        share Redis steer by the same recent traffic."""
        self._served[:] = -1
        self._pos = self._filled = 0
        for outcome in outcomes[-len(self._cost) :]:
            self._append(outcome)
        for m, values in latency.items():
            if m in self._latency:
                self._latency[m].clear()
                self._latency[m].extend(values)
        self._cost_sum, self._count_sum = cost_sum, count_sum
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
        rows = self._served[: self._filled] >= 0
        if int(rows.sum()) < self._min_samples:
            return
        t = self.targets
        messages: list[str] = []
        conflict = False
        served = self._served[: self._filled][rows]
        costs = self._cost[: self._filled][rows]
        pred = self._pred[: self._filled][rows]
        served_at = self._tol[: self._filled][rows]
        lat = self._lat[: self._filled][rows]
        lat = lat[~np.isnan(lat)]
        observed: dict[str, Any] = {
            "requests": len(served),
            "avg_cost_usd": float(costs.mean()),
            "light_share": float(self._is_light[served].mean()),
            "latency_p80_ms": _p80(lat),
        }

        allowed = self._latency_allowed(messages)
        if allowed is not None and t.light_share_min and not (allowed & self.light):
            conflict = True
            messages.append(
                f"conflict: light_share_min {t.light_share_min:.0%} needs "
                f"{'/'.join(sorted(self.light))}, whose p80 latency exceeds latency_p80_ms "
                f"{t.latency_p80_ms:g}; latency wins"
            )

        mean_cost = self._mean_costs(served, costs)
        scale = np.where(mean_cost[served] > 0, costs / np.maximum(mean_cost[served], 1e-18), 1.0)
        cand_cost = scale[:, None] * mean_cost[None, :]
        mask = np.array([allowed is None or m in allowed for m in self.models])
        everyone = np.ones(len(self.models), dtype=bool)
        rows_idx = np.arange(len(served))

        def replay(tol: float | np.ndarray, allow: np.ndarray = mask) -> tuple[float, float]:
            best = np.where(allow[None, :], pred, -np.inf).max(axis=1, keepdims=True)
            ok = allow[None, :] & (pred >= best - np.reshape(tol, (-1, 1)) - 1e-12)
            choice = np.where(ok, cand_cost, np.inf).argmin(axis=1)
            return float(cand_cost[rows_idx, choice].mean()), float(self._is_light[choice].mean())

        # Observed cost over the cost the rule replays for the same requests at the tolerances
        # they were served with: how far the replay is from what the router really does.
        replayed = replay(served_at)[0]
        calibration = float(costs.mean()) / replayed if replayed > 0 else 1.0
        calibration = min(max(calibration, CALIBRATION_RANGE[0]), CALIBRATION_RANGE[1])
        observed["estimate_calibration"] = round(calibration, 4)

        def simulate(tol: float, allow: np.ndarray = mask) -> tuple[float, float]:
            cost, light = replay(tol, allow)
            return cost * calibration, light

        cost_goal = self._cost_goal()
        lo, hi = self.base, t.max_quality_tolerance
        need = lo
        at_floor_cost, at_floor_light = simulate(hi)
        if cost_goal is not None:
            if at_floor_cost > cost_goal:
                need = hi
                catching_up = (
                    f" (${cost_goal:.6f} for now, to make up for earlier overspend)"
                    if t.avg_cost_per_request_usd and cost_goal < 0.999 * t.avg_cost_per_request_usd
                    else ""
                )
                messages.append(
                    f"unmet: avg_cost_per_request_usd {t.avg_cost_per_request_usd:g}{catching_up} "
                    f"needs more than max_quality_tolerance {hi:g} allows "
                    f"(est. ${at_floor_cost:.6f} there)"
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
                f"({'/'.join(sorted(set(self.models) - allowed))}); latency wins"
            )
        target = t.avg_cost_per_request_usd
        if (
            target is not None
            and need >= hi
            and observed["avg_cost_usd"] > target * (1 + MISS_TOLERANCE)
            and not any(m.startswith("unmet: avg_cost") for m in messages)
        ):
            # The estimate says the floor is enough, the traffic says otherwise: say so.
            messages.append(
                f"unmet: avg_cost_per_request_usd {target:g}: the window averages "
                f"${observed['avg_cost_usd']:.6f} with the tolerance at max_quality_tolerance "
                f"{hi:g}"
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

    def _mean_costs(self, served: np.ndarray, costs: np.ndarray) -> np.ndarray:
        """Observed mean cost per model; unobserved models get their prior, rescaled by how the
        observed models compare with theirs."""
        n = len(self.models)
        counts = np.bincount(served, minlength=n)
        sums = np.bincount(served, weights=costs, minlength=n)
        seen = counts >= 3
        means = np.where(seen, sums / np.maximum(counts, 1), 0.0)
        ratio_ok = seen & (self._prior_arr > 0)
        scale = (
            float(np.median(means[ratio_ok] / self._prior_arr[ratio_ok])) if ratio_ok.any() else 1.0
        )
        fallback = np.where(self._prior_arr > 0, self._prior_arr, 1.0) * scale
        out: np.ndarray = np.where(seen, means, fallback)
        return out

    def _latency_allowed(self, messages: list[str]) -> frozenset[str] | None:
        target = self.targets.latency_p80_ms
        if target is None:
            return None
        too_slow = {
            m
            for m, lat in self._latency.items()
            if len(lat) >= max(5, self._min_samples // 3) and (_p80(lat) or 0.0) > target
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


def _p80(values: Any) -> float | None:
    """The 80th percentile (nearest rank), cheaper than np.percentile on small arrays."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return None
    k = min(arr.size - 1, math.ceil(0.8 * arr.size) - 1)
    return float(np.partition(arr, k)[k])


def _smallest(ok: Any, lo: float, hi: float, steps: int = 12) -> float:
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
