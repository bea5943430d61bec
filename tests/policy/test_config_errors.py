"""Bad policy configuration fails at startup with a message that says what to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.policy.conftest import free_port_for_test, make_settings, models_config

from gearshift.config import parse_settings
from gearshift.errors import ConfigError
from gearshift.policy import create_policy
from gearshift.policy.engine import GearshiftPolicy


def settings_with(**top: Any) -> dict[str, Any]:
    return {"models": models_config(), **top}


def test_unknown_model_in_a_router() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_settings(settings_with(routers=[{"name": "auto", "models": ["small", "huge"]}]))
    assert "router 'auto' names unknown model(s): huge" in exc.value.message


@pytest.mark.parametrize(
    ("budget", "fragment"),
    [
        ({"name": "b", "limit_usd": -5}, "policy.budgets.0.limit_usd"),
        ({"name": "b", "limit_usd": 0}, "greater than 0"),
        ({"name": "b", "limit_usd": 10, "soft_limit_usd": 20}, "must be below limit_usd"),
        ({"name": "b", "limit_usd": 10, "period": "year"}, "policy.budgets.0.period"),
        ({"name": "b", "limit_usd": 10, "alert_thresholds": [80]}, "fractions of the limit"),
        ({"name": "b", "limit_usd": 10, "max_usd_per_hour": -1}, "max_usd_per_hour"),
    ],
)
def test_bad_budgets(budget: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_settings(settings_with(policy={"budgets": [budget]}))
    assert fragment in exc.value.message


def test_unquoted_scope_values_are_text() -> None:
    policy = yaml.safe_load(
        "budgets: [{name: b, scope: {team: 42, beta: true}, limit_usd: 10}]\n"
        "limits: [{name: r, scope: {since: 2024-10-21}, rpm: 60}]\n"
    )
    settings = parse_settings(settings_with(policy=policy))
    assert settings.policy.budgets[0].scope == {"team": "42", "beta": "true"}
    assert settings.policy.limits[0].scope == {"since": "2024-10-21"}


def test_duplicate_budget_names() -> None:
    b = {"name": "same", "limit_usd": 1}
    with pytest.raises(ConfigError) as exc:
        parse_settings(settings_with(policy={"budgets": [b, b]}))
    assert "budget names must be unique; repeated: same" in exc.value.message


def test_bad_targets() -> None:
    router = {
        "name": "auto",
        "models": ["small", "large"],
        "targets": {"avg_cost_per_request_usd": -0.02, "light_share_min": 1.5},
    }
    with pytest.raises(ConfigError) as exc:
        parse_settings(settings_with(routers=[router]))
    assert "avg_cost_per_request_usd" in exc.value.message
    assert "light_share_min" in exc.value.message


def test_unreachable_redis_is_a_startup_error(tmp_path: Path) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port_for_test()}/0"
    settings = make_settings(tmp_path, redis_url=url)
    with pytest.raises(ConfigError) as exc:
        create_policy(settings)
    assert "policy.redis_url: cannot reach Redis at redis://***@127.0.0.1" in exc.value.message
    assert "hunter2" not in exc.value.message


async def test_unreachable_redis_fails_async_start_too(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port_for_test()}/0"
    policy = GearshiftPolicy(make_settings(tmp_path, redis_url=url))
    with pytest.raises(ConfigError) as exc:
        await policy.start()
    assert "cannot reach Redis" in exc.value.message


def test_budgets_with_several_workers_need_redis(tmp_path: Path) -> None:
    settings = parse_settings(
        {
            "models": models_config(),
            "server": {"workers": 4},
            "storage": f"sqlite:///{tmp_path}/l.db",
            "policy": {"budgets": [{"name": "b", "limit_usd": 5}]},
        }
    )
    with pytest.raises(ConfigError) as exc:
        create_policy(settings)
    assert "set policy.redis_url" in exc.value.message
