"""Live configuration: ``SIGHUP`` (or ``gearshift reload --config FILE``, which sends it) makes a
running gateway re-read its configuration file and swap it in without a restart.

The file is validated exactly as at start-up (``load_settings``, every upstream key variable set,
policy constraints); a bad file is refused with the same message and the running configuration
stays. A good one replaces models, routers, deployments, prices, cooldowns, budgets and rate
limits in one step (``Gateway.reload``: one new snapshot, one assignment); requests already running
finish on the snapshot they started with. ``storage``, ``server``, ``telemetry`` and routers'
``cache`` settings need a restart: a reload that changes them applies the rest and says so. It
compares them with what the process runs: the settings it started with, with ``gearshift serve``'s
``--host`` / ``--port`` / ``--workers`` in place of the file's (they win over the file on a
restart too), not with the file's previous version.

``gearshift serve`` writes its PID to ``runtime_path(config, ".pid")``; after each reload attempt
a process writes its verdict to ``runtime_path(config, f".reload.{pid}.json")`` (and a supervisor
of several workers to ``.reload.json``, naming the workers it forwarded the signal to), which
``gearshift reload`` waits for and prints.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.config import Settings, load_settings
from gearshift.errors import GearshiftError

if TYPE_CHECKING:
    from gearshift.api.pipeline import Gateway

log = logging.getLogger("gearshift.reload")


def runtime_path(config: str | os.PathLike[str], suffix: str) -> Path:
    """Where a server started with ``config`` keeps its PID and reload verdicts: one name per
    configuration file (by its absolute path), in the temporary directory."""
    digest = hashlib.sha256(os.path.abspath(config).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"gearshift-{digest}{suffix}"


# JSON of the server settings `gearshift serve` took from its command line; set by serve for
# itself and inherited by its workers
SERVE_FLAGS_ENV = "GEARSHIFT_SERVE_FLAGS"


def serve_flags() -> dict[str, Any]:
    """``gearshift serve``'s ``--host`` / ``--port`` / ``--workers`` in this process (only those
    given), which win over the file's ``server:`` block."""
    try:
        flags = json.loads(os.environ.get(SERVE_FLAGS_ENV) or "{}")
    except ValueError:
        return {}
    return flags if isinstance(flags, dict) else {}


def as_served(settings: Settings, flags: dict[str, Any]) -> Settings:
    """``settings`` with ``serve``'s command-line server options in place of the file's."""
    if not flags:
        return settings
    return settings.model_copy(update={"server": settings.server.model_copy(update=flags)})


def validate_file(path: str | os.PathLike[str]) -> Settings:
    """Everything start-up checks that does not need the server's own state: the file parses and
    validates, and the policy it sets could start (Redis reachable, workers vs. shared counters).
    Raises ``ConfigError`` with the start-up message."""
    settings = load_settings(path)
    from gearshift.policy import create_policy

    create_policy(settings)  # raises for what the policy could not run with
    return settings


def restart_only_changes(old: Settings, new: Settings) -> list[str]:
    """Settings a reload cannot apply (the ledger and the HTTP server are opened once)."""
    changed = []
    if old.storage != new.storage:
        changed.append("storage")
    for name in type(new.server).model_fields:
        if getattr(old.server, name) != getattr(new.server, name):
            changed.append(f"server.{name}")
    if old.telemetry != new.telemetry:
        changed.append("telemetry")  # the tracer is built once
    caches_before = {r.name: r.cache for r in old.routers}
    caches_after = {r.name: r.cache for r in new.routers if r.cache is not None}
    if any(caches_before.get(name) != cache for name, cache in caches_after.items()):
        changed.append("routers[].cache")  # response caches are built once
    return changed


async def reload_gateway(
    gateway: Gateway, path: str | os.PathLike[str], started_with: Settings | None = None
) -> dict[str, Any]:
    """Re-read ``path`` and swap it into ``gateway``; never raises. Returns (and logs, and
    writes for ``gearshift reload``) the verdict. ``started_with``: the settings the process
    started with (what its server, ledger and tracer run on; default the gateway's current)."""
    started = time.time()
    verdict: dict[str, Any] = {"pid": os.getpid(), "at": started, "config": str(path)}
    flags = serve_flags()
    running = as_served(started_with or gateway.settings, flags)
    try:
        settings = await asyncio.to_thread(validate_file, path)
        snap = await gateway.reload(settings)
    except GearshiftError as exc:
        verdict.update(ok=False, error=exc.message)
        log.error("reload refused, the running configuration stays: %s", exc.message)
    except Exception as exc:  # a bug of ours must not take the running gateway down
        verdict.update(ok=False, error=f"internal error: {exc.__class__.__name__}: {exc}")
        log.exception("reload failed, the running configuration stays")
    else:
        pending = restart_only_changes(running, as_served(settings, flags))
        verdict.update(ok=True, generation=snap.generation, needs_restart=pending)
        log.info(
            "configuration reloaded from %s (generation %d): %d models, %d routers%s",
            path,
            snap.generation,
            len(snap.models),
            len(snap.routers),
            f"; restart to apply {', '.join(pending)}" if pending else "",
        )
    write_verdict(runtime_path(path, f".reload.{os.getpid()}.json"), verdict)
    return verdict


def write_verdict(path: Path, verdict: dict[str, Any]) -> None:
    """Atomically (write, then rename), so a reader never sees half a verdict."""
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(verdict), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        log.warning("could not write the reload verdict to %s: %s", path, exc)


def read_verdict(path: Path, since: float) -> dict[str, Any] | None:
    """The verdict at ``path`` if written at or after ``since``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or float(data.get("at", 0)) < since:
        return None
    return data
