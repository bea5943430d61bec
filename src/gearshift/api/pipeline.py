"""The dialect-agnostic request path: resolve, admit, route, call with retries and fallbacks,
price, record. Every inbound dialect (OpenAI, Anthropic, Bedrock) drives the same ``Gateway``.

Two entry points:

- ``await gateway.complete(request, ctx) -> (ChatResponse, Served)``
- ``await gateway.open_stream(request, ctx) -> GatewayStream``: returns once the first event is in
  hand (so ``stream.served`` can go into response headers); iterate it for events; a failure after
  that raises ``UpstreamError`` from the iteration; closing it early (client gone) cancels the
  upstream call and records ``client_disconnect``.

Each request produces exactly one ``LedgerRecord`` (success, failure, refusal or disconnect),
handed to the policy's ``settle``, the ledger sink and every observer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

from gearshift.api.attempts import attempts, is_client_fault, judge_failure
from gearshift.api.environment import check_environment
from gearshift.api.fields import MAX_MODEL_CHARS
from gearshift.api.gateway_stream import (
    CLIENT_CLOSED,
    GatewayStream,
    _close_quietly,
    _internal,
    _ms_since,
)
from gearshift.api.snapshot import Snapshot, build_snapshot, initial_snapshot
from gearshift.chat import (
    ChatRequest,
    ChatResponse,
    Dialect,
    FinishReason,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
from gearshift.config import ModelConfig, RouterConfig, Settings
from gearshift.errors import (
    GearshiftError,
    InvalidRequest,
    LedgerFull,
    NotFound,
    UpstreamError,
)
from gearshift.ledger.record import LedgerRecord, Outcome
from gearshift.policy.contract import Admission, OpenPolicy, PolicyEngine
from gearshift.providers.base import Provider, provider_class
from gearshift.providers.deployments import Deployment, DeploymentPool
from gearshift.routing.decision import Decision, RouterEngine
from gearshift.telemetry import TRACEPARENT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gearshift.cache import CachedAnswer, ResponseCache
    from gearshift.telemetry.tracing import Tracing

log = logging.getLogger("gearshift.gateway")

Observer = Callable[[LedgerRecord], None]
T = TypeVar("T")


class LedgerSink(Protocol):
    """Where finished records go (the ledger's batching ``LedgerWriter``): ``submit`` never
    blocks. Whoever opened the sink closes it (the app, after draining)."""

    def submit(self, record: LedgerRecord) -> None: ...


class Pricer(Protocol):
    def cost(self, model: ModelConfig | str, usage: Usage) -> Any: ...


class AnswerObserver(Protocol):
    """Sees finished answers after the client has them (the learning loop's sampler). ``wants``
    runs when a stream opens, so only sampled streams collect their text; ``offer`` must return
    at once (queue the work) and never raise into the request."""

    def wants(self, served: Served) -> bool: ...

    def offer(self, request: ChatRequest, answer: str, served: Served) -> None: ...


class Lifecycle(Protocol):
    """A background component started with the gateway and stopped before it closes."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(slots=True)
class RequestContext:
    """What the HTTP edge knows about a request besides its body."""

    request_id: str
    dialect: Dialect = "openai"
    api_key: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    tolerance: float | None = None  # x-gearshift-quality-tolerance
    ts: float = field(default_factory=time.time)  # wall clock at arrival
    started: float = field(default_factory=time.perf_counter)  # monotonic at arrival
    cache_control: str = ""  # the client's Cache-Control header, lower-cased
    traceparent: str | None = None  # the client's W3C trace context
    # The request's ledger row once the pipeline has made it (it then publishes it, whatever
    # happens); None while the HTTP edge still owes the request its row.
    record: LedgerRecord | None = None


@dataclass(slots=True)
class Served:
    """Who answered and what it cost; filled in progressively (cost is known at the end)."""

    record: LedgerRecord
    decision: Decision | None
    model: str = ""  # configured name of the model that answered
    upstream_model: str = ""
    config: ModelConfig | None = None  # that model's configuration, as of the request's start
    cache: str | None = None  # "hit" | "miss" | "bypass" when the router has a cache

    @property
    def request_id(self) -> str:
        return self.record.id

    @property
    def router(self) -> str | None:
        return self.record.router

    @property
    def cost_usd(self) -> Decimal:
        return self.record.cost_usd

    @property
    def saved_usd(self) -> Decimal:
        return self.record.counterfactual_cost_usd - self.record.cost_usd


@dataclass(slots=True)
class _Plan:
    record: LedgerRecord
    admission: Admission
    decision: Decision | None
    ranked: tuple[ModelConfig, ...]
    counterfactual: ModelConfig | None
    snap: Snapshot  # the configuration this request runs on, start to end
    # The deployment that answered (its tokens count against its tpm), and whether it still
    # holds an in-flight slot (an open stream's, released when the plan finishes).
    served_by: tuple[DeploymentPool, Deployment] | None = None
    holding: bool = False
    last_error: UpstreamError | None = None  # of the latest failed attempt
    cache: ResponseCache | None = None
    cache_key: str | None = None  # store the answer under this key (None: do not)
    hit: CachedAnswer | None = None


class Gateway:
    def __init__(
        self,
        settings: Settings,
        *,
        policy: PolicyEngine | None = None,
        ledger: LedgerSink | None = None,
        pricer: Pricer | None = None,
        routers: dict[str, RouterEngine] | None = None,
        observers: list[Observer] | None = None,
    ) -> None:
        self.policy: PolicyEngine = policy or OpenPolicy()
        self.ledger = ledger
        self._given_pricer = pricer
        self.observers: list[Observer] = observers if observers is not None else []
        # Swapped whole by ``reload``; each request reads it once (see api/snapshot.py).
        self.snapshot: Snapshot = initial_snapshot(settings, routers)
        self._providers: dict[tuple[str, str | None], Provider] = {}
        self.caches: dict[str, ResponseCache] = {}
        self.tracer: Tracing | None = None  # OpenTelemetry, when configured (telemetry/)
        self.answer_observer: AnswerObserver | None = None
        self.components: list[Lifecycle] = []
        # More Prometheus text for /metrics from components (the learning loop's counters).
        self.metric_sources: list[Callable[[], str]] = []

    @property
    def settings(self) -> Settings:
        return self.snapshot.settings

    @property
    def models(self) -> dict[str, ModelConfig]:
        return self.snapshot.models

    @property
    def router_configs(self) -> dict[str, RouterConfig]:
        return self.snapshot.router_configs

    @property
    def routers(self) -> dict[str, RouterEngine]:
        return self.snapshot.routers

    @property
    def pricer(self) -> Pricer | None:
        pricer: Pricer | None = self.snapshot.pricer
        return pricer

    # ---- lifecycle -------------------------------------------------------------------------

    def check_environment(self, settings: Settings | None = None) -> None:
        """Fail at startup (or refuse a reload), not at the first request, when an upstream key
        is missing."""
        check_environment(settings or self.settings)

    async def open(self) -> None:
        self.check_environment()
        start_policy = getattr(self.policy, "start", None)
        if start_policy is not None:
            # Load keys and seed budget counters now rather than on the first request.
            await start_policy()
        if self.tracer is None:
            from gearshift.telemetry import build_tracing

            self.tracer = build_tracing(self.settings)
        self.snapshot = self._build(self.settings)
        if any(r.cache is not None for r in self.settings.routers):
            from gearshift.cache import build_caches

            # Response caches are built once: a reload keeps them (their settings need a
            # restart).
            self.caches = build_caches(self.settings)
        for component in self.components:
            await component.start()

    def _build(self, settings: Settings) -> Snapshot:
        pricer = self._given_pricer
        if pricer is None:
            from gearshift.pricing import Pricer as DefaultPricer

            pricer = DefaultPricer.from_settings(settings)
        return build_snapshot(settings, self.snapshot, self._provider, _build_router, pricer)

    async def reload(self, settings: Settings) -> Snapshot:
        """Swap in ``settings`` (already validated by ``load_settings``): models, routers,
        deployments, prices, budgets and limits change together, for requests arriving from now
        on; requests already running finish on the snapshot they started with. Raises
        ``ConfigError`` and changes nothing when the new configuration cannot be used."""
        self.check_environment(settings)
        # Router engines may load a trained predictor from disk: off the event loop.
        snap = await asyncio.to_thread(self._build, settings)
        reconfigure = getattr(self.policy, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(settings)
        self.snapshot = snap
        return snap

    def _provider(self, model: ModelConfig) -> Provider:
        """One provider instance (one connection pool) per protocol and upstream, shared by every
        snapshot, so a reload keeps warm connections; closed at shutdown."""
        key = (model.provider, model.base_url)
        provider = self._providers.get(key)
        if provider is None:
            # Every provider class takes ``base_url=``; the Protocol cannot say so.
            cls = provider_class(model.provider)
            provider = cls(base_url=model.base_url)  # type: ignore[call-arg]
            self._providers[key] = provider
        return provider

    async def aclose(self) -> None:
        for component in reversed(self.components):
            try:
                await component.stop()
            except Exception:
                log.exception("stopping %r failed", component)
        for provider in self._providers.values():
            try:
                await provider.aclose()
            except Exception:
                log.exception("closing provider %s failed", provider.kind)
        self._providers.clear()
        for cache in self.caches.values():
            await cache.backend.aclose()
        if self.tracer is not None:
            await asyncio.to_thread(self.tracer.shutdown)  # exports what is still queued
        await self.policy.aclose()

    def provider_for(self, model: ModelConfig) -> Provider:
        return self.upstream_for(model)[0]

    def upstream_for(self, model: ModelConfig) -> tuple[Provider, ModelConfig]:
        """Where a side call on ``model`` goes (token counting, the learning loop's judge): its
        first usable deployment (else its first), as (provider, that deployment's view of the
        model, with its base URL and key). No retries or health bookkeeping."""
        pool = self.snapshot.pools[model.name]
        usable = pool.usable()
        dep = usable[0] if usable else pool.deployments[0]
        return dep.provider, dep.model

    # ---- entry points ----------------------------------------------------------------------

    async def complete(
        self, request: ChatRequest, ctx: RequestContext
    ) -> tuple[ChatResponse, Served]:
        plan = await self._plan(request, ctx)
        record = plan.record
        if plan.hit is not None:
            return await self._answer_from_cache(plan, plan.hit, ctx)
        async with self._failure_recorded(plan, ctx):
            response, model = await self._call_with_fallbacks(
                plan, lambda provider, model: provider.complete(request, model)
            )
        elapsed = _ms_since(ctx.started)
        record.ttfb_ms = elapsed
        self._succeed(plan, model, response.usage, elapsed)
        await self._finish(plan)
        served = Served(record, plan.decision, model.name, model.upstream_model, model)
        if plan.cache is not None:
            served.cache = "miss" if plan.cache_key is not None else "bypass"
            await self._store(
                plan,
                model,
                response.text(),
                response.finish_reason,
                bool(response.tool_calls),
                response.usage,
            )
        if self.answer_observer is not None:
            self._offer_answer(request, response.text(), served)
        return response, served

    async def open_stream(self, request: ChatRequest, ctx: RequestContext) -> GatewayStream:
        plan = await self._plan(request, ctx)
        plan.record.stream = True
        if plan.hit is not None:
            return self._stream_from_cache(plan, plan.hit, ctx)
        async with self._failure_recorded(plan, ctx):
            events, first, model = await self._open_with_fallbacks(plan, request)
        plan.record.ttfb_ms = _ms_since(ctx.started)
        served = Served(plan.record, plan.decision, model.name, model.upstream_model, model)
        if plan.cache is not None:
            served.cache = "miss" if plan.cache_key is not None else "bypass"
        plan.record.served_model = model.name
        stream = GatewayStream(self, plan, ctx, served, events, first, model)
        stream.prompt = request
        observer = self.answer_observer
        if observer is not None and observer.wants(served):
            stream.collect_for(request)
        return stream

    async def embed(self, body: dict[str, Any], ctx: RequestContext) -> tuple[Any, Served]:
        """Embeddings, passed through to a configured OpenAI-compatible model (routers choose
        between chat models only). Policy, retries, pricing and the ledger as for chat."""
        request = ChatRequest(model=str(body.get("model", "")), messages=[], raw=body)
        if request.model in self.router_configs:
            self._refuse(
                request,
                ctx,
                InvalidRequest(
                    f"{request.model!r} is a router; embeddings go to a configured model",
                    param="model",
                ),
            )
        plan = await self._plan(request, ctx)
        record = plan.record
        async with self._failure_recorded(plan, ctx):
            target = plan.ranked[0]
            if not hasattr(plan.snap.pools[target.name].deployments[0].provider, "embed"):
                raise InvalidRequest(
                    f"model {target.name!r} ({target.provider} provider) has no embeddings API",
                    param="model",
                )
            data, model = await self._call_with_fallbacks(
                plan,
                lambda provider, model: provider.embed(body, model),  # type: ignore[attr-defined]
            )
        usage_block = data.get("usage") if isinstance(data, dict) else None
        tokens = int((usage_block or {}).get("prompt_tokens") or 0)
        elapsed = _ms_since(ctx.started)
        record.ttfb_ms = elapsed
        self._succeed(plan, model, Usage(input_tokens=tokens), elapsed)
        await self._finish(plan)
        return data, Served(record, None, model.name, model.upstream_model, model)

    @contextlib.asynccontextmanager
    async def _failure_recorded(self, plan: _Plan, ctx: RequestContext) -> AsyncIterator[None]:
        """A call that fails (client gone, a gearshift error, or a bug of ours) is recorded on the
        plan's ledger row and the plan finished, exactly once; the failure then propagates."""
        try:
            yield
        except asyncio.CancelledError:
            self._fail(plan.record, ctx, CLIENT_CLOSED, "client_disconnect", "client disconnected")
            await self._finish(plan)
            raise
        except GearshiftError as exc:
            self._fail(plan.record, ctx, exc.status, "error", exc.message)
            await self._finish(plan)
            raise
        except Exception as exc:
            self._fail(plan.record, ctx, 500, "error", _internal(exc))
            await self._finish(plan)
            raise

    def _refuse(self, request: ChatRequest, ctx: RequestContext, exc: GearshiftError) -> NoReturn:
        """Record a request refused as malformed before planning, then raise its error."""
        record = ctx.record or _new_record(request, ctx)
        self._fail(record, ctx, exc.status, "invalid", exc.message)
        self._publish(record)
        raise exc

    def record_unserved(
        self, ctx: RequestContext, requested_model: str, exc: GearshiftError
    ) -> None:
        """The row of a request that failed at the HTTP edge before the pipeline made one: a body
        that parses but fails validation (``invalid``), or a bug of ours (``error``, 500)."""
        if ctx.record is not None or isinstance(exc, LedgerFull):
            return  # the pipeline owns this row; a full ledger cannot take one (counted there)
        record = _new_record(ChatRequest(model=requested_model[:MAX_MODEL_CHARS], messages=[]), ctx)
        outcome: Outcome = "invalid" if 400 <= exc.status < 500 else "error"
        self._fail(record, ctx, exc.status, outcome, exc.message)
        self._publish(record)

    async def check_key(self, api_key: str | None) -> None:
        """For routes that serve no model (model lists, token counts): the same key rules as a
        chat request (a key under ``auth: required``; a presented gearshift key must be valid)."""
        await self.policy.authenticate(api_key)

    def known_names(self) -> tuple[list[str], list[str]]:
        """(router names, model names) as configured, for /v1/models and error messages."""
        return list(self.router_configs), list(self.models)

    # ---- planning --------------------------------------------------------------------------

    async def _plan(self, request: ChatRequest, ctx: RequestContext) -> _Plan:
        admit = getattr(self.ledger, "admit", None)
        if admit is not None and not admit():
            # No row: the ledger cannot take one (that is the reason); counted by the writer.
            raise LedgerFull(
                "the gateway's ledger backlog is full (the database is slower than traffic); "
                "retry shortly"
            )
        record = _new_record(request, ctx, stream=request.stream)
        if self.tracer is not None:
            self.tracer.start_request(record.id, request.model, ctx.traceparent, ctx.ts)
        elif ctx.traceparent is not None:
            TRACEPARENT.set(ctx.traceparent)  # untraced: the client's trace still spans upstream
        snap = self.snapshot
        router_cfg = snap.router_configs.get(request.model)
        model_cfg = snap.models.get(request.model)
        if router_cfg is None and model_cfg is None:
            missing = NotFound(self._unknown_model_message(request.model), param="model")
            self._refuse(request, ctx, missing)
        try:
            caller = await self.policy.authenticate(ctx.api_key)
            record.key_id = caller.key_id
            if caller.tags:
                record.tags = {**caller.tags, **ctx.tags}
            admission = await self.policy.admit(router_cfg, request.model, record.tags, caller)
        except GearshiftError as exc:
            # Refused before anything was reserved (bad key, budget, rate): recorded, not settled.
            self._fail(record, ctx, exc.status, "rejected", exc.message)
            self._publish(record)
            raise
        plan = _Plan(record, admission, None, (), None, snap)
        cache = self.caches.get(request.model) if self.caches else None
        if cache is not None and await self._look_up(plan, cache, request, ctx):
            return plan  # answered from the cache: no routing, no upstream call
        try:
            if router_cfg is not None:
                self._route(plan, request, router_cfg, ctx)
            else:
                assert model_cfg is not None
                plan.ranked = (model_cfg,)
                plan.counterfactual = model_cfg
                record.chosen_model = model_cfg.name
        except GearshiftError as exc:
            self._fail(record, ctx, exc.status, "error", exc.message)
            await self._finish(plan)
            raise
        except Exception as exc:
            self._fail(record, ctx, 500, "error", _internal(exc))
            await self._finish(plan)
            raise
        return plan

    def _route(
        self, plan: _Plan, request: ChatRequest, cfg: RouterConfig, ctx: RequestContext
    ) -> None:
        tolerance = ctx.tolerance if ctx.tolerance is not None else plan.admission.tolerance
        if tolerance is not None and cfg.targets is not None:
            # A client may ask for a cheaper trade-off, never past the router's quality floor.
            tolerance = min(tolerance, cfg.targets.max_quality_tolerance)
        allowed: Collection[str] | None = plan.admission.allowed
        snap = plan.snap
        decision = snap.routers[cfg.name].decide(request, tolerance=tolerance, allowed=allowed)
        names = list(decision.ranked)
        if cfg.fallback is not None and cfg.fallback not in names:
            names.append(cfg.fallback)
        record = plan.record
        record.router = cfg.name
        record.predicted = dict(decision.predicted)
        record.difficulty = decision.difficulty
        record.prompt_kind = decision.kind or None
        record.tolerance = decision.tolerance
        record.chosen_model = decision.chosen
        plan.decision = decision
        plan.ranked = tuple(snap.models[n] for n in names)
        capable = decision.most_capable or cfg.models[-1]
        plan.counterfactual = snap.models.get(capable)

    def _unknown_model_message(self, name: str) -> str:
        routers, models = self.known_names()
        return (
            f"model {name!r} is neither a router nor a model configured in this gateway; "
            f"routers: {', '.join(routers) or '(none)'}; models: {', '.join(models) or '(none)'}"
        )

    # ---- response cache (cache/) -----------------------------------------------------------

    async def _look_up(
        self, plan: _Plan, cache: ResponseCache, request: ChatRequest, ctx: RequestContext
    ) -> bool:
        """Find the request's answer; otherwise note where to store it. True on a hit."""
        plan.cache = cache
        control = ctx.cache_control
        key = cache.key(request, plan.record.key_id)
        if key is None:
            return False
        if "no-store" not in control:
            plan.cache_key = key
        if "no-cache" in control:
            return False
        plan.hit = await cache.get(key)
        return plan.hit is not None

    def _record_hit(self, plan: _Plan, hit: CachedAnswer, ctx: RequestContext) -> Served:
        """A hit's ledger row: served by the cache at $0, saving the most capable model's cost."""
        record = plan.record
        record.router = plan.cache.router if plan.cache is not None else None
        record.chosen_model = record.served_model = hit.model
        record.counterfactual_model = hit.counterfactual_model
        record.counterfactual_cost_usd = hit.counterfactual_usd
        record.price_source = "cache"
        record.status = 200
        record.outcome = "cache_hit"
        record.latency_ms = record.ttfb_ms = _ms_since(ctx.started)
        return Served(record, None, hit.model, hit.upstream_model, cache="hit")

    async def _answer_from_cache(
        self, plan: _Plan, hit: CachedAnswer, ctx: RequestContext
    ) -> tuple[ChatResponse, Served]:
        served = self._record_hit(plan, hit, ctx)
        await self._finish(plan)
        return hit.response(f"chatcmpl-{ctx.request_id}"), served

    def _stream_from_cache(
        self, plan: _Plan, hit: CachedAnswer, ctx: RequestContext
    ) -> GatewayStream:
        served = self._record_hit(plan, hit, ctx)
        events: list[StreamEvent] = [TextDelta(hit.text), StreamEnd(hit.finish_reason, hit.usage)]
        model = plan.snap.models.get(hit.model) or ModelConfig(name=hit.model)
        return GatewayStream(self, plan, ctx, served, _replay(events[1:]), events[0], model)

    async def _store(
        self,
        plan: _Plan,
        model: ModelConfig,
        text: str,
        finish_reason: FinishReason,
        tool_calls: bool,
        usage: Usage,
    ) -> None:
        from gearshift.cache import CachedAnswer, storable

        if plan.cache is None or plan.cache_key is None or not storable(finish_reason, tool_calls):
            return
        record = plan.record
        answer = CachedAnswer(
            model.name,
            model.upstream_model,
            text,
            finish_reason,
            usage,
            record.counterfactual_model,
            record.counterfactual_cost_usd,
        )
        await plan.cache.put(plan.cache_key, answer)

    # ---- calling upstream ------------------------------------------------------------------

    async def _call_with_fallbacks(
        self, plan: _Plan, call: Callable[[Provider, ModelConfig], Awaitable[T]]
    ) -> tuple[T, ModelConfig]:
        for pool, dep, attempt, delay in attempts(plan):
            if dep is None:  # every usable deployment is on trial: wait for a verdict
                await pool.until_verdict(delay)
                continue
            if delay:
                await asyncio.sleep(delay)
            pool.begin(dep)
            try:
                pending = call(dep.provider, dep.model)
                if self.tracer is not None:
                    pending = self.tracer.attempt(plan.record.id, dep.model, attempt, pending)
                result = await pending
            except UpstreamError as exc:
                plan.last_error = exc
                judge_failure(pool, dep, exc)
                if is_client_fault(exc):
                    raise
                continue
            except BaseException:
                pool.abandoned(dep)
                raise
            finally:
                pool.end(dep)
            pool.succeeded(dep)
            plan.served_by = (pool, dep)
            return result, dep.model
        raise AssertionError("unreachable: _attempts raises when every attempt failed")

    async def _open_with_fallbacks(
        self, plan: _Plan, request: ChatRequest
    ) -> tuple[AsyncIterator[StreamEvent], StreamEvent, ModelConfig]:
        for pool, dep, attempt, delay in attempts(plan):
            if dep is None:  # every usable deployment is on trial: wait for a verdict
                await pool.until_verdict(delay)
                continue
            if delay:
                await asyncio.sleep(delay)
            pool.begin(dep)
            events = dep.provider.stream(request, dep.model)
            try:
                opening = anext(events)
                if self.tracer is not None:
                    opening = self.tracer.attempt(plan.record.id, dep.model, attempt, opening)
                first = await opening
            except StopAsyncIteration:
                last = UpstreamError(
                    f"{dep.model.name}: the upstream stream ended before sending anything",
                    model=dep.model.name,
                )
            except UpstreamError as exc:
                last = exc
            except BaseException:
                pool.abandoned(dep)
                pool.end(dep)
                await _close_quietly(events)
                raise
            else:
                pool.succeeded(dep)
                plan.served_by, plan.holding = (pool, dep), True
                return events, first, dep.model
            plan.last_error = last
            pool.end(dep)
            await _close_quietly(events)
            judge_failure(pool, dep, last)
            if is_client_fault(last):
                raise last
        raise AssertionError("unreachable: _attempts raises when every attempt failed")

    # ---- recording -------------------------------------------------------------------------

    def _succeed(self, plan: _Plan, model: ModelConfig, usage: Usage, elapsed_ms: float) -> None:
        record = plan.record
        record.served_model = model.name
        record.prompt_tokens = usage.input_tokens
        record.completion_tokens = usage.output_tokens
        record.cached_tokens = usage.cache_read_tokens
        record.cache_write_tokens = usage.cache_write_tokens
        record.reasoning_tokens = usage.reasoning_tokens
        record.latency_ms = elapsed_ms
        record.status = 200
        record.outcome = "ok"
        if plan.served_by is not None:
            pool, dep = plan.served_by
            if dep.tpm is not None:
                pool.add_tokens(dep, usage.input_tokens + usage.output_tokens)
        self._price(plan, model, usage)

    def _price(self, plan: _Plan, model: ModelConfig, usage: Usage) -> None:
        pricer: Pricer | None = plan.snap.pricer
        if pricer is None:
            return
        record = plan.record
        quote = pricer.cost(model, usage)
        record.cost_usd = quote.cost_usd
        record.price_source = quote.source
        capable = plan.counterfactual or model
        record.counterfactual_model = capable.name
        if capable.name == model.name:
            record.counterfactual_cost_usd = quote.cost_usd
        else:
            record.counterfactual_cost_usd = pricer.cost(capable, usage).cost_usd

    @staticmethod
    def _fail(
        record: LedgerRecord, ctx: RequestContext, status: int, outcome: Outcome, message: str
    ) -> None:
        record.status = status
        record.outcome = outcome
        record.error = message
        record.latency_ms = _ms_since(ctx.started)

    async def _finish(self, plan: _Plan) -> None:
        if plan.holding and plan.served_by is not None:
            plan.holding = False
            pool, dep = plan.served_by
            pool.end(dep)
        try:
            await self.policy.settle(plan.admission, plan.record)
        except Exception:
            log.exception("policy settle failed for request %s", plan.record.id)
        self._publish(plan.record)

    def _offer_answer(self, request: ChatRequest, answer: str, served: Served) -> None:
        observer = self.answer_observer
        if observer is None:
            return
        try:
            observer.offer(request, answer, served)
        except Exception:
            # Learning must never fail or change a client's answer.
            log.exception("answer observer failed for request %s", served.request_id)

    def _publish(self, record: LedgerRecord) -> None:
        if self.ledger is not None:
            self.ledger.submit(record)
        if self.tracer is not None:
            try:
                self.tracer.finish(record)
            except Exception:
                log.exception("ending the trace span of request %s failed", record.id)
        for observe in self.observers:
            try:
                observe(record)
            except Exception:
                # An observer's bug (metrics, say) must never fail or lose the request.
                log.exception("ledger observer %r failed", observe)


# ---- helpers ---------------------------------------------------------------------------------


def _build_router(settings: Settings, cfg: RouterConfig) -> RouterEngine:
    from gearshift.routing import build_router

    engine: RouterEngine = build_router(settings, cfg)
    return engine


async def _replay(events: list[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event


def _new_record(request: ChatRequest, ctx: RequestContext, *, stream: bool = False) -> LedgerRecord:
    """A request's ledger row as first known: who asked for what, before any routing. From now
    on ``ctx.record`` says the request has its row."""
    record = LedgerRecord(
        id=ctx.request_id,
        ts=ctx.ts,
        dialect=ctx.dialect,
        requested_model=request.model,
        tags=ctx.tags,
        stream=stream,
    )
    ctx.record = record
    return record
