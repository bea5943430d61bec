"""``gearshift init [--openai] [--anthropic] [--bedrock [--region R]] [--out FILE] [--force]``.

Writes an annotated ``gearshift.yaml`` with the default routers (quickstart.py) for the providers
whose credentials are in the environment, or for those named by flag; every other setting is a
comment showing its default. The file is validated before it is written.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from gearshift.config import ProviderKind, parse_settings
from gearshift.config_template import render_settings
from gearshift.errors import ConfigError
from gearshift.quickstart import (
    BEDROCK_API_KEY_ENV,
    WHAT_TO_SET,
    Found,
    default_config,
    detect,
)

PROVIDER_FLAGS: tuple[ProviderKind, ...] = ("openai", "anthropic", "bedrock")
DEFAULT_REGION = "us-east-1"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gearshift init",
        description="Write an annotated gearshift.yaml with default routers for your providers.",
    )
    for provider in PROVIDER_FLAGS:
        parser.add_argument(
            f"--{provider}",
            action="store_true",
            help=f"include {provider} (default: every provider whose credentials are set)",
        )
    parser.add_argument(
        "--region", help=f"AWS region for bedrock (default: AWS_REGION, else {DEFAULT_REGION})"
    )
    parser.add_argument("--out", default="gearshift.yaml", help="file to write (gearshift.yaml)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    return parser


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    named = [p for p in PROVIDER_FLAGS if getattr(args, p)]
    found = providers(named, os.environ, region=args.region)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it")
    config = default_config(found)
    text = render_settings(config, header(found, out))
    # What is written must load exactly as what was meant: validated, then compared.
    loaded = parse_settings(yaml.safe_load(text), source=str(out))
    if loaded != parse_settings(config):
        raise AssertionError("the annotated YAML does not load as the configuration it describes")
    out.write_text(text, encoding="utf-8")
    routers = ", ".join(f"{r.name} ({len(r.models)} models)" for r in loaded.routers)
    print(f"wrote {out}: {routers}")
    print(f"run it with: gearshift serve --config {out}")
    return 0


def providers(
    named: Sequence[ProviderKind], env: Mapping[str, str], *, region: str | None = None
) -> list[Found]:
    """The providers found in ``env``, or the ``named`` ones (found or not: their variables
    are then the standard ones, for the user to set before ``serve``)."""
    found = {f.provider: f for f in detect(env)}
    if not named:
        if not found:
            raise ConfigError(
                f"no provider credentials in the environment: {WHAT_TO_SET}; "
                "or name the providers: gearshift init --openai --anthropic --bedrock"
            )
        named = list(found)
    chosen = []
    for provider in named:
        if provider in found and not (provider == "bedrock" and region):
            chosen.append(found[provider])
        elif provider == "bedrock":
            aws_region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
            bearer = BEDROCK_API_KEY_ENV if env.get(BEDROCK_API_KEY_ENV) else None
            base_url = env.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") or env.get("AWS_ENDPOINT_URL")
            chosen.append(Found("bedrock", (), base_url, bearer, aws_region or DEFAULT_REGION))
        else:
            prefix = provider.upper()
            base_url = env.get(f"{prefix}_BASE_URL") or None
            chosen.append(Found(provider, (), base_url, f"{prefix}_API_KEY"))
    return chosen


def header(found: Sequence[Found], out: Path) -> list[str]:
    names = ", ".join(f.provider for f in found)
    return [
        f"{out.name}: written by `gearshift init` for {names}.",
        "",
        "One default router per provider family, over its current light, middle and frontier",
        "models: each prompt goes to the cheapest model predicted to answer within",
        "quality_tolerance of the best one; the fallback is the family's most capable model.",
        "Lines without '#' are what init chose; every other setting is commented out at its",
        "default (uncomment to change). docs/configuration.md describes each setting.",
        "Keys never go in this file: api_key_env names the variable that holds one.",
        "",
        f"Run: gearshift serve --config {out}",
        "",
    ]
