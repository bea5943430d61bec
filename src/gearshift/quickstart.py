"""Default routers from the environment: what ``gearshift serve`` runs without ``--config`` and what
``gearshift init`` writes down.

Each provider family whose standard credentials are set gets one router over the family's current
light, middle and frontier models (``catalogue.current_models``), named like Bedrock's own default
prompt routers are per family: ``openai-auto``, ``anthropic-auto``, ``bedrock-nova-auto``,
``bedrock-anthropic-auto``, ``bedrock-meta-auto``. Only the environment is read (no AWS metadata
endpoint, no network): the variables are the ones each vendor's own SDK reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gearshift.catalogue import current_models
from gearshift.config import ProviderKind, Settings, parse_settings
from gearshift.errors import ConfigError

__all__ = [
    "DEFAULT_TOLERANCE",
    "FAMILIES",
    "NO_CREDENTIALS",
    "WHAT_TO_SET",
    "Found",
    "bedrock_default_router",
    "default_config",
    "default_settings",
    "detect",
    "startup_lines",
]

# Bedrock's own default routers trade at most this much predicted quality for cost; so do ours.
DEFAULT_TOLERANCE = 0.1
DEFAULT_STORAGE = "sqlite:///./gearshift.db"

WHAT_TO_SET = (
    "set OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server), ANTHROPIC_API_KEY, or AWS "
    "credentials (AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, AWS_PROFILE or "
    "AWS_BEARER_TOKEN_BEDROCK) with AWS_REGION"
)
NO_CREDENTIALS = (
    f"no --config and no provider credentials in the environment: {WHAT_TO_SET}; "
    "or pass --config FILE (`gearshift init` writes one)"
)

# Any of these means the AWS SDK's credential chain has something to work with (read from the
# environment only: probing the instance-metadata endpoint at startup is network we do not make).
_AWS_CREDENTIALS = (
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ("AWS_PROFILE",),
    ("AWS_BEARER_TOKEN_BEDROCK",),
    ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"),
    ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",),
    ("AWS_CONTAINER_CREDENTIALS_FULL_URI",),
)
BEDROCK_API_KEY_ENV = "AWS_BEARER_TOKEN_BEDROCK"


@dataclass(frozen=True, slots=True)
class Family:
    router: str  # router name
    provider: ProviderKind
    catalogue_family: str
    bedrock_router_id: str | None = None  # family in Bedrock's default-prompt-router ARN
    prefix: str = ""  # model-name prefix, so one family on two providers never clashes
    us_only: bool = False  # served by Bedrock in US regions only (Llama 4)


FAMILIES: tuple[Family, ...] = (
    Family("openai-auto", "openai", "openai-gpt"),
    Family("anthropic-auto", "anthropic", "claude"),
    Family("bedrock-nova-auto", "bedrock", "nova", "amazon.nova", "bedrock/"),
    Family("bedrock-anthropic-auto", "bedrock", "claude", "anthropic.claude", "bedrock/"),
    Family("bedrock-meta-auto", "bedrock", "llama", "meta.llama", "bedrock/", us_only=True),
)

# Bedrock model ids (served through the geography's cross-region inference profile, which the
# newer models require) and Bedrock's on-demand prices, USD per million input / output tokens:
# genai-prices does not know Bedrock ids, and Llama is priced differently there than elsewhere.
BEDROCK_MODELS: dict[str, tuple[str, float, float]] = {
    "nova-lite": ("amazon.nova-lite-v1:0", 0.06, 0.24),
    "nova-pro": ("amazon.nova-pro-v1:0", 0.8, 3.2),
    "nova-premier": ("amazon.nova-premier-v1:0", 2.5, 12.5),
    "claude-haiku-4-5": ("anthropic.claude-haiku-4-5-20251001-v1:0", 1.0, 5.0),
    "claude-sonnet-4-5": ("anthropic.claude-sonnet-4-5-20250929-v1:0", 3.0, 15.0),
    "claude-opus-4-5": ("anthropic.claude-opus-4-5-20251101-v1:0", 5.0, 25.0),
    "llama-4-scout": ("meta.llama4-scout-17b-instruct-v1:0", 0.17, 0.66),
    "llama-4-maverick": ("meta.llama4-maverick-17b-instruct-v1:0", 0.24, 0.97),
    "llama-3.1-405b": ("meta.llama3-1-405b-instruct-v1:0", 2.4, 2.4),
}

_DEFAULT_ROUTER_ARN = re.compile(
    r"^arn:aws[\w-]*:bedrock:[^:]*:\d*:default-prompt-router/(.+):\d+$"
)


@dataclass(frozen=True, slots=True)
class Found:
    """A provider whose credentials are in the environment (or that was named on the command
    line), with where to reach it."""

    provider: ProviderKind
    evidence: tuple[str, ...]  # variables that were set, for the startup log
    base_url: str | None = None
    api_key_env: str | None = None
    region: str | None = None


def detect(env: Mapping[str, str] | None = None) -> list[Found]:
    """Providers whose standard credentials are set, in the order OpenAI, Anthropic, Bedrock."""
    env = os.environ if env is None else env
    found: list[Found] = []
    keyed: tuple[tuple[ProviderKind, str, str], ...] = (
        ("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
        ("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    )
    for provider, key_env, url_env in keyed:
        if env.get(key_env):
            base_url = env.get(url_env) or None
            evidence = (key_env, url_env) if base_url else (key_env,)
            found.append(Found(provider, evidence, base_url, key_env))
    aws = next((group for group in _AWS_CREDENTIALS if all(env.get(v) for v in group)), None)
    region_env = next((v for v in ("AWS_REGION", "AWS_DEFAULT_REGION") if env.get(v)), None)
    if aws is not None and region_env is not None:
        endpoint_env = next(
            (v for v in ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL") if env.get(v)),
            None,
        )
        evidence = (*aws, region_env, *((endpoint_env,) if endpoint_env else ()))
        found.append(
            Found(
                "bedrock",
                evidence,
                base_url=env[endpoint_env] if endpoint_env else None,
                api_key_env=BEDROCK_API_KEY_ENV if aws == (BEDROCK_API_KEY_ENV,) else None,
                region=env[region_env],
            )
        )
    return found


def inference_profile_prefix(region: str) -> str:
    """Geography of a region's cross-region inference profiles (``us.``, ``eu.``, ``apac.``)."""
    for start, geo in (("us-gov-", "us-gov"), ("us-", "us"), ("eu-", "eu"), ("ap-", "apac")):
        if region.startswith(start):
            return geo
    return "us"


def default_config(found: Sequence[Found]) -> dict[str, Any]:
    """The configuration (as YAML would hold it) of the default routers for these providers."""
    models: list[dict[str, Any]] = []
    routers: list[dict[str, Any]] = []
    for where in found:
        for family in FAMILIES:
            if family.provider != where.provider:
                continue
            if family.us_only and inference_profile_prefix(where.region or "") != "us":
                continue
            names = []
            for entry in current_models(family.catalogue_family):
                model = _model(family, entry.name, entry.tier, where)
                models.append(model)
                names.append(model["name"])
            routers.append(
                {
                    "name": family.router,
                    "models": names,
                    "quality_tolerance": DEFAULT_TOLERANCE,
                    "fallback": names[-1],  # the family's most capable model
                }
            )
    return {"models": models, "routers": routers, "storage": DEFAULT_STORAGE}


def _model(family: Family, name: str, tier: int, where: Found) -> dict[str, Any]:
    model: dict[str, Any] = {"name": family.prefix + name, "provider": family.provider}
    if family.provider == "bedrock":
        upstream, input_price, output_price = BEDROCK_MODELS[name]
        model["model"] = f"{inference_profile_prefix(where.region or '')}.{upstream}"
        model["region"] = where.region
        model["price"] = {"input_per_mtok": input_price, "output_per_mtok": output_price}
    if where.base_url:
        model["base_url"] = where.base_url
    if where.api_key_env:
        model["api_key_env"] = where.api_key_env
    model["tier"] = tier
    return model


def default_settings(env: Mapping[str, str] | None = None) -> tuple[Settings, list[Found]]:
    """Settings of the default routers for the providers in the environment (ConfigError with
    what to set when there are none)."""
    found = detect(env)
    if not found:
        raise ConfigError(NO_CREDENTIALS)
    return parse_settings(default_config(found), source="the environment"), found


def startup_lines(settings: Settings, found: Sequence[Found]) -> list[str]:
    """What ``serve`` made of the environment: every router with its models, and the ledger."""
    seen = ", ".join(v for f in found for v in f.evidence)
    lines = [f"no --config: default routers from the environment ({seen})"]
    for router in settings.routers:
        models = [settings.model(n) for n in router.models]
        listed = ", ".join(f"{m.name} ({m.upstream_model})" for m in models if m is not None)
        lines.append(
            f"  router {router.name}: {listed}; tolerance {router.quality_tolerance:g}, "
            f"fallback {router.fallback}"
        )
    lines.append(f"ledger: {ledger_path(settings.storage)}")
    return lines


def ledger_path(storage: str) -> str:
    """The ledger's file for a SQLite URL (absolute, so the log says where it is), else the URL."""
    prefix = "sqlite:///"
    if storage.startswith(prefix):
        return str(Path(storage[len(prefix) :]).resolve())
    return storage


def bedrock_default_router(model_id: str, routers: Mapping[str, Any]) -> str | None:
    """The router standing in for Bedrock's default prompt router named by this ARN
    (``arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1``), when
    one is configured."""
    match = _DEFAULT_ROUTER_ARN.match(model_id)
    if match is None:
        return None
    for family in FAMILIES:
        if family.bedrock_router_id == match[1] and family.router in routers:
            return family.router
    return None
