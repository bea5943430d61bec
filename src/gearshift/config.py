"""Settings, declared once with defaults and help text (docs/configuration.md documents each).

``load_settings(path)`` reads YAML, validates it and checks cross-references (a router naming an
unknown model is a startup error, not a runtime surprise). Secrets are never stored here: a model
names the *environment variable* holding its key (``api_key_env``).
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gearshift.errors import ConfigError

ProviderKind = Literal["openai", "anthropic", "bedrock"]


def _scalar_text(value: object) -> object:
    """A YAML scalar as the text it was written as: unquoted ``2024-10-21`` loads as a date,
    ``true`` as a bool, ``1`` as an int, but a header or query value is always text."""
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if value is None:
        raise ValueError("is empty (YAML null): write '' for an empty value")
    if isinstance(value, (list, dict)):
        raise ValueError(
            f"must be text, not a YAML {'list' if isinstance(value, list) else 'mapping'}"
        )
    return value


# Text settings that YAML may type as dates, numbers or booleans when left unquoted.
ScalarText = Annotated[str, BeforeValidator(_scalar_text)]
TextMap = dict[ScalarText, ScalarText]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceOverride(_Strict):
    """USD per million tokens; overrides genai-prices for this model."""

    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    cache_read_per_mtok: Decimal | None = Field(default=None, ge=0)
    cache_write_per_mtok: Decimal | None = Field(default=None, ge=0)
    reasoning_per_mtok: Decimal | None = Field(
        default=None, ge=0, description="Reasoning tokens; billed as output when unset."
    )


class Capabilities(_Strict):
    tools: bool = True
    vision: bool = False
    json_mode: bool = True


class DeploymentConfig(_Strict):
    """One of several upstreams serving the same model (keys, regions, Azure deployments)."""

    name: str | None = Field(
        default=None, description="Label in ledger rows and /metrics; default: region or host."
    )
    base_url: str | None = Field(default=None, description="Upstream base URL; default: model's.")
    api_key_env: str | None = Field(default=None, description="Key variable; default: model's.")
    region: str | None = Field(default=None, description="AWS region; default: model's.")
    weight: float = Field(default=1.0, gt=0, description="Share of traffic relative to others.")
    rpm: int | None = Field(default=None, gt=0, description="Requests per minute it accepts.")
    tpm: int | None = Field(default=None, gt=0, description="Tokens per minute it accepts.")


class ModelConfig(_Strict):
    name: str = Field(description="Name clients and routers use for this model.")
    provider: ProviderKind = Field(default="openai", description="Upstream protocol.")
    model: str | None = Field(default=None, description="Upstream model id; defaults to name.")
    base_url: str | None = Field(default=None, description="Upstream API base URL.")
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the upstream API key."
    )
    region: str | None = Field(default=None, description="AWS region (bedrock provider).")
    tier: int | None = Field(default=None, ge=1, description="1 is the lightest model.")
    ability: float | None = Field(
        default=None, ge=0, le=1, description="Overall ability in [0,1]; overrides tier/catalogue."
    )
    price: PriceOverride | None = None
    context_window: int | None = Field(default=None, gt=0, description="Max prompt+output tokens.")
    capabilities: Capabilities = Capabilities()
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=2, ge=0, description="Retries on 429/5xx/timeouts per model.")
    responses_api: bool = Field(
        default=False,
        description="openai provider: the upstream serves POST {base_url}/responses; non-streamed "
        "Responses requests are passed through to it (previous_response_id included).",
    )
    proxy: str | None = Field(
        default=None,
        description="Outbound proxy, http://[user:pass@]host:port (CONNECT tunnel); 'direct' "
        "ignores HTTPS_PROXY/HTTP_PROXY; unset: those variables and NO_PROXY decide.",
    )
    headers: TextMap = Field(
        default_factory=dict,
        description="Extra upstream request headers (e.g. Azure's api-key); values may hold "
        "${ENV_VAR} references.",
    )
    query: TextMap = Field(
        default_factory=dict,
        description="Query parameters added to every upstream request (e.g. api-version), after "
        "any in base_url; values may hold ${ENV_VAR} references.",
    )
    max_connections: int = Field(
        default=100,
        ge=1,
        description="Open connections to this model's upstream origin at most; requests "
        "beyond it wait for a free one.",
    )
    deployments: list[DeploymentConfig] = Field(
        default_factory=list, description="Several upstreams sharing this model's load."
    )

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: str | None) -> str | None:
        if value is None or value == "direct":
            return value
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("proxy must be 'direct' or an http:// URL, e.g. http://proxy:3128")
        return value

    @property
    def upstream_model(self) -> str:
        return self.model or self.name

    def deployment_labels(self) -> list[str]:
        """The name of each deployment in ledger rows and /metrics: its ``name``, else its region,
        else its base URL's host (with a port), else its position."""
        from urllib.parse import urlsplit

        labels = []
        for i, d in enumerate(self.deployments):
            host = urlsplit(d.base_url).netloc if d.base_url else ""
            labels.append(d.name or d.region or host or f"#{i + 1}")
        return labels

    @model_validator(mode="after")
    def _check_deployments(self) -> ModelConfig:
        labels = self.deployment_labels()
        dupes = sorted({n for n in labels if labels.count(n) > 1})
        if dupes:
            raise ValueError(
                f"model {self.name!r}: deployment names must be unique; repeated: "
                f"{', '.join(dupes)} (give each deployment its own `name`)"
            )
        return self


class RouterTargets(_Strict):
    avg_cost_per_request_usd: float | None = Field(default=None, gt=0)
    latency_p80_ms: float | None = Field(default=None, gt=0)
    light_share_min: float | None = Field(default=None, ge=0, le=1)
    max_quality_tolerance: float = Field(default=0.25, ge=0, le=1)
    window_requests: int = Field(default=500, ge=10, description="Controller sliding window.")


class CacheConfig(_Strict):
    """Response cache for one router (``cache/``): identical requests answered without a call."""

    ttl_s: float = Field(default=3600.0, gt=0, description="How long an answer is reused, seconds.")
    backend: Literal["memory", "sqlite", "redis"] = Field(
        default="memory",
        description="memory (per process), sqlite (one host), redis (every replica).",
    )
    scope: Literal["per-key", "shared"] = Field(
        default="per-key", description="per-key: a caller reuses only answers to its own key."
    )
    max_temperature: float = Field(
        default=0.0,
        ge=0,
        description="Requests with a higher temperature are not cached (an unset one is).",
    )
    max_entries: int = Field(default=10_000, gt=0, description="memory backend: LRU capacity.")
    path: str = Field(default="./gearshift-cache.db", description="sqlite backend: the file.")
    redis_url: str | None = Field(
        default=None, description="redis backend: the server; defaults to policy.redis_url."
    )


class LearningConfig(_Strict):
    """Opt-in learning from the router's own traffic (docs/learning.md)."""

    sample_rate: float = Field(
        default=0.01, ge=0, le=1, description="Share of lighter-model answers to judge."
    )
    reference: str | None = Field(
        default=None, description="Model to compare against; default the most capable candidate."
    )
    judge: str = Field(description="Configured model that grades answers (judge contract).")
    max_usd_per_day: float = Field(
        default=1.0, gt=0, description="Cap on reference + judge spend per UTC day."
    )
    retention_days: int = Field(
        default=30, ge=1, description="Stored prompts and labels are deleted after this."
    )
    auto_promote: bool = Field(
        default=False, description="`gearshift learn` promotes a candidate that wins by margin."
    )
    promote_margin: float = Field(
        default=0.02, ge=0, le=1, description="Held-out pair-APGR gain needed to auto-promote."
    )
    max_tokens: int = Field(
        default=1024, gt=0, description="Completion cap for the reference call (bounds its cost)."
    )


class RouterConfig(_Strict):
    name: str
    models: list[str] = Field(min_length=1)
    quality_tolerance: float = Field(default=0.1, ge=0, le=1)
    fallback: str | None = Field(default=None, description="Model tried last if all else fails.")
    predictor: str = Field(default="default", description="'default' or a trained router DIR.")
    sticky: bool = Field(default=True, description="Keep a conversation on one model.")
    targets: RouterTargets | None = None
    learning: LearningConfig | None = None
    cache: CacheConfig | None = Field(default=None, description="Response cache (off when unset).")


class BudgetConfig(_Strict):
    name: str
    scope: TextMap = Field(
        default_factory=dict, description="Tag match, e.g. {team: support}; empty = everything."
    )
    period: Literal["day", "week", "month"] = "month"
    limit_usd: float = Field(gt=0, description="Hard limit: refuse with 429 beyond it.")
    soft_limit_usd: float | None = Field(default=None, gt=0, description="Route lighter beyond.")
    alert_thresholds: list[float] = Field(default_factory=lambda: [0.5, 0.8, 1.0])
    max_usd_per_hour: float | None = Field(default=None, gt=0, description="Spend-rate limit.")

    @model_validator(mode="after")
    def _check_limits(self) -> BudgetConfig:
        if self.soft_limit_usd is not None and self.soft_limit_usd >= self.limit_usd:
            raise ValueError(
                f"budget {self.name!r}: soft_limit_usd ({self.soft_limit_usd:g}) must be below "
                f"limit_usd ({self.limit_usd:g})"
            )
        bad = [t for t in self.alert_thresholds if not 0 < t <= 1.5]
        if bad:
            raise ValueError(
                f"budget {self.name!r}: alert_thresholds are fractions of the limit in (0, 1.5], "
                f"e.g. [0.5, 0.8, 1.0]; got {bad}"
            )
        return self


class RateLimitConfig(_Strict):
    """Requests and tokens per minute for a scope of traffic (same scopes as budgets)."""

    name: str
    scope: TextMap = Field(
        default_factory=dict, description="Tag match, e.g. {team: support}; empty = everything."
    )
    rpm: int | None = Field(default=None, gt=0, description="Requests per minute.")
    tpm: int | None = Field(default=None, gt=0, description="Tokens (prompt + output) per minute.")

    @model_validator(mode="after")
    def _check_some_limit(self) -> RateLimitConfig:
        if self.rpm is None and self.tpm is None:
            raise ValueError(f"rate limit {self.name!r} sets neither rpm nor tpm")
        return self


class PolicyConfig(_Strict):
    auth: Literal["optional", "required"] = Field(
        default="optional",
        description="required: every route that serves data needs a key (all but the health"
        " checks and the dashboard's data-free page); optional: a request with no key is"
        " anonymous. A presented gs- key that is unknown, revoked or expired is refused"
        " either way.",
    )
    budgets: list[BudgetConfig] = Field(default_factory=list)
    limits: list[RateLimitConfig] = Field(
        default_factory=list, description="rpm/tpm limits per key, team or tag."
    )
    alert_webhook: str | None = None
    redis_url: str | None = Field(default=None, description="Share counters across replicas.")
    key_refresh_s: float = Field(
        default=1.0, gt=0, le=60, description="How often the gateway re-reads the keys table."
    )
    reserve_usd: float = Field(
        default=0.05,
        gt=0,
        description="Cost reserved on budgets per request until real costs have been observed.",
    )

    @model_validator(mode="after")
    def _check_budgets(self) -> PolicyConfig:
        names = [b.name for b in self.budgets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"budget names must be unique; repeated: {', '.join(dupes)}")
        names = [lim.name for lim in self.limits]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rate limit names must be unique; repeated: {', '.join(dupes)}")
        return self


class LedgerConfig(_Strict):
    """How the ledger writer holds rows until the database has them (docs/ledger.md)."""

    batch_size: int = Field(
        default=2000, ge=1, le=100_000, description="Most rows inserted in one transaction."
    )
    flush_interval_s: float = Field(
        default=0.05,
        gt=0,
        le=10,
        description="Longest wait, in seconds, before queued rows are written.",
    )
    queue_max_rows: int = Field(
        default=20_000,
        ge=100,
        description="Rows held in memory; beyond it rows wait on disk only (bounds RSS).",
    )
    spool_max_mb: float = Field(
        default=1024,
        gt=0,
        description="Disk the spool may fill before new requests are refused with 503.",
    )
    spool_fsync_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="fsync the spool this often: the rows a power cut (not kill -9) may lose.",
    )


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    admin_key_env: str | None = Field(
        default=None,
        description="Env var with the admin key for /metrics, /api/... and /admin/keys.",
    )
    shutdown_grace_s: float = Field(default=30.0, ge=0)


class CooldownConfig(_Strict):
    """When a failing deployment is skipped, and for how long (see docs/deployments.md)."""

    failures: int = Field(
        default=3, ge=1, description="Consecutive failed attempts that cool a deployment down."
    )
    # 5 s, not longer: while a model's only deployment cools down, its requests are refused (or
    # fall back), so a long first period turns a 2 s provider restart into an outage
    # (bench/upstream_blip.py); an upstream that stays down is probed ever less often, as
    # each failed probe doubles the period.
    cooldown_s: float = Field(default=5.0, gt=0, description="First cooldown period, seconds.")
    max_cooldown_s: float = Field(
        default=300.0, gt=0, description="Cap on the cooldown, which doubles per failed probe."
    )
    trial_wait_s: float = Field(
        default=2.0,
        ge=0,
        description="How long a request waits for a verdict when every usable deployment of its"
        " model is on trial (unproven, one request in flight) before going to one anyway.",
    )


class TelemetryConfig(_Strict):
    """OpenTelemetry traces (docs/observability.md); off unless an endpoint is set here or in
    OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT."""

    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP collector base URL, e.g. http://otel:4318."
    )
    service_name: str = Field(default="gearshift", description="service.name of the spans.")


class Settings(_Strict):
    models: list[ModelConfig] = Field(default_factory=list)
    routers: list[RouterConfig] = Field(default_factory=list)
    storage: str = Field(default="sqlite:///./gearshift.db", description="Ledger URL.")
    ledger: LedgerConfig = LedgerConfig()
    server: ServerConfig = ServerConfig()
    policy: PolicyConfig = PolicyConfig()
    cooldown: CooldownConfig = CooldownConfig()
    telemetry: TelemetryConfig = TelemetryConfig()

    @model_validator(mode="after")
    def _check_references(self) -> Settings:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        known = set(names)
        for r in self.routers:
            if r.name in known:
                raise ValueError(f"router {r.name!r} has the same name as a model")
            unknown = [m for m in r.models if m not in known]
            if unknown:
                raise ValueError(
                    f"router {r.name!r} names unknown model(s): {', '.join(unknown)}; "
                    f"configured models: {', '.join(names) or '(none)'}"
                )
            if r.fallback is not None and r.fallback not in known:
                raise ValueError(f"router {r.name!r} has unknown fallback model {r.fallback!r}")
            if r.learning is not None:
                roles = (("judge", r.learning.judge), ("reference", r.learning.reference))
                for role, name in roles:
                    if name is not None and name not in known:
                        raise ValueError(
                            f"router {r.name!r}: learning.{role} names unknown model {name!r}"
                        )
        return self

    def model(self, name: str) -> ModelConfig | None:
        for m in self.models:
            if m.name == name:
                return m
        return None

    def router(self, name: str) -> RouterConfig | None:
        for r in self.routers:
            if r.name == name:
                return r
        return None


def parse_settings(data: dict[str, Any], *, source: str = "<config>") -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigError(f"invalid configuration in {source}:\n" + "\n".join(lines)) from None


def load_settings(path: str | os.PathLike[str]) -> Settings:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return parse_settings(data, source=str(p))
