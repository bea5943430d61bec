"""The few HTTP pieces the gateway needs, on plain ASGI (no framework on the hot path).

A dialect module registers handlers in a ``Routes`` table; a handler takes a ``Request`` (body
already read and size-checked) and returns a ``Response`` or a ``StreamResponse``. Errors raised by
a handler are rendered by the route's own ``ErrorRenderer``, so each dialect answers in its own
error shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from gearshift.chat import Dialect
from gearshift.errors import GearshiftError, InvalidRequest, PayloadTooLarge

if TYPE_CHECKING:
    from gearshift.api.pipeline import RequestContext

Headers = list[tuple[bytes, bytes]]
JSON_CONTENT = (b"content-type", b"application/json")


class Request:
    """One inbound HTTP request with its body fully read."""

    __slots__ = (
        "arrived",
        "body",
        "context",
        "headers",
        "method",
        "path",
        "path_params",
        "query",
        "request_id",
        "scope",
        "started",
    )

    def __init__(
        self,
        scope: dict[str, Any],
        body: bytes,
        path_params: dict[str, str] | None = None,
        *,
        request_id: str = "",
        arrived: float = 0.0,
        started: float = 0.0,
    ) -> None:
        self.scope = scope
        self.request_id = request_id
        self.arrived = arrived  # wall clock (time.time) when the request came in
        self.started = started  # perf_counter at the same moment, for latencies
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: bytes = scope.get("query_string", b"")
        self.body = body
        self.path_params = path_params or {}
        # The pipeline's RequestContext, once a dialect has built it (see api/context.py).
        self.context: RequestContext | None = None
        # Header names are lower-case in ASGI; repeated headers keep the last value.
        self.headers: dict[str, str] = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())
        }

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json_or_none(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON (or JSON ``null``)."""
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None

    def body_is_json(self) -> bool:
        """Whether the body parses as JSON at all (``null`` and ``5`` included)."""
        try:
            orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return False
        return True

    def json(self) -> Any:
        """The body parsed as JSON; malformed or empty bodies are a 400, not a crash."""
        if not self.body:
            raise InvalidRequest("the request body is empty; send a JSON object")
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None

    def bearer_token(self) -> str | None:
        """The caller's key from ``Authorization: Bearer`` or ``x-api-key``."""
        auth = self.headers.get("authorization")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        return self.headers.get("x-api-key") or None


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: Headers = field(default_factory=list)


def json_response(status: int, payload: Any, headers: Headers | None = None) -> Response:
    out = [JSON_CONTENT]
    if headers:
        out.extend(headers)
    return Response(status, orjson.dumps(payload), out)


@dataclass(slots=True)
class StreamResponse:
    """A response whose body is produced chunk by chunk. ``body`` is closed (``aclose``) when the
    client goes away, which is how a dialect learns to cancel its upstream call."""

    body: AsyncIterator[bytes]
    status: int = 200
    headers: Headers = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response | StreamResponse]]
ErrorRenderer = Callable[[GearshiftError, Request | None], Response]


def openai_error_body(exc: GearshiftError) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = _OPENAI_ERROR_TYPES.get(exc.status, "api_error")
    return {"error": {"message": exc.message, "type": kind, "param": exc.param, "code": exc.code}}


_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def render_openai_error(exc: GearshiftError, request: Request | None = None) -> Response:
    headers: Headers = []
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    return json_response(exc.status, openai_error_body(exc), headers)


def body_model(request: Request) -> str:
    """The ``model`` a JSON body names ('' when none)."""
    body = request.json_or_none()
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else ""


@dataclass(slots=True, frozen=True)
class LedgerSpec:
    dialect: Dialect
    model_of: Callable[[Request], str] = body_model


@dataclass(slots=True)
class Route:
    method: str
    handler: Handler
    errors: ErrorRenderer
    path: str = ""
    # Chat routes: the dialect their ledger rows carry and where the requested model is read, so
    # a request refused before the pipeline made its row still gets one.
    ledger: LedgerSpec | None = None
    # For templated paths: literal segments, with None where a parameter goes.
    segments: tuple[str | None, ...] = ()
    params: tuple[str, ...] = ()


class Routes:
    """Method + path -> handler. Exact paths are a dict lookup; ``{name}`` segments are matched
    segment by segment (a parameter takes one whole segment of the decoded ASGI path)."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Route] = {}
        self._templated: list[Route] = []
        self._paths: set[str] = set()

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        errors: ErrorRenderer = render_openai_error,
        ledger: LedgerSpec | None = None,
    ) -> None:
        method = method.upper()
        self._paths.add(path)
        if "{" not in path:
            if (method, path) in self._exact:
                raise ValueError(f"route {method} {path} is registered twice")
            self._exact[(method, path)] = Route(method, handler, errors, path, ledger)
            return
        segments: list[str | None] = []
        params: list[str] = []
        for part in path.strip("/").split("/"):
            if part.startswith("{") and part.endswith("}"):
                segments.append(None)
                params.append(part[1:-1])
            else:
                segments.append(part)
        self._templated.append(
            Route(method, handler, errors, path, ledger, tuple(segments), tuple(params))
        )

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for ``method path``, or None. Raises ``MethodNotAllowed`` when only the
        method is wrong."""
        route = self._exact.get((method, path))
        if route is not None:
            return route, {}
        parts = path.strip("/").split("/")
        path_known = any(p == path for _, p in self._exact)
        for route in self._templated:
            if len(route.segments) != len(parts):
                continue
            values: list[str] = []
            for want, got in zip(route.segments, parts, strict=True):
                if want is None:
                    values.append(got)
                elif want != got:
                    break
            else:
                if route.method != method:
                    path_known = True
                    continue
                return route, dict(zip(route.params, values, strict=True))
        if path_known:
            raise MethodNotAllowed(f"method {method} is not allowed on {path}")
        return None

    def paths(self) -> list[str]:
        return sorted(self._paths)

    def errors_for(self, path: str) -> ErrorRenderer:
        """The error renderer for a path no route serves (404, 405): that of the route sharing
        the most leading segments with it, so ``/model/x`` is refused in Bedrock's shape and
        ``/v1/messages/x`` in Anthropic's; OpenAI's when nothing is shared."""
        parts = path.strip("/").split("/")
        best: ErrorRenderer = render_openai_error
        best_shared = 0
        for route in self.table():
            shared = 0
            for want, got in zip(_segments(route.path), parts, strict=False):
                if want is not None and want != got:
                    break
                shared += 1
            if shared > best_shared:
                best, best_shared = route.errors, shared
        return best

    def table(self) -> list[Route]:
        """Every route, exact ones first, in registration order (for tests and tooling)."""
        return [*self._exact.values(), *self._templated]


def _segments(path: str) -> list[str | None]:
    """A route template's segments, None where a parameter goes."""
    return [
        None if part.startswith("{") and part.endswith("}") else part
        for part in path.strip("/").split("/")
    ]


class MethodNotAllowed(GearshiftError):
    status = 405
    code = "method_not_allowed"


class RouteNotFound(GearshiftError):
    status = 404
    code = "not_found"


async def read_body(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int) -> bytes:
    """Read the whole request body, refusing more than ``limit`` bytes while counting (a client
    may lie in Content-Length or send none)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(too_large_message(limit))
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large_message(limit: int) -> str:
    return (
        f"the request body is larger than the gateway accepts ({limit} bytes); "
        "send less, or raise server.max_body_bytes in the configuration"
    )


class ClientGone(Exception):
    """The client disconnected before its request was complete."""
