"""Start-up checks of the process environment a configuration needs: every upstream key variable
set, every ``${VAR}`` in headers and query strings defined, proxy settings usable. ``serve`` runs
them before any worker starts and ``reload`` before it swaps, so a missing key is a clear
configuration error, not a failure on the first request."""

from __future__ import annotations

import os

from gearshift.config import ModelConfig, Settings
from gearshift.errors import ConfigError

__all__ = ["check_environment"]


def check_environment(settings: Settings) -> None:
    """Every upstream key variable named (by a model or one of its deployments) is set."""
    missing = [problem for m in settings.models for problem in _missing_keys(m)]
    from gearshift.providers.proxy import environment_problems
    from gearshift.providers.shaping import missing_variables

    for model in settings.models:
        if model.headers or model.query:
            missing += missing_variables(model)
    if any(m.proxy is None for m in settings.models):
        missing += environment_problems()
    if missing:
        raise ConfigError("; ".join(missing))


def _missing_keys(m: ModelConfig) -> list[str]:
    """One message per unset key variable of a model, naming who needs it: the model, or the
    deployments that name their own."""
    needs: dict[str, list[str]] = {m.api_key_env: []} if m.api_key_env else {}
    for label, d in zip(m.deployment_labels(), m.deployments, strict=True):
        if d.api_key_env and d.api_key_env != m.api_key_env:
            needs.setdefault(d.api_key_env, []).append(repr(label))
    out = []
    for env, deployments in needs.items():
        if os.environ.get(env):
            continue
        if not deployments:
            who = f"model {m.name!r} needs its"
        elif len(deployments) == 1:
            who = f"deployment {deployments[0]} of model {m.name!r} needs its"
        else:
            who = f"deployments {', '.join(deployments)} of model {m.name!r} need their"
        out.append(f"{who} API key in environment variable {env}, which is not set")
    return out
