"""Routing: prompt features -> predicted quality per candidate -> decision (with explanation).

Public surface::

    build_router(settings, router_config) -> RouterEngine   # what the gateway/policy/audit call
    router_for_models(["gpt-4o-mini", "gpt-4o"])           # catalogue models, no config
    engine.decide(ChatRequest(...)) -> Decision
    decide_prompt(engine, "text") -> Decision               # a bare prompt string
    estimate_tokens(text) -> int

Importing this package loads numpy and the package's own modules only; training code
(``gearshift.routing.train``) imports scikit-learn lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gearshift.chat import ChatRequest, Message, TextPart
from gearshift.errors import ConfigError, NotFound
from gearshift.routing.decision import Decision, RouterEngine
from gearshift.routing.engine import Router
from gearshift.routing.predictors import Predictor, default_predictor, load_predictor
from gearshift.routing.profiles import ModelProfile, build_profiles
from gearshift.routing.tokens import estimate_request_tokens, estimate_tokens

__all__ = [
    "DEMO_MODELS",
    "Decision",
    "ModelProfile",
    "Predictor",
    "Router",
    "RouterEngine",
    "build_router",
    "decide_prompt",
    "default_predictor",
    "estimate_request_tokens",
    "estimate_tokens",
    "load_predictor",
    "prompt_request",
    "router_for_models",
]

if TYPE_CHECKING:  # pydantic settings are not needed to import the router (import time matters)
    from gearshift.config import ModelConfig, RouterConfig, Settings

DEMO_MODELS = ("gpt-4o-mini", "gpt-4o")


def build_router(
    settings: Settings, router: RouterConfig, *, predictor: Predictor | None = None
) -> Router:
    """Build the engine for one configured router (resolves abilities and prices once);
    ``predictor`` replaces the configured one (a promoted candidate router)."""
    models: list[ModelConfig] = []
    for name in router.models:
        model = settings.model(name)
        if model is None:
            raise NotFound(
                f"router {router.name!r} names unknown model {name!r}; configured models: "
                + (", ".join(m.name for m in settings.models) or "(none)")
            )
        models.append(model)
    profiles = build_profiles(models)
    fallback = None
    if router.fallback is not None:
        fb_model = settings.model(router.fallback)
        if fb_model is None:
            raise NotFound(f"router {router.name!r} has unknown fallback model {router.fallback!r}")
        fallback = (
            next((p for p in profiles if p.name == fb_model.name), None)
            or build_profiles([fb_model])[0]
        )
    if predictor is None:
        predictor = load_predictor(router.predictor)
    predictor.check_models(router.models)
    return Router(
        router.name,
        profiles,
        predictor,
        tolerance=router.quality_tolerance,
        fallback=fallback,
        sticky=router.sticky,
    )


def router_for_models(
    names: Sequence[str] = DEMO_MODELS,
    *,
    tolerance: float = 0.1,
    predictor: str = "default",
    name: str = "demo",
) -> Router:
    """A router over models named like the catalogue (or any name, ordered by what is known)."""
    from gearshift.config import ModelConfig, RouterConfig, Settings

    clean = [n.strip() for n in names if n.strip()]
    if not clean:
        raise ConfigError("give at least one model name")
    settings = Settings(
        models=[ModelConfig(name=n) for n in dict.fromkeys(clean)],
        routers=[
            RouterConfig(
                name=name,
                models=list(dict.fromkeys(clean)),
                quality_tolerance=tolerance,
                predictor=predictor,
                sticky=False,
            )
        ],
    )
    router = settings.router(name)
    assert router is not None
    return build_router(settings, router)


def prompt_request(prompt: str, *, system: str | None = None, model: str = "auto") -> ChatRequest:
    """A one-turn ``ChatRequest`` for a bare prompt string."""
    messages = []
    if system:
        messages.append(Message(role="system", content=[TextPart(system)]))
    messages.append(Message(role="user", content=[TextPart(prompt)]))
    return ChatRequest(model=model, messages=messages)


def decide_prompt(engine: RouterEngine, prompt: str, *, tolerance: float | None = None) -> Decision:
    """The decision for a bare prompt string."""
    return engine.decide(prompt_request(prompt, model=engine.name), tolerance=tolerance)
