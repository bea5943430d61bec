"""``/healthz/live`` and ``/healthz/ready`` for load balancers and orchestrators, and the
deployment gauges of ``/metrics``.

- live: the process answers (200 always; a hung event loop cannot answer at all);
- ready: the ledger is writable (its writer is not spooling after failed writes) and every router
  has at least one candidate model with a deployment that may take a request now (not cooling
  down, or due its probe). 200 when ready, 503 when not; the JSON body names what is down either
  way, so a partly degraded gateway says which upstreams are cooling down while still serving.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from gearshift.analytics.metrics import escape
from gearshift.analytics.metrics_shared import MULTIPROC_ENV
from gearshift.api.http import Request, Response, Routes, json_response

if TYPE_CHECKING:
    from gearshift.api.pipeline import Gateway
    from gearshift.api.snapshot import Snapshot


def register(routes: Routes, gateway: Gateway) -> None:
    async def live(request: Request) -> Response:
        return json_response(200, {"status": "live"})

    async def ready(request: Request) -> Response:
        ok, body = readiness(gateway)
        return json_response(200 if ok else 503, body)

    routes.add("GET", "/healthz/live", live)
    routes.add("GET", "/healthz/ready", ready)
    gateway.metric_sources.append(lambda: deployment_gauges(gateway.snapshot))


def readiness(gateway: Gateway) -> tuple[bool, dict[str, Any]]:
    snap = gateway.snapshot
    problems: list[str] = []
    ledger = gateway.ledger
    if ledger is None:
        ledger_state = "not_open"
        problems.append("the ledger is not open yet")
    elif getattr(ledger, "healthy", True):
        ledger_state = "ok"
    else:
        ledger_state = "spooling"
        problems.append("the ledger database is not accepting writes (rows wait in the spool)")
    if not snap.pools:
        problems.append("the gateway is starting")
    down = [
        {"model": name, **status}
        for name, pool in snap.pools.items()
        for status in pool.status()
        if status["state"] != "up"
    ]
    usable = {name for name, pool in snap.pools.items() if pool.any_usable()}
    routers: dict[str, Any] = {}
    for name, cfg in snap.router_configs.items():
        names = [*cfg.models, *([cfg.fallback] if cfg.fallback else [])]
        ok_models = [m for m in dict.fromkeys(names) if m in usable]
        routers[name] = {"ready": bool(ok_models), "usable_models": ok_models}
        if snap.pools and not ok_models:
            problems.append(f"router {name!r}: no candidate model has a usable deployment")
    if snap.pools and not snap.router_configs and snap.models and not usable:
        problems.append("no model has a usable deployment")
    body: dict[str, Any] = {
        "status": "ready" if not problems else "not_ready",
        "ledger": ledger_state,
        "routers": routers,
        "down": down,
        "config_generation": snap.generation,
    }
    if problems:
        body["problems"] = problems
    return not problems, body


def deployment_gauges(snap: Snapshot) -> str:
    """Per deployment: up (1) or cooling down / probing (0), in-flight attempts, consecutive
    failures, cooldowns and attempts so far, of this process: cooldown state is each worker's
    own. With several workers (``PROMETHEUS_MULTIPROC_DIR`` set, as for the shared counters) a
    scrape reads whichever worker answered, so each series carries that worker's ``pid``: its
    counters then never seem to go down when the next scrape lands on another worker."""
    lines: list[str] = []
    worker = f',pid="{os.getpid()}"' if os.environ.get(MULTIPROC_ENV) else ""
    series: dict[str, list[str]] = {
        "gearshift_deployment_up": [],
        "gearshift_deployment_in_flight": [],
        "gearshift_deployment_consecutive_failures": [],
        "gearshift_deployment_cooldowns_total": [],
        "gearshift_deployment_attempts_total": [],
    }
    for name, pool in snap.pools.items():
        for d in pool.deployments:
            labels = f'model="{escape(name)}",deployment="{escape(d.label)}"{worker}'
            up = 0 if d.cooled_until is not None else 1
            series["gearshift_deployment_up"].append(f"{{{labels}}} {up}")
            series["gearshift_deployment_in_flight"].append(f"{{{labels}}} {d.in_flight}")
            series["gearshift_deployment_consecutive_failures"].append(
                f"{{{labels}}} {d.consecutive_failures}"
            )
            series["gearshift_deployment_cooldowns_total"].append(
                f"{{{labels}}} {d.cooldowns_total}"
            )
            series["gearshift_deployment_attempts_total"] += [
                f'{{{labels},result="ok"}} {d.attempts_ok}',
                f'{{{labels},result="error"}} {d.attempts_failed}',
            ]
    helps = {
        "gearshift_deployment_up": ("gauge", "1 if the deployment takes requests, 0 if cooling."),
        "gearshift_deployment_in_flight": ("gauge", "Upstream attempts in flight."),
        "gearshift_deployment_consecutive_failures": ("gauge", "Failed attempts in a row."),
        "gearshift_deployment_cooldowns_total": ("counter", "Times it was cooled down."),
        "gearshift_deployment_attempts_total": ("counter", "Upstream attempts by result."),
    }
    for metric, samples in series.items():
        kind, help_ = helps[metric]
        lines.append(f"# HELP {metric} {help_}")
        lines.append(f"# TYPE {metric} {kind}")
        lines += [metric + sample for sample in samples]
    return "\n".join(lines) + "\n"
