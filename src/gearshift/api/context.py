"""What every dialect does the same way at the HTTP edge: build a ``RequestContext`` from the
headers (caller key, ``x-gearshift-tags``, ``x-gearshift-quality-tolerance``) and put the served
model, router, cost and savings into ``x-gearshift-*`` response headers."""

from __future__ import annotations

from decimal import Decimal

from gearshift.api.http import Headers, Request
from gearshift.api.pipeline import RequestContext, Served
from gearshift.chat import Dialect
from gearshift.errors import InvalidRequest

TAGS_HEADER = "x-gearshift-tags"
TOLERANCE_HEADER = "x-gearshift-quality-tolerance"
MAX_TAGS = 32
MAX_TAG_CHARS = 200


def parse_tags(value: str) -> dict[str, str]:
    """``feature=helpdesk,team=support`` -> ``{"feature": "helpdesk", "team": "support"}``."""
    tags: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if not sep or not key:
            raise InvalidRequest(
                f"{TAGS_HEADER} must look like 'feature=helpdesk,team=support'; got {item!r}",
                param=TAGS_HEADER,
            )
        if len(key) > MAX_TAG_CHARS or len(val) > MAX_TAG_CHARS:
            raise InvalidRequest(
                f"{TAGS_HEADER}: keys and values are limited to {MAX_TAG_CHARS} characters",
                param=TAGS_HEADER,
            )
        tags[key] = val
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"{TAGS_HEADER}: at most {MAX_TAGS} tags", param=TAGS_HEADER)
    return tags


def parse_tolerance(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        tolerance = float(value)
    except ValueError:
        tolerance = -1.0
    if not 0.0 <= tolerance <= 1.0:
        raise InvalidRequest(
            f"{TOLERANCE_HEADER} must be a number between 0 and 1; got {value!r}",
            param=TOLERANCE_HEADER,
        )
    return tolerance


def request_context(
    request: Request, dialect: Dialect, body_tags: dict[str, str] | None = None
) -> RequestContext:
    """The context for the pipeline. Header tags win over tags found in the body (OpenAI
    ``metadata``/``user``), since a platform team sets headers and an app sets bodies."""
    tags = dict(body_tags) if body_tags else {}
    header = request.headers.get(TAGS_HEADER)
    if header:
        tags.update(parse_tags(header))
    ctx = RequestContext(
        request_id=request.request_id,
        dialect=dialect,
        api_key=request.bearer_token(),
        tags=tags,
        tolerance=parse_tolerance(request.headers.get(TOLERANCE_HEADER)),
        ts=request.arrived,
        started=request.started,
        cache_control=(request.headers.get("cache-control") or "").lower(),
        traceparent=request.headers.get("traceparent"),
    )
    request.context = ctx
    return ctx


def edge_context(request: Request, dialect: Dialect) -> RequestContext:
    """A context for a request that failed before its dialect built one (a bad body or header):
    the headers' tags when they parse, no key (a refused request's key is never recorded)."""
    if request.context is not None:
        return request.context
    try:
        tags = parse_tags(request.headers.get(TAGS_HEADER) or "")
    except InvalidRequest:
        tags = {}
    return RequestContext(
        request_id=request.request_id,
        dialect=dialect,
        tags=tags,
        ts=request.arrived,
        started=request.started,
    )


def served_headers(served: Served, *, with_cost: bool) -> Headers:
    """``x-gearshift-*`` headers. Costs only when known before the first byte: not on a live
    stream (the ledger has them), but on a cache hit, streamed or not ($0, and its saving)."""
    headers: Headers = [(b"x-gearshift-model", served.model.encode())]
    if served.router:
        headers.append((b"x-gearshift-router", served.router.encode()))
    if served.record.fallbacks:
        headers.append((b"x-gearshift-fallbacks", ",".join(served.record.fallbacks).encode()))
    decision = served.decision
    if decision is not None:
        # The decision, explained: what each candidate was predicted to score, the tolerance
        # applied, the prompt's difficulty and kind, and the rule in words.
        predicted = ",".join(f"{name}={q:.3f}" for name, q in decision.predicted.items())
        headers += [
            (b"x-gearshift-predicted", _header_text(predicted)),
            (b"x-gearshift-tolerance", f"{decision.tolerance:g}".encode()),
            (b"x-gearshift-difficulty", f"{decision.difficulty:.3f}".encode()),
        ]
        if decision.kind:
            headers.append((b"x-gearshift-prompt-kind", _header_text(decision.kind)))
        if decision.reason:
            headers.append((b"x-gearshift-reason", _header_text(decision.reason)))
    if served.cache is not None:
        headers.append((b"x-gearshift-cache", served.cache.encode()))
    if with_cost or served.cache == "hit":
        headers.append((b"x-gearshift-cost-usd", usd(served.cost_usd).encode()))
        headers.append((b"x-gearshift-saved-usd", usd(served.saved_usd).encode()))
    return headers


def _header_text(text: str) -> bytes:
    """A header value from free text: one line, printable ASCII (other characters become '?'),
    bounded length."""
    text = text[:300]
    if text.isascii() and text.isprintable():  # ' '..'~' exactly: the usual case, in C
        return text.encode("ascii")
    clean = "".join(c if " " <= c <= "~" else "?" for c in text)
    return clean.encode("ascii")


def usd(value: Decimal) -> str:
    """A plain decimal string (no exponent), exact."""
    return format(value.normalize(), "f") if value else "0"
