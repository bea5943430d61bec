"""Property-based fuzzing of every route and dialect, on a real gearshift (uvicorn on loopback,
the real policy engine and SQLite ledger) in front of the three fake upstreams.

Each case picks a route from the app's own route table (so a route added later is fuzzed too),
fills its path parameters, and sends a plausible body for that dialect after 0-3 random
mutations, raw bytes, or nothing, with random gearshift headers. The properties:

- no response has status 500, and no exception is logged (an internal error is a bug of ours,
  whatever the input, also when it happens mid-stream after a 200);
- no request hangs (each must be answered within ``CASE_TIMEOUT_S``);
- every 4xx/5xx body is in the route's own dialect shape (OpenAI, Anthropic or Bedrock);
- every request to a chat route whose body parses as JSON is exactly one ledger row (served,
  refused as invalid, by policy, or failed), under the id the response's ``x-request-id`` gives.

``GEARSHIFT_FUZZ_CASES`` sets the number of cases (5,000 by default, as in CI; ``make fuzz`` runs
more); the seed is fixed, so a run is reproducible. Failures are collected rather than shrunk, so
one run reports every distinct problem it met.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from tests.conftest import UvicornThread
from tests.dialects import fuzz_bodies as bodies
from tests.dialects.conftest import mixed_config

from gearshift.api.app import GearshiftApp, create_app
from gearshift.api.http import MethodNotAllowed, Route
from gearshift.api.pipeline import Gateway
from gearshift.config import parse_settings
from gearshift.errors import InvalidRequest
from gearshift.ledger.record import LedgerRecord
from gearshift.policy import create_policy

CASES = int(os.environ.get("GEARSHIFT_FUZZ_CASES", "5000"))
SEED = 20261205
CASE_TIMEOUT_S = 10.0
# Paths no route serves, per dialect family: their 404/405 must still be in the family's shape.
UNROUTED = [
    ("POST", "/model/x"),
    ("POST", "/model/a/b/c/d/converse"),
    ("GET", "/model/br/converse"),
    ("POST", "/v1/messages/x"),
    ("GET", "/v1/messages"),
    ("POST", "/v1/nothing"),
    ("DELETE", "/v1/chat/completions"),
    ("GET", "/dashboard/static/"),
    ("GET", "/"),
]
# The body strategy for each POST route template; any other POST route gets arbitrary JSON.
POST_BODIES: dict[str, Any] = {
    "/v1/chat/completions": bodies.openai_chat(),
    "/v1/embeddings": bodies.openai_embeddings(),
    "/v1/messages": bodies.anthropic_messages(),
    "/v1/messages/count_tokens": bodies.anthropic_messages(count_tokens=True),
    "converse": bodies.bedrock_converse(),
    "converse-stream": bodies.bedrock_converse(),
    "invoke": bodies.bedrock_invoke(),
    "invoke-with-response-stream": bodies.bedrock_invoke(),
}
PARAM_VALUES = {
    "model": bodies.MODEL_NAMES | st.text(max_size=20),
    "name": st.sampled_from(["dashboard.js", "dashboard.css", "dashboard.html", "nope.js", ".."]),
}
QUERY_KEYS = ["since", "until", "by", "format", "team", "model", "limit"]
# Header values as a client can send them: printable ASCII, no surrounding blanks.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(
    str.strip
)


def dialect_of_error(response: Route | httpx.Response) -> str:
    """Which dialect an error answer is in: ``openai``, ``anthropic``, ``bedrock`` or
    ``unknown``. Given a route, the dialect its own error renderer speaks."""
    if isinstance(response, Route):
        rendered = response.errors(InvalidRequest("probe"), None)
        body: Any = orjson.loads(rendered.body)
        headers = {k.decode(): v.decode() for k, v in rendered.headers}
    else:
        try:
            body = response.json()
        except ValueError:
            return "unknown"
        headers = dict(response.headers)
    if not isinstance(body, dict):
        return "unknown"
    error = body.get("error")
    if body.get("type") == "error" and isinstance(error, dict):
        ok = isinstance(error.get("type"), str) and isinstance(error.get("message"), str)
        return "anthropic" if ok else "unknown"
    if isinstance(error, dict):
        ok = isinstance(error.get("message"), str) and isinstance(error.get("type"), str)
        return "openai" if ok else "unknown"
    if isinstance(body.get("message"), str) and "x-amzn-errortype" in headers:
        return "bedrock"
    return "unknown"


def family_of(path: str) -> str:
    """The dialect a path belongs to when no route matches it."""
    if path.startswith("/model/"):
        return "bedrock"
    if path.startswith("/v1/messages"):
        return "anthropic"
    return "openai"


@dataclass(repr=False)
class FuzzRun:
    app: GearshiftApp
    url: str
    records: list[LedgerRecord]
    routes: list[Route]
    dialects: dict[str, str]  # route path template -> the dialect of its errors
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)  # kind -> one example
    crashes: list[str] = field(default_factory=list)  # where logged exceptions were raised
    owed_rows: list[str] = field(default_factory=list)  # request ids owed a ledger row
    cases: int = 0

    def fail(self, kind: str, example: str) -> None:
        self.failures.setdefault(kind, example)


@pytest.fixture
def fuzz_gateway(upstreams: dict[str, Any], aws_env: None, tmp_path: Any) -> Iterator[FuzzRun]:
    config = mixed_config(
        upstreams["oa"].base_url,
        upstreams["an"].url,
        upstreams["br"].url,
        f"sqlite:///{tmp_path}/fuzz.db",
    )
    config["policy"] = {
        "auth": "optional",
        "budgets": [
            {"name": "fuzz-team", "scope": {"team": "fuzz"}, "period": "day", "limit_usd": 1}
        ],
    }
    config["routers"][0]["targets"] = {"avg_cost_per_request_usd": 0.001, "window_requests": 50}
    # The fakes keep every request they get unless told not to (thousands of cases add up); they
    # are shared by the session, so recording is switched back on afterwards.
    recording = {name: upstream.record for name, upstream in upstreams.items()}
    for upstream in upstreams.values():
        upstream.record = False
    settings_ = parse_settings(config)
    records: list[LedgerRecord] = []
    gateway = Gateway(settings_, policy=create_policy(settings_), observers=[records.append])
    app = create_app(settings_, gateway=gateway)
    routes = app.routes.table()
    dialects = {r.path: dialect_of_error(r) for r in routes}
    run = FuzzRun(app, "", records, routes, dialects)
    catcher = _CrashCatcher(run.crashes)
    logging.getLogger("gearshift").addHandler(catcher)
    try:
        with UvicornThread(app) as server:
            run.url = server.url
            yield run
    finally:
        logging.getLogger("gearshift").removeHandler(catcher)
        for name, upstream in upstreams.items():  # shared with the tests that follow
            upstream.record = recording[name]


class _CrashCatcher(logging.Handler):
    """Names where each logged exception was raised (``TypeError at codec.py:152``), so a
    500 is reported by its cause rather than by the random path that hit it."""

    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = (
                f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else "?"
            )
            self.sink.append(f"{exc.__class__.__name__} at {where}")


@st.composite
def fuzz_case(draw: st.DrawFn, run: FuzzRun) -> tuple[str, str, bytes | None, dict[str, str], str]:
    """(method, path, body, headers, expected error dialect)."""
    headers: dict[str, str] = {}
    if draw(st.integers(0, 9)) == 0:
        method, path = draw(st.sampled_from(UNROUTED))
        body = draw(st.none() | st.binary(max_size=20))
        return method, path, body, headers, family_of(path)
    route = draw(st.sampled_from(run.routes))
    path = "/" + "/".join(
        draw(_segment(name)) if name is not None else literal for name, literal in _template(route)
    )
    if route.method != "POST":
        query = draw(st.dictionaries(st.sampled_from(QUERY_KEYS), header_text, max_size=3))
        if query:
            path += "?" + "&".join(f"{k}={quote(v)}" for k, v in query.items())
        return route.method, path, None, headers, run.dialects[route.path]
    operation = route.path.rsplit("/", 1)[-1] if route.path.startswith("/model/") else route.path
    strategy = POST_BODIES.get(operation, bodies.any_json)
    shape = draw(st.integers(0, 19))
    body: bytes | None
    if shape == 0:
        body = draw(st.binary(max_size=40))
    elif shape == 1:
        body = None
    else:
        # json, not orjson: integers past 64 bits are part of the fuzz.
        body = json.dumps(draw(bodies.mutated(strategy))).encode()
    if draw(st.booleans()):
        headers["x-gearshift-tags"] = draw(
            st.sampled_from(["team=fuzz", "feature=a,team=b"]) | header_text
        )
    if draw(st.integers(0, 3)) == 0:
        headers["x-gearshift-quality-tolerance"] = draw(
            st.sampled_from(["0", "0.1", "1", "-1", "nan", "inf", ""]) | header_text
        )
    if draw(st.integers(0, 3)) == 0:
        token = draw(st.sampled_from(["gs-unknown", ""]) | header_text)
        headers["authorization"] = f"Bearer {token}".strip()
    if draw(st.integers(0, 5)) == 0:
        headers["anthropic-beta"] = draw(header_text)
    return route.method, path, body, headers, run.dialects[route.path]


def _template(route: Route) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    for part in route.path.strip("/").split("/"):
        if part.startswith("{") and part.endswith("}"):
            out.append((part[1:-1], ""))
        else:
            out.append((None, part))
    return out


def _segment(name: str) -> st.SearchStrategy[str]:
    if name.startswith("modelId"):
        values = bodies.BEDROCK_IDS.map(lambda v: v.rsplit("/", 1)[-1]) | st.text(max_size=20)
    else:
        values = PARAM_VALUES.get(name, st.text(max_size=20))
    return values.map(lambda v: quote(v, safe=":") or "x")


def check(run: FuzzRun, client: httpx.Client, case: tuple[Any, ...]) -> None:
    method, path, body, headers, dialect = case
    run.cases += 1
    example = f"{method} {path} {headers} body={body[:300] if body else body!r}"
    try:
        response = client.request(method, path, content=body, headers=headers)
    except httpx.TimeoutException:
        run.fail(f"hang: {method} {path.split('?')[0][:40]}", example)
        return
    except httpx.HTTPError as exc:
        run.fail(f"transport: {exc.__class__.__name__}", f"{example}: {exc}")
        return
    run.statuses[(method + " " + path.split("?")[0][:60], response.status_code)] += 1
    status = response.status_code
    if status == 500:
        where = run.crashes.pop() if run.crashes else f"{method} {path.split('?')[0][:40]}"
        run.fail(f"500: {where}", f"{example} -> {response.text[:300]}")
    while run.crashes:  # an exception logged without a 500 (mid-stream, say) is a bug too
        run.fail(f"logged exception: {run.crashes.pop()}", example)
    # Match the path the server received: the client removes dot segments (``/model/./invoke``
    # is sent as ``/model/invoke``, a 404 owed no row), so the generated path can name a route
    # that the request never reached.
    sent = response.request.url.raw_path.decode("ascii")
    if _owes_row(run, method, sent, body):
        run.owed_rows.append(response.headers.get("x-request-id", "?"))
    if status >= 400 and dialect_of_error(response) != dialect:
        got = dialect_of_error(response)
        run.fail(
            f"{got} error on a {dialect} route: {method} {path.split('?')[0][:40]} {status}",
            f"{example} -> {response.text[:300]}",
        )


@pytest.mark.slow
def test_fuzz_every_route(fuzz_gateway: FuzzRun) -> None:
    run = fuzz_gateway
    random.seed(SEED)
    with httpx.Client(base_url=run.url, timeout=CASE_TIMEOUT_S) as client:

        @seed(SEED)
        @settings(
            max_examples=CASES,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(st.data())
        def fuzz(data: st.DataObject) -> None:
            check(run, client, data.draw(fuzz_case(run)))

        fuzz()
    check_rows(run)
    print(f"\nfuzz: {run.cases} cases; statuses: {_summary(run.statuses)}")
    assert run.cases >= CASES
    assert not run.failures, "\n".join(f"{k}\n    {v}" for k, v in sorted(run.failures.items()))


def check_rows(run: FuzzRun) -> None:
    """Each request owed a row has exactly one, and no row belongs to a request not owed one."""
    owed = set(run.owed_rows)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not owed <= {r.id for r in run.records}:
        time.sleep(0.05)  # a stream's row is published just after its last byte
    counts = Counter(r.id for r in run.records)
    missing = sorted(owed - set(counts))
    doubled = sorted(i for i, n in counts.items() if n > 1)
    unowed = sorted(set(counts) - owed)
    if missing:
        run.fail("no ledger row", f"{len(missing)} requests, e.g. {missing[:5]}")
    if doubled:
        run.fail("two ledger rows", f"{len(doubled)} requests, e.g. {doubled[:5]}")
    if unowed:
        run.fail("a row for a request owed none", f"{len(unowed)}, e.g. {unowed[:5]}")


def _owes_row(run: FuzzRun, method: str, path: str, body: bytes | None) -> bool:
    """A request to a chat route (one whose route declares its ledger rows) with a body the
    gateway parses as JSON."""
    try:
        found = run.app.routes.match(method, unquote(path.split("?")[0]))
    except MethodNotAllowed:
        return False
    if found is None or found[0].ledger is None or not body:
        return False
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


def _summary(statuses: Counter[tuple[str, int]]) -> dict[int, int]:
    out: Counter[int] = Counter()
    for (_, status), n in statuses.items():
        out[status] += n
    return dict(sorted(out.items()))
