"""Shared helpers for routing tests: small settings with known prices and abilities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gearshift.config import Settings, parse_settings
from gearshift.routing import build_router
from gearshift.routing.decision import RouterEngine


def make_settings(models: list[dict[str, Any]], router: dict[str, Any]) -> Settings:
    return parse_settings({"models": models, "routers": [router]})


RouterFactory = Callable[..., RouterEngine]


@pytest.fixture
def make_router() -> RouterFactory:
    """``make_router(models, **router_keys)``: build the 'auto' router over ``models``."""

    def factory(cands: list[dict[str, Any]], **router: Any) -> RouterEngine:
        spec: dict[str, Any] = {"name": "auto", "models": [m["name"] for m in cands]}
        spec.update(router)
        settings = make_settings(cands, spec)
        cfg = settings.router("auto")
        assert cfg is not None
        return build_router(settings, cfg)

    return factory


@pytest.fixture
def three_models() -> list[dict[str, Any]]:
    # abilities are given, so predictions depend only on the prompt's difficulty
    return [
        {"name": "small", "ability": 0.5, "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.4}},
        {"name": "medium", "ability": 0.7, "price": {"input_per_mtok": 1, "output_per_mtok": 4}},
        {"name": "large", "ability": 0.9, "price": {"input_per_mtok": 10, "output_per_mtok": 40}},
    ]
