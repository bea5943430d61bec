"""Policy gauges for ``/metrics``: each targets controller's state, tolerance and window, and
spend against each budget, in Prometheus text format."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gearshift.policy.engine import GearshiftPolicy


_STATES = ("warming_up", "ok", "unmet", "conflict")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _gauge(out: list[str], name: str, help_: str, rows: list[tuple[str, float]]) -> None:
    if not rows:
        return
    out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
    out += [f"{name}{{{labels}}} {value:g}" for labels, value in rows]


async def prometheus_text(policy: GearshiftPolicy) -> str:
    """Controller and budget gauges in Prometheus text format, for ``/metrics``."""
    out: list[str] = []
    statuses = policy.controllers_status()
    tol, state, cost, share, p80 = [], [], [], [], []
    for s in statuses:
        r = f'router="{_label(s["router"])}"'
        tol.append((r, s["effective_tolerance"]))
        state += [(f'{r},state="{st}"', 1.0 if s["state"] == st else 0.0) for st in _STATES]
        window = s["window"]
        if window:
            cost.append((r, window["avg_cost_usd"]))
            share.append((r, window["light_share"]))
            if window["latency_p80_ms"] is not None:
                p80.append((r, window["latency_p80_ms"] / 1000))
    _gauge(out, "gearshift_controller_tolerance", "Effective quality tolerance.", tol)
    _gauge(out, "gearshift_controller_state", "Targets controller state (1 = current).", state)
    _gauge(out, "gearshift_controller_window_avg_cost_usd", "Window avg cost per request.", cost)
    _gauge(out, "gearshift_controller_window_light_share", "Window share on light models.", share)
    _gauge(out, "gearshift_controller_window_latency_p80_seconds", "Window p80 latency.", p80)
    budgets = await policy.budgets_status()
    spent = [(f'budget="{_label(b["budget"])}"', b["spent_usd"]) for b in budgets]
    limit = [(f'budget="{_label(b["budget"])}"', b["limit_usd"]) for b in budgets]
    _gauge(out, "gearshift_budget_spent_usd", "Spent (and reserved) this period.", spent)
    _gauge(out, "gearshift_budget_limit_usd", "Hard limit of the budget.", limit)
    return "\n".join(out) + ("\n" if out else "")
