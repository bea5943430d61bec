"""OpenTelemetry traces of the gateway, off unless configured.

``TRACEPARENT`` is the W3C ``traceparent`` the upstream call in progress carries
(``providers/upstream_http.post`` adds it to the request): the client's own when tracing is off,
so a trace the client started still spans the upstream; the upstream attempt span's when it is on.

``build_tracing(settings)`` returns ``None`` unless ``telemetry.otlp_endpoint`` or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` variables are set; only
then is the OpenTelemetry SDK (the ``otel`` extra) imported (``telemetry/tracing.py``).
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gearshift.config import Settings
    from gearshift.telemetry.tracing import Tracing

TRACEPARENT: ContextVar[str | None] = ContextVar("gearshift_traceparent", default=None)
TRACES_PATH = "/v1/traces"


def otlp_traces_url(settings: Settings) -> str | None:
    """Where spans go: the config's endpoint, else the standard variables; None when off."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    base = settings.telemetry.otlp_endpoint
    if base is None:
        signal = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if signal:
            return signal  # the signal-specific variable is the full URL, per the spec
        base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not base:
        return None
    return base if base.rstrip("/").endswith(TRACES_PATH) else base.rstrip("/") + TRACES_PATH


def build_tracing(settings: Settings) -> Tracing | None:
    url = otlp_traces_url(settings)
    if url is None:
        return None
    from gearshift.telemetry.tracing import Tracing, otlp_exporter

    return Tracing(settings, otlp_exporter(url, settings))


__all__ = ["TRACEPARENT", "build_tracing", "otlp_traces_url"]
