"""``/metrics``, ``/dashboard`` and its ``/api/...`` data, in the gateway's route table.

``register(routes, gateway)`` (called by ``create_app``) also adds the metrics observer to the
gateway's pipeline. Ledger queries are blocking SQL, so they run in a worker thread, one at a time
on one connection opened on first use. When ``server.admin_key_env`` is configured, ``/metrics``
and the ``/api/...`` data need that key in a header (``Authorization: Bearer`` or ``x-api-key``),
never in the URL, where access logs and browser history would keep it; the ``/dashboard`` page
itself holds no data and asks the browser for the key. A configured variable that is unset locks
the routes rather than opening them, and so does ``policy.auth: required`` without an admin key
(every route that serves data needs a key then).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import threading
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from gearshift.analytics.metrics import Metrics
from gearshift.analytics.metrics_shared import metrics_for
from gearshift.api.http import Request, Response, RouteNotFound, Routes
from gearshift.config import Settings
from gearshift.errors import AuthenticationError, InvalidRequest

if TYPE_CHECKING:
    from gearshift.analytics.db import LedgerDB
    from gearshift.api.pipeline import Gateway

STATIC_FILES = {
    "dashboard.js": b"text/javascript; charset=utf-8",
    "dashboard.css": b"text/css; charset=utf-8",
}
RESERVED_PARAMS = frozenset({"since", "until", "by", "format", "where"})


def register(routes: Routes, gateway: Gateway) -> None:
    analytics = Analytics(gateway.settings)
    # Read per request: a reload may turn policy.auth to required.
    analytics.auth_required = lambda: gateway.snapshot.settings.policy.auth == "required"
    analytics.extra_metrics = getattr(gateway.policy, "prometheus", None)  # policy gauges
    analytics.metric_sources = gateway.metric_sources  # filled by later route modules too
    gateway.observers.append(analytics.metrics.observe)
    routes.add("GET", "/metrics", analytics.metrics_page)
    routes.add("GET", "/dashboard", analytics.dashboard_page)
    routes.add("GET", "/dashboard/static/{name}", analytics.static_file)
    routes.add("GET", "/api/dashboard", analytics.dashboard_api)
    routes.add("GET", "/api/report", analytics.report_api)


class Analytics:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or metrics_for()
        self.extra_metrics: Callable[[], Awaitable[str]] | None = None
        self.metric_sources: list[Callable[[], str]] = []
        self._db: LedgerDB | None = None
        self._lock = threading.Lock()
        self.auth_required: Callable[[], bool] = lambda: settings.policy.auth == "required"

    # ---- access ----------------------------------------------------------------------------

    def _check_admin(self, request: Request, query: dict[str, str]) -> None:
        if "admin_key" in query:
            raise AuthenticationError(
                "the admin key goes in a header ('Authorization: Bearer <key>' or 'x-api-key'), "
                "never in the URL, where access logs and browser history keep it"
            )
        env = self.settings.server.admin_key_env
        if not env:
            if self.auth_required():
                raise AuthenticationError(
                    "this gateway requires keys (policy.auth: required) and the metrics and "
                    "dashboard data need the admin key: set server.admin_key_env to the "
                    "environment variable holding it"
                )
            return
        expected = os.environ.get(env)
        if not expected:
            raise AuthenticationError(
                f"the dashboard is locked: server.admin_key_env names {env}, which is not set"
            )
        given = request.bearer_token() or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise AuthenticationError(
                "this needs the admin key: send 'Authorization: Bearer <key>' or 'x-api-key'"
            )

    # ---- handlers --------------------------------------------------------------------------

    async def metrics_page(self, request: Request) -> Response:
        self._check_admin(request, _query(request))
        text = self.metrics.render()
        if self.extra_metrics is not None:
            text += await self.extra_metrics()
        for source in self.metric_sources:
            text += source()
        body = text.encode()
        return Response(200, body, [(b"content-type", b"text/plain; version=0.0.4")])

    async def dashboard_page(self, request: Request) -> Response:
        # The page is a shell without data: it asks for the admin key and sends it in a header.
        return Response(200, _asset("dashboard.html"), _page_headers(b"text/html; charset=utf-8"))

    async def static_file(self, request: Request) -> Response:
        name = request.path_params.get("name", "")
        content_type = STATIC_FILES.get(name)
        if content_type is None:
            raise RouteNotFound(f"no dashboard asset named {name[:100]!r}")
        return Response(200, _asset(name), _page_headers(content_type))

    async def dashboard_api(self, request: Request) -> Response:
        query = _query(request)
        self._check_admin(request, query)
        since, until = _range(query)
        filters = _filters(request)

        def build() -> dict[str, Any]:
            from gearshift.analytics.dashboard import dashboard_data

            return dashboard_data(self._open(), self.settings, since, until, filters)

        return _exact_json(await self._run(build))

    async def report_api(self, request: Request) -> Response:
        query = _query(request)
        self._check_admin(request, query)
        since, until = _range(query)
        by = query.get("by", "model")
        filters = _filters(request)

        def build() -> dict[str, Any]:
            from gearshift.analytics import queries

            return queries.full_report(self._open(), by, since, until, filters, self.settings)

        return _exact_json(await self._run(build))

    # ---- ledger ----------------------------------------------------------------------------

    async def _run(self, build: Any) -> Any:
        def locked() -> Any:
            with self._lock:
                try:
                    return build()
                except ValueError:
                    raise  # bad input: the connection is fine
                except Exception:
                    self._forget()  # a dropped connection must not break every later call
                    raise

        try:
            return await asyncio.to_thread(locked)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    def _forget(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):  # already broken; the next call opens anew
                db.close()

    def _open(self) -> LedgerDB:
        if self._db is None:
            from gearshift.analytics.db import LedgerDB

            self._db = LedgerDB(self.settings.storage)
        return self._db


def _query(request: Request) -> dict[str, str]:
    return dict(parse_qsl(request.query.decode("latin-1")))


def _range(query: dict[str, str]) -> tuple[float | None, float | None]:
    from gearshift.analytics.queries import parse_time

    now = time.time()
    try:
        since = parse_time(query["since"], now=now) if query.get("since") else None
        until = parse_time(query["until"], now=now) if query.get("until") else None
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="since") from None
    return since, until


def _filters(request: Request) -> dict[str, str]:
    """``?where=team=support`` (repeatable, as ``gearshift report --where``), and every other
    parameter as a shorthand: ``?team=support&model=small``."""
    from gearshift.analytics.queries import parse_where

    pairs = parse_qsl(request.query.decode("latin-1"))
    filters = {k: v for k, v in pairs if k not in RESERVED_PARAMS and v}
    try:
        filters.update(parse_where((v for k, v in pairs if k == "where"), flag="where"))
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="where") from None
    return filters


def _exact_json(payload: Any) -> Response:
    from gearshift.analytics.render import to_json

    return Response(200, to_json(payload).encode(), [(b"content-type", b"application/json")])


def _page_headers(content_type: bytes) -> list[tuple[bytes, bytes]]:
    # Everything the page needs ships with it: forbid any other origin outright.
    csp = b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"
    return [(b"content-type", content_type), (b"content-security-policy", csp)]


def _asset(name: str) -> bytes:
    try:
        return resources.files("gearshift.analytics").joinpath("static", name).read_bytes()
    except FileNotFoundError:
        raise RouteNotFound(
            f"the dashboard file {name} is missing from this installation of gearshift"
        ) from None


__all__ = ["Analytics", "register"]
