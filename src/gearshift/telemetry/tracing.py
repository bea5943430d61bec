"""Spans for each request and each upstream attempt, with the OpenTelemetry SDK (imported only
here, only when tracing is configured).

A request is a ``SERVER`` span named ``chat {requested model}`` (the GenAI semantic conventions'
``{operation} {model}``), a child of the client's ``traceparent`` when it sent one. Each upstream
attempt (retries and fallbacks included) is a ``CLIENT`` child span ``chat {upstream model}``
whose context goes upstream as ``traceparent``. The request span's attributes are set from its
finished ledger row, so the span and the ledger always agree: ``gen_ai.*`` (operation, provider,
request and response model, token usage) and ``gearshift.*`` (router, chosen and served model,
predicted quality, cost, saving, outcome, fallbacks, cache).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gearshift.errors import UpstreamError
from gearshift.telemetry import TRACEPARENT

if TYPE_CHECKING:
    from gearshift.config import ModelConfig, Settings
    from gearshift.ledger.record import LedgerRecord

T = TypeVar("T")
# GenAI semantic conventions' provider names for gearshift's provider kinds.
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "bedrock": "aws.bedrock"}


def otlp_exporter(url: str, settings: Settings) -> SpanExporter:
    """OTLP over HTTP (protobuf); ``OTEL_EXPORTER_OTLP_HEADERS`` and friends still apply."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter: SpanExporter = OTLPSpanExporter(endpoint=url)
    return exporter


class Tracing:
    def __init__(self, settings: Settings, exporter: SpanExporter, *, batch: bool = True) -> None:
        resource = Resource.create({"service.name": settings.telemetry.service_name})
        self.provider = TracerProvider(resource=resource)
        # Batched: spans leave in the background, never on the request's path.
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("gearshift")
        self.models = {m.name: m for m in settings.models}
        self._propagator = TraceContextTextMapPropagator()
        self._spans: dict[str, trace.Span] = {}  # request id -> its open request span

    def start_request(
        self, request_id: str, model: str, traceparent: str | None, ts: float
    ) -> None:
        if request_id in self._spans:
            return
        parent = self._propagator.extract({"traceparent": traceparent}) if traceparent else None
        self._spans[request_id] = self.tracer.start_span(
            f"chat {model}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=int(ts * 1e9),
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": model},
        )

    async def attempt(
        self, request_id: str, model: ModelConfig, attempt: int, call: Awaitable[T]
    ) -> T:
        """Run one upstream call inside its own span, carrying that span's ``traceparent``."""
        parent = self._spans.get(request_id)
        span = self.tracer.start_span(
            f"chat {model.upstream_model}",
            context=trace.set_span_in_context(parent) if parent is not None else None,
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDER_NAMES[model.provider],
                "gen_ai.system": PROVIDER_NAMES[model.provider],
                "gen_ai.request.model": model.upstream_model,
                "gearshift.model": model.name,
                "gearshift.attempt": attempt,
            },
        )
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        token = TRACEPARENT.set(carrier.get("traceparent"))
        try:
            return await call
        except UpstreamError as exc:
            span.set_status(Status(StatusCode.ERROR, exc.message[:300]))
            span.set_attribute("error.type", str(exc.upstream_status or type(exc).__name__))
            raise
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.set_attribute("error.type", type(exc).__name__)
            raise
        finally:
            TRACEPARENT.reset(token)
            span.end()

    def finish(self, record: LedgerRecord) -> None:
        """End the request's span with what its ledger row says."""
        span = self._spans.pop(record.id, None)
        if span is None:  # refused before it was planned
            self.start_request(record.id, record.requested_model, None, record.ts)
            span = self._spans.pop(record.id)
        span.set_attributes(_attributes(record, self.models.get(record.served_model or "")))
        if record.outcome not in ("ok", "cache_hit"):
            span.set_status(Status(StatusCode.ERROR, (record.error or record.outcome)[:300]))
            span.set_attribute("error.type", str(record.status))
        end = record.ts + (record.latency_ms or 0.0) / 1000
        span.end(end_time=int(end * 1e9))

    def shutdown(self) -> None:
        """Export what is still queued, then stop."""
        self.provider.shutdown()


def _attributes(record: LedgerRecord, served: ModelConfig | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.usage.input_tokens": record.prompt_tokens,
        "gen_ai.usage.output_tokens": record.completion_tokens,
        "gearshift.request_id": record.id,
        "gearshift.dialect": record.dialect,
        "gearshift.outcome": record.outcome,
        "gearshift.cost_usd": float(record.cost_usd),
        "gearshift.saved_usd": float(record.counterfactual_cost_usd - record.cost_usd),
        "gearshift.stream": record.stream,
        "http.response.status_code": record.status,
    }
    if served is not None:
        provider = PROVIDER_NAMES[served.provider]
        attrs["gen_ai.provider.name"] = attrs["gen_ai.system"] = provider
        attrs["gen_ai.response.model"] = served.upstream_model
        attrs["gearshift.served_model"] = served.name
    if record.router:
        attrs["gearshift.router"] = record.router
    if record.chosen_model:
        attrs["gearshift.chosen_model"] = record.chosen_model
        quality = record.predicted.get(record.chosen_model)
        if quality is not None:
            attrs["gearshift.predicted_quality"] = quality
    if record.fallbacks:
        attrs["gearshift.fallbacks"] = list(record.fallbacks)
    if record.key_id:
        attrs["gearshift.key_id"] = record.key_id
    if record.ttfb_ms is not None:
        attrs["gearshift.ttfb_ms"] = record.ttfb_ms
    return attrs
