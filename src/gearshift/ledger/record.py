"""One ledger row per served request (the contract between the gateway, policy and analytics)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

# ok: answered; cache_hit: answered from the response cache; error: failed upstream or inside
# the gateway; client_disconnect: the client left; rejected: refused by a key or policy
# (401/403/429); invalid: refused as malformed (400, unknown model 404) before anything was routed.
Outcome = Literal["ok", "error", "client_disconnect", "rejected", "invalid", "cache_hit"]


@dataclass(slots=True)
class LedgerRecord:
    id: str  # request id (also returned to the client as x-request-id)
    ts: float  # unix time the request arrived
    dialect: str  # openai | anthropic | bedrock
    requested_model: str  # what the client asked for: a router or a model name
    router: str | None = None
    key_id: str | None = None  # virtual key id (never the key itself)
    tags: dict[str, str] = field(default_factory=dict)
    predicted: dict[str, float] = field(default_factory=dict)
    difficulty: float | None = None
    prompt_kind: str | None = None
    tolerance: float | None = None
    chosen_model: str | None = None  # the router's choice
    served_model: str | None = None  # who actually answered (after fallbacks)
    fallbacks: list[str] = field(default_factory=list)  # models tried that failed, in order
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # cache reads
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    counterfactual_model: str | None = None
    counterfactual_cost_usd: Decimal = Decimal(0)
    price_source: str | None = None  # "config" | "genai-prices" | "unknown"
    ttfb_ms: float | None = None
    latency_ms: float | None = None
    status: int = 200
    outcome: Outcome = "ok"
    error: str | None = None
    deployment: str | None = None  # which deployment of served_model answered (or was tried last)
