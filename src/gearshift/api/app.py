"""``create_app(settings)``: the gateway as a plain ASGI application.

Routes live in a small table that each HTTP module fills through ``register(routes, gateway)``;
adding a dialect or a page is one line in ``ROUTE_MODULES``. The app reads and size-checks the
body, runs the handler while watching for the client going away (then cancels the handler, which
cancels the upstream call), adds ``x-request-id``, and renders errors in the route's dialect.
Lifespan opens the gateway (keys checked, routers built, providers pooled, ledger opened) and, on
shutdown, waits for in-flight requests (``server.shutdown_grace_s``) before flushing the ledger.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gearshift.api.context import edge_context
from gearshift.api.http import (
    JSON_CONTENT,
    ClientGone,
    MethodNotAllowed,
    Request,
    Response,
    Route,
    RouteNotFound,
    Routes,
    StreamResponse,
    json_response,
    read_body,
    too_large_message,
)
from gearshift.api.pipeline import Gateway
from gearshift.config import Settings
from gearshift.errors import GearshiftError, PayloadTooLarge

if TYPE_CHECKING:
    from gearshift.ledger import LedgerWriter
    from gearshift.policy.contract import PolicyEngine

log = logging.getLogger("gearshift.app")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Modules exposing ``register(routes, gateway)``; a module not yet present is skipped.
ROUTE_MODULES: tuple[str, ...] = (
    "gearshift.api.openai",
    "gearshift.api.anthropic",
    "gearshift.api.bedrock",
    "gearshift.api.responses",
    "gearshift.api.admin_keys",
    "gearshift.analytics.routes",
    "gearshift.learning.routes",
    "gearshift.api.health",
)


class GearshiftApp:
    def __init__(
        self, settings: Settings, gateway: Gateway, config_path: str | None = None
    ) -> None:
        self.settings = settings
        self.gateway = gateway
        # The file SIGHUP re-reads (see api/live_config.py); None: no live reload.
        self.config_path = config_path
        self._reloading: asyncio.Task[Any] | None = None
        self.routes = Routes()
        self.max_body = settings.server.max_body_bytes
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._ids = _RequestIds()
        self._writer: LedgerWriter | None = None  # opened here, so closed here
        self.routes.add("GET", "/healthz", self._healthz)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    # ---- HTTP ------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = self._ids.next()
        id_header = (b"x-request-id", request_id.encode())
        try:
            found = self.routes.match(scope["method"], scope["path"])
        except MethodNotAllowed as exc:
            await _send(send, self.routes.errors_for(scope["path"])(exc, None), id_header)
            return
        if found is None:
            missing = RouteNotFound(f"no route for {scope['method']} {scope['path'][:200]}")
            await _send(send, self.routes.errors_for(scope["path"])(missing, None), id_header)
            return
        route, params = found
        self._inflight += 1
        self._idle.clear()
        try:
            try:
                body = await self._read_body(scope, receive)
            except PayloadTooLarge as exc:
                response = route.errors(exc, None)
                response.headers.append((b"connection", b"close"))
                await _send(send, response, id_header)
                return
            except ClientGone:
                return
            request = Request(
                scope, body, params, request_id=request_id, arrived=time.time(), started=started
            )
            await self._handle(route, request, receive, send, id_header)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        if scope["method"] in ("GET", "HEAD"):
            return b""
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_body:
                    raise PayloadTooLarge(too_large_message(self.max_body))
                break
        return await read_body(receive, self.max_body)

    async def _handle(
        self,
        route: Route,
        request: Request,
        receive: Receive,
        send: Send,
        id_header: tuple[bytes, bytes],
    ) -> None:
        watcher = _DisconnectWatcher(receive)
        try:
            try:
                result = await route.handler(request)
            except GearshiftError as exc:
                watcher.stop()
                self._record_unserved(route, request, exc)
                await _send(send, route.errors(exc, request), id_header)
                return
            except asyncio.CancelledError:
                if watcher.client_gone:
                    _uncancel()
                    return  # the pipeline has recorded the disconnect
                raise
            except Exception:
                watcher.stop()
                log.exception("request %s failed", request.request_id)
                internal = GearshiftError(
                    f"internal error in the gateway; see its log for request {request.request_id}"
                )
                self._record_unserved(route, request, internal)
                await _send(send, route.errors(internal, request), id_header)
                return
            if isinstance(result, Response):
                watcher.stop()
                await _send(send, result, id_header)
                return
            await self._stream(result, send, id_header, watcher)
        finally:
            watcher.stop()

    def _record_unserved(self, route: Route, request: Request, exc: GearshiftError) -> None:
        """Every request to a chat route whose body parses is one ledger row: when it failed
        before the pipeline made that row (validation, a bad header, a bug of ours), make it
        here."""
        spec = route.ledger
        if spec is None or not request.body_is_json():
            return
        ctx = edge_context(request, spec.dialect)
        try:
            self.gateway.record_unserved(ctx, spec.model_of(request), exc)
        except Exception:
            log.exception("recording refused request %s failed", request.request_id)

    async def _stream(
        self,
        result: StreamResponse,
        send: Send,
        id_header: tuple[bytes, bytes],
        watcher: _DisconnectWatcher,
    ) -> None:
        body = result.body
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": result.status,
                    "headers": [*result.headers, id_header],
                }
            )
            async for chunk in body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            watcher.stop()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watcher.client_gone:
                raise
            _uncancel()
        except OSError:
            pass  # the socket went away under us: same as a disconnect
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _healthz(self, request: Request) -> Response:
        """Up and serving. The ledger state is reported, not failed on: while its database is
        unreachable, rows wait in the spool and nothing is lost."""
        writer = self._writer
        if writer is None:
            return json_response(200, {"status": "ok", "ledger": "ok"})
        ledger = "ok" if writer.healthy else "spooling"
        if writer.spool.disk_bytes >= writer.spool_max_bytes:
            ledger = "full"
        body = {
            "status": "ok",
            "ledger": ledger,
            "ledger_backlog_rows": writer.pending,
            "ledger_spool_bytes": writer.spool.disk_bytes,
            "ledger_refused": writer.stats.refused,
        }
        return json_response(200, body)

    # ---- lifespan --------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    text = exc.message if isinstance(exc, GearshiftError) else repr(exc)
                    await send({"type": "lifespan.startup.failed", "message": text})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        await self.gateway.open()
        if self.gateway.ledger is None:
            self._writer = await asyncio.to_thread(open_ledger, self.settings)
            self.gateway.ledger = self._writer
        self._watch_sighup()
        routers, models = self.gateway.known_names()
        log.info(
            "gearshift ready: routers %s; models %s; ledger %s",
            ", ".join(routers) or "(none)",
            ", ".join(models) or "(none)",
            self._writer.store.url if self._writer is not None else "(external)",
        )

    def _watch_sighup(self) -> None:
        import signal

        def ignored() -> None:
            log.warning("SIGHUP ignored: started without --config, there is no file to re-read")

        handler = self.reload if self.config_path is not None else ignored
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, handler)
        except (ValueError, RuntimeError, NotImplementedError):
            # Not the main thread (an embedded server): reload() is still callable directly.
            log.debug("SIGHUP not watched: not the main thread")

    def reload(self) -> asyncio.Task[Any] | None:
        """Re-read the configuration file and swap it in (what SIGHUP does); one at a time: a
        signal arriving during a reload is answered by the next one."""
        if self.config_path is None:
            return None
        from gearshift.api.live_config import reload_gateway

        previous = self._reloading

        async def run() -> dict[str, Any]:
            if previous is not None:
                await asyncio.wait([previous])
            assert self.config_path is not None
            # restart-only settings are compared with what this process started with
            return await reload_gateway(self.gateway, self.config_path, self.settings)

        self._reloading = asyncio.get_running_loop().create_task(run())
        return self._reloading

    async def shutdown(self) -> None:
        """Drain: wait for in-flight requests (up to the grace period), then flush and close."""
        grace = self.settings.server.shutdown_grace_s
        if self._inflight:
            log.info("draining %d in-flight request(s), up to %.0fs", self._inflight, grace)
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=grace)
            except TimeoutError:
                log.warning("%d request(s) still running after the grace period", self._inflight)
        await self.gateway.aclose()
        writer = self._writer
        if writer is not None:
            self._writer = None
            # Every record submitted so far is written (or spooled) before the process exits.
            await asyncio.to_thread(writer.close)
            await asyncio.to_thread(writer.store.close)


class _DisconnectWatcher:
    """Cancels the request's task when the client disconnects before the answer is complete."""

    __slots__ = ("_task", "client_gone")

    def __init__(self, receive: Receive) -> None:
        self.client_gone = False
        owner = asyncio.current_task()
        self._task: asyncio.Task[None] | None = asyncio.ensure_future(self._watch(receive, owner))

    async def _watch(self, receive: Receive, owner: asyncio.Task[Any] | None) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                self._task = None
                if owner is not None:
                    owner.cancel()
                return

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


class _RequestIds:
    """Request ids unique across processes and restarts: a random prefix plus a counter (cheaper
    than a uuid4 per request)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._n = 0

    def next(self) -> str:
        self._n += 1
        return f"{self._prefix}-{self._n:x}"


def _uncancel() -> None:
    """Forget a cancellation we caused ourselves (client gone), so later awaits in this task,
    such as closing the upstream stream, are not cut short."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        task.uncancel()


async def _send(send: Send, response: Response, id_header: tuple[bytes, bytes]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [*response.headers, id_header],
        }
    )
    await send({"type": "http.response.body", "body": response.body})


def open_ledger(settings: Settings) -> LedgerWriter:
    """The ledger store for ``settings.storage`` (migrated) behind its batching writer."""
    from gearshift.ledger import LedgerWriter, open_store

    cfg = settings.ledger
    return LedgerWriter(
        open_store(settings.storage),
        batch_size=cfg.batch_size,
        flush_interval_s=cfg.flush_interval_s,
        queue_max_rows=cfg.queue_max_rows,
        spool_max_bytes=int(cfg.spool_max_mb * 1024 * 1024),
        fsync_interval_s=cfg.spool_fsync_interval_s,
    )


def create_app(
    settings: Settings,
    *,
    gateway: Gateway | None = None,
    route_modules: tuple[str, ...] = ROUTE_MODULES,
    config_path: str | None = None,
) -> GearshiftApp:
    """Build the ASGI app. Nothing is opened until the server's lifespan startup. With
    ``config_path``, SIGHUP re-reads that file (live configuration)."""
    gateway = gateway or Gateway(settings, policy=_policy(settings))
    app = GearshiftApp(settings, gateway, config_path)
    for name in route_modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app.routes, gateway)
    return app


def _policy(settings: Settings) -> PolicyEngine:
    from gearshift.policy import create_policy

    return create_policy(settings)


__all__ = ["JSON_CONTENT", "GearshiftApp", "create_app"]
