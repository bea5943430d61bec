"""The offline half of the loop: train a candidate from the ledger's labels, compare it with the
router serving now on labels neither has seen, and promote or roll back (the CLI commands
``train --from-ledger``, ``eval --candidate``, ``promote`` and ``learn`` call these)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gearshift.chat import ChatRequest, Message, TextPart
from gearshift.errors import ConfigError, NotEnoughLabels
from gearshift.learning.candidate import Candidate, train_candidate
from gearshift.learning.promotion import build_engine
from gearshift.learning.store import active_candidates, fetch_labels, record_promotion

if TYPE_CHECKING:
    from gearshift.config import RouterConfig, Settings
    from gearshift.ledger.store import LedgerStore
    from gearshift.routing.engine import Router
    from gearshift.routing.features import Features

__all__ = [
    "Evaluation",
    "evaluate_candidate",
    "learning_router",
    "promote",
    "require_training_labels",
    "rollback",
    "split_labels",
    "train_from_labels",
]

DAY_S = 86400.0


def learning_router(settings: Settings, name: str | None) -> RouterConfig:
    """The router named, or the only one with ``learning:`` (or the only router)."""
    if name is not None:
        cfg = settings.router(name)
        if cfg is None:
            known = ", ".join(r.name for r in settings.routers) or "(none)"
            raise ConfigError(f"no router {name!r} in the configuration; routers: {known}")
        return cfg
    learning = [r for r in settings.routers if r.learning is not None]
    candidates = learning or list(settings.routers)
    if len(candidates) != 1:
        raise ConfigError("name the router with --router (the configuration has several)")
    return candidates[0]


def split_labels(
    store: LedgerStore, router: str, holdout_days: float, now: float | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(older labels to train on, the most recent ``holdout_days`` to evaluate on)."""
    cut = (now or time.time()) - holdout_days * DAY_S
    rows = fetch_labels(store, router=router)
    return [r for r in rows if r["ts"] < cut], [r for r in rows if r["ts"] >= cut]


def require_training_labels(
    router: str, train: Sequence[object], held: Sequence[object], holdout_days: float
) -> None:
    """Raise ``NotEnoughLabels`` saying why, when ``split_labels`` left nothing to train on."""
    if train:
        return
    if not held:
        raise NotEnoughLabels(
            f"router {router!r} has no labels yet: learning judges a share of the traffic it "
            "serves (learning.sample_rate); run this again once some requests are judged"
        )
    raise NotEnoughLabels(
        f"router {router!r} has no labels older than {holdout_days:g} days yet "
        f"({len(held)} newer label(s) are held out for evaluation): nothing to train on; "
        "run this again later, or lower --holdout-days"
    )


def _request(row: dict[str, Any]) -> ChatRequest:
    messages = [
        Message(role=m["role"], content=[TextPart(str(m.get("content") or ""))])
        for m in row["messages"]
        if m.get("role") in ("system", "user", "assistant", "tool")
    ]
    return ChatRequest(model="auto", messages=messages)


def _features(rows: Sequence[dict[str, Any]]) -> list[Features]:
    from gearshift.routing.features import extract

    return [extract(_request(r)) for r in rows]


def _predicted(engine: Router, features: Sequence[Features]) -> dict[str, np.ndarray]:
    """Model -> (N,) predicted quality, for every candidate model of the router."""
    if not features:  # predictors assume a non-empty batch (an empty one breaks their matmul)
        return {p.name: np.zeros(0) for p in engine.profiles}
    _, q = engine.predictor.predict_many(features, engine.profiles)
    return {p.name: q[:, j] for j, p in enumerate(engine.profiles)}


def train_from_labels(
    settings: Settings, cfg: RouterConfig, rows: Sequence[dict[str, Any]], *, l2: float = 1.0
) -> Candidate:
    """A candidate for router ``cfg``: its configured predictor plus residuals from ``rows``."""
    if not rows:
        raise NotEnoughLabels(f"router {cfg.name!r} has no labels to train on")
    engine: Router = build_engine(settings, cfg, None)  # type: ignore[assignment]
    features = _features(rows)
    predicted = _predicted(engine, features)
    base_q = [
        {m: float(predicted[m][i]) for m in row["scores"] if m in predicted}
        for i, row in enumerate(rows)
    ]
    candidate = train_candidate(rows, features, base_q, base=cfg.predictor, router=cfg.name, l2=l2)
    candidate.meta.update(
        trained_at=time.time(), until=max((float(r["ts"]) for r in rows), default=None)
    )
    return candidate


@dataclass(slots=True)
class Evaluation:
    rows: int
    light: str
    reference: str
    metrics: dict[str, dict[str, float | None]]  # "current" / "candidate" -> metric -> value
    agreement: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "light": self.light,
            "reference": self.reference,
            "agreement": self.agreement,
            **self.metrics,
        }

    def gain(self, metric: str = "pair_apgr") -> float | None:
        cur, cand = self.metrics["current"].get(metric), self.metrics["candidate"].get(metric)
        if cur is None or cand is None:
            return None
        return cand - cur


def _router_metrics(
    predicted: dict[str, np.ndarray],
    light: str,
    reference: str,
    truth: np.ndarray,
    costs: np.ndarray,
    tolerance: float,
) -> tuple[dict[str, float | None], np.ndarray]:
    from gearshift.routing.metrics import (
        apgr,
        cost_at_quality,
        cost_quality_curve,
        pair_curve,
        route_by_tolerance,
    )

    pred = np.stack([predicted[light], predicted[reference]], axis=1)
    rows = np.arange(len(truth))
    chosen = route_by_tolerance(pred, costs, tolerance)
    ref_q, ref_cost = float(truth[:, 1].mean()), float(costs[:, 1].mean())
    _, mean_cost, mean_q = cost_quality_curve(pred, costs, truth)
    at95 = cost_at_quality(mean_cost, mean_q, 0.95 * ref_q)
    gap = pred[:, 1] - pred[:, 0]
    pair = pair_curve(gap, truth[:, 0], truth[:, 1]) if len(truth) >= 2 else None
    value = apgr(pair) if pair is not None else float("nan")
    best = truth.max(axis=1)
    metrics: dict[str, float | None] = {
        "pair_apgr": None if np.isnan(value) else round(value, 4),
        "cost_share_at_95": None if at95 is None or ref_cost <= 0 else round(at95 / ref_cost, 4),
        "reference_share": round(float((chosen == 1).mean()), 4),
        "quality": round(float(truth[rows, chosen].mean()), 4),
        "quality_retained": round(float(truth[rows, chosen].mean()) / ref_q, 4) if ref_q else None,
        "regret": round(float((best - truth[rows, chosen]).mean()), 4),
        "cost_per_request_usd": float(costs[rows, chosen].mean()),
        "savings_vs_reference": round(1 - float(costs[rows, chosen].mean()) / ref_cost, 4)
        if ref_cost > 0
        else None,
    }
    return metrics, chosen


def evaluate_candidate(
    settings: Settings,
    cfg: RouterConfig,
    rows: Sequence[dict[str, Any]],
    candidate_json: str | None,
    current_json: str | None,
) -> Evaluation:
    """Current router (configured predictor, or ``current_json`` promoted on top) against the
    candidate on labelled ``rows`` neither trained on. Rows must score the light model that
    served and the reference (as judged samples do)."""
    current: Router = build_engine(settings, cfg, current_json)  # type: ignore[assignment]
    candidate: Router = build_engine(settings, cfg, candidate_json)  # type: ignore[assignment]
    reference = (
        cfg.learning.reference if cfg.learning and cfg.learning.reference else None
    ) or current.most_capable
    usable = [r for r in rows if reference in r["scores"] and len(r["scores"]) >= 2]
    if not usable:
        raise NotEnoughLabels(
            f"no held-out labels of router {cfg.name!r} score the reference {reference!r}: "
            "judge more samples or hold out more days"
        )
    lights = [next(m for m in r["scores"] if m != reference) for r in usable]
    light = max(set(lights), key=lights.count)
    usable = [r for r, m in zip(usable, lights, strict=True) if m == light]
    features = _features(usable)
    truth = np.asarray([[r["scores"][light], r["scores"][reference]] for r in usable])
    profiles = {p.name: p for p in current.profiles}
    tokens = [(r.get("costs") or {}) for r in usable]

    def cost(i: int, model: str) -> float:
        known = tokens[i].get(model)
        if known is not None:
            return float(known)
        p = profiles[model]
        return p.expected_cost(500, 400)

    costs = np.asarray([[cost(i, light), cost(i, reference)] for i in range(len(usable))])
    tolerance = cfg.quality_tolerance
    cur_m, cur_choice = _router_metrics(
        _predicted(current, features), light, reference, truth, costs, tolerance
    )
    cand_m, cand_choice = _router_metrics(
        _predicted(candidate, features), light, reference, truth, costs, tolerance
    )
    return Evaluation(
        rows=len(usable),
        light=light,
        reference=reference,
        metrics={"current": cur_m, "candidate": cand_m},
        agreement=round(float((cur_choice == cand_choice).mean()), 4),
    )


def current_candidate(store: LedgerStore, router: str) -> str | None:
    return active_candidates(store).get(router)


def promote(
    store: LedgerStore,
    router: str,
    candidate_json: str,
    evaluation: dict[str, Any] | None,
    note: str | None = None,
) -> None:
    Candidate.from_json(candidate_json)  # refuse what a gateway could not load
    record_promotion(store, router, "promote", candidate_json, evaluation, note)


def rollback(store: LedgerStore, router: str) -> str | None:
    """Back to what served before the latest promotion; returns that candidate (None: the
    configured predictor)."""
    from gearshift.learning.store import promotion_history

    history = promotion_history(store, router)
    if not history:
        raise ConfigError(f"router {router!r} has never been promoted: nothing to roll back")
    # Walk back over rollbacks: each undoes the promotion before it.
    states: list[str | None] = [None]
    for row in history:
        if row["action"] == "promote":
            states.append(row["candidate"])
        elif row["action"] == "rollback" and len(states) > 1:
            states.pop()
    if len(states) < 2:
        raise ConfigError(f"router {router!r} already serves its configured predictor")
    previous = states[-2]
    record_promotion(store, router, "rollback", previous, None, "gearshift promote --rollback")
    return previous
