"""OpenTelemetry traces: GenAI spans for each request and each upstream attempt (fallbacks
visible), the client's W3C traceparent continued and passed upstream; checked with the SDK's
in-memory exporter and with a real OTLP/HTTP receiver on loopback decoding the protobuf."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tests.conftest import UvicornThread
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import LARGE_KEY, issue_config

from gearshift.api.app import create_app
from gearshift.config import parse_settings
from gearshift.telemetry.tracing import Tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
CHEAPEST = {"x-gearshift-quality-tolerance": "1", "traceparent": TRACEPARENT}
HI = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LARGE_API_KEY", LARGE_KEY)
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def serve(config: dict[str, Any], tracer_exporter: InMemorySpanExporter | None = None) -> Any:
    settings = parse_settings(config)
    app = create_app(settings)
    if tracer_exporter is not None:
        app.gateway.tracer = Tracing(settings, tracer_exporter, batch=False)
    return UvicornThread(app).start()


def chat(url: str, **kwargs: Any) -> Any:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0)
    return client.chat.completions.create(
        model="auto", messages=HI, extra_headers=CHEAPEST, **kwargs
    )


def test_spans_follow_genai_conventions_and_show_fallbacks(
    upstream: FakeOpenAIServer, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    config = issue_config(upstream.base_url, storage=f"sqlite:///{tmp_path}/ledger.db")
    config["models"][0]["max_retries"] = 0
    upstream.okn.fail_models = {"small": 503}  # the router's choice fails; its fallback answers
    server = serve(config, exporter)
    try:
        chat(server.url)
    finally:
        server.stop()
    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.kind == SpanKind.SERVER)
    attempts = sorted((s for s in spans if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time)
    assert request.name == "chat auto"
    # Continued from the client's trace.
    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert request.parent is not None and format(request.parent.span_id, "016x") == CLIENT_SPAN
    attrs = request.attributes or {}
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "auto"
    assert attrs["gen_ai.response.model"] == "large-2025"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.usage.input_tokens"] == 30 and attrs["gen_ai.usage.output_tokens"] == 12
    assert attrs["gearshift.router"] == "auto" and attrs["gearshift.chosen_model"] == "small"
    assert attrs["gearshift.served_model"] == "large"
    assert attrs["gearshift.fallbacks"] == ("small",)
    assert 0 <= attrs["gearshift.predicted_quality"] <= 1  # type: ignore[operator]
    assert attrs["gearshift.cost_usd"] > 0  # type: ignore[operator]
    assert "gearshift.saved_usd" in attrs
    # One child span per upstream attempt: the failed one, then the fallback.
    assert [s.name for s in attempts] == ["chat small", "chat large-2025"]
    assert attempts[0].status.status_code == StatusCode.ERROR
    assert (attempts[0].attributes or {})["error.type"] == "503"
    assert attempts[1].status.status_code != StatusCode.ERROR
    for attempt in attempts:
        assert attempt.parent is not None and attempt.parent.span_id == request.context.span_id
    # Each attempt's own context went upstream as traceparent.
    sent = [r.headers.get("traceparent") for r in upstream.received]
    assert sent == [f"00-{TRACE_ID}-{format(a.context.span_id, '016x')}-01" for a in attempts]


def test_streams_and_refusals_are_spans_too(upstream: FakeOpenAIServer, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    server = serve(issue_config(upstream.base_url, storage=f"sqlite:///{tmp_path}/l.db"), exporter)
    try:
        list(chat(server.url, stream=True))
        with pytest.raises(openai.NotFoundError):
            openai.OpenAI(
                base_url=f"{server.url}/v1", api_key="x", max_retries=0
            ).chat.completions.create(
                model="nope",
                messages=HI,  # type: ignore[arg-type]
            )
    finally:
        server.stop()
    spans = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [s.name for s in spans] == ["chat auto", "chat nope"]
    assert (spans[0].attributes or {})["gearshift.stream"] is True
    assert (spans[0].attributes or {})["gen_ai.usage.output_tokens"] == 12
    assert spans[1].status.status_code == StatusCode.ERROR


def test_off_by_default_passes_the_clients_traceparent(
    upstream: FakeOpenAIServer, tmp_path: Path
) -> None:
    server = serve(issue_config(upstream.base_url, storage=f"sqlite:///{tmp_path}/l.db"))
    try:
        assert server.config.app.gateway.tracer is None  # type: ignore[attr-defined]
        chat(server.url)
    finally:
        server.stop()
    assert upstream.received[-1].headers.get("traceparent") == TRACEPARENT


class _Receiver(BaseHTTPRequestHandler):
    """A minimal OTLP/HTTP collector: decodes each export request's protobuf."""

    got: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.path == "/v1/traces"
        assert self.headers["Content-Type"] == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        self.got.append(message)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    got: list[ExportTraceServiceRequest] = []
    handler = type("Receiver", (_Receiver,), {"got": got})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()


def test_spans_reach_a_real_otlp_http_receiver(
    upstream: FakeOpenAIServer,
    tmp_path: Path,
    collector: tuple[str, list[ExportTraceServiceRequest]],
) -> None:
    url, got = collector
    config = issue_config(upstream.base_url, storage=f"sqlite:///{tmp_path}/l.db")
    config["telemetry"] = {"otlp_endpoint": url, "service_name": "gearshift-test"}
    server = serve(config)
    try:
        chat(server.url)
    finally:
        server.stop()  # lifespan shutdown exports the queued spans
    spans = [
        (resource.resource, span)
        for message in got
        for resource in message.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = sorted(span.name for _, span in spans)
    assert names == ["chat auto", "chat small"]
    resource, request = next((r, s) for r, s in spans if s.name == "chat auto")
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "gearshift-test"
    assert request.trace_id.hex() == TRACE_ID
    attrs = {a.key: a.value for a in request.attributes}
    assert attrs["gen_ai.request.model"].string_value == "auto"
    assert attrs["gen_ai.response.model"].string_value == "small"
    assert attrs["gen_ai.usage.input_tokens"].int_value == 30
    assert attrs["gearshift.cost_usd"].double_value > 0
