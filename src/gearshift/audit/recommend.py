"""The router configuration an audit recommends, as YAML to paste into ``gearshift.yaml``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

from gearshift.catalogue import lookup

if TYPE_CHECKING:
    from gearshift.audit.engine import Auditor

_BEDROCK_ID = re.compile(r"^(?:[a-z]{2,7}\.)?(?:anthropic|amazon|meta|mistral|cohere|ai21)\.")
_ENDPOINTS = {
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "anthropic": ("https://api.anthropic.com", "ANTHROPIC_API_KEY"),
}


def recommend_tolerance(curve: list[dict[str, Any]], retained_floor: float) -> dict[str, Any]:
    """The tolerance with the largest savings that keeps ``retained_floor`` of the best predicted
    quality (the smallest such tolerance on a tie); tolerance 0 when none does."""
    floor_pct = 100.0 * retained_floor
    ok = [p for p in curve if (p["quality_retained_pct"] or 0.0) >= floor_pct - 1e-9]
    if not ok:
        best = min(curve, key=lambda p: p["tolerance"])
        why = f"no tolerance keeps {floor_pct:.0f}% of the best predicted quality"
    else:
        best = max(ok, key=lambda p: (round(p["savings_usd"], 6), -p["tolerance"]))
        why = f"largest savings that keeps at least {floor_pct:.0f}% of the best predicted quality"
    return {
        "tolerance": best["tolerance"],
        "savings_usd": best["savings_usd"],
        "savings_pct": best["savings_pct"],
        "quality_retained_pct": best["quality_retained_pct"],
        "why": why,
    }


def recommended_yaml(a: Auditor, recommended: dict[str, Any]) -> str:
    settings = a.candidates.settings
    router = a.candidates.router
    # The most capable candidate is the fallback: the model the log was trusted to.
    fallback = a.router.most_capable
    router_block: dict[str, Any] = {
        "name": router.name if router.name != "audit" else "auto",
        "models": list(router.models),
        "quality_tolerance": recommended["tolerance"],
        "fallback": fallback,
    }
    doc: dict[str, Any] = {}
    bedrock_ids = [m for m in a.logged_names if _BEDROCK_ID.match(m)]
    bedrock_log = bool(bedrock_ids)
    guessed: list[str] = []  # Bedrock ids the audit could only guess
    if router.name == "audit":  # proposed by the audit: the models need configuring too
        models = []
        for name in router.models:
            cfg = settings.model(name)
            assert cfg is not None
            entry = lookup(name)
            provider = "bedrock" if bedrock_log or cfg.provider == "bedrock" else cfg.provider
            block: dict[str, Any] = {"name": name, "provider": provider}
            endpoint = _ENDPOINTS.get(provider)
            if endpoint is not None:
                block["base_url"], block["api_key_env"] = endpoint
            else:
                block["region"] = "us-east-1"
                if not _BEDROCK_ID.match(name):
                    found = _BEDROCK_ID.match(bedrock_ids[0]) if bedrock_ids else None
                    vendor = found.group(0) if found else ""
                    block["model"] = vendor + (entry.name if entry else name)
                    guessed.append(block["model"])
            if entry is not None:
                block["tier"] = entry.tier
            if cfg.price is not None:
                block["price"] = {
                    "input_per_mtok": float(cfg.price.input_per_mtok),
                    "output_per_mtok": float(cfg.price.output_per_mtok),
                }
            models.append(block)
        doc["models"] = models
    doc["routers"] = [router_block]
    if router.name == "audit":
        doc["storage"] = "sqlite:///./gearshift.db"
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100)
    header = (
        f"# Recommended by `gearshift audit`: tolerance {recommended['tolerance']} "
        f"({recommended['why']}).\n"
    )
    if guessed:
        header += (
            "# Bedrock model ids to check against those enabled in your account (versions "
            f"differ by region): {', '.join(guessed)}\n"
        )
    return header + text
