"""The route table: exact paths, {param} segments (one whole segment each), 405 versus 404, and
no silent double registration."""

from __future__ import annotations

import pytest

from gearshift.api.http import MethodNotAllowed, Request, Response, Routes


async def _ok(request: Request) -> Response:
    return Response(200, b"ok")


def test_exact_and_templated_paths() -> None:
    routes = Routes()
    routes.add("POST", "/v1/chat/completions", _ok)
    routes.add("POST", "/model/{modelId}/converse", _ok)
    routes.add("GET", "/v1/models/{model}", _ok)
    assert routes.match("POST", "/v1/chat/completions") == (
        routes._exact[("POST", "/v1/chat/completions")],
        {},
    )
    found = routes.match("POST", "/model/amazon.nova-lite-v1:0/converse")
    assert found is not None and found[1] == {"modelId": "amazon.nova-lite-v1:0"}
    found = routes.match("GET", "/v1/models/auto")
    assert found is not None and found[1] == {"model": "auto"}
    assert routes.match("POST", "/model/a/b/converse") is None
    assert routes.match("GET", "/nowhere") is None


def test_wrong_method_is_405_not_404() -> None:
    routes = Routes()
    routes.add("POST", "/v1/chat/completions", _ok)
    routes.add("POST", "/model/{modelId}/converse", _ok)
    with pytest.raises(MethodNotAllowed):
        routes.match("GET", "/v1/chat/completions")
    with pytest.raises(MethodNotAllowed):
        routes.match("GET", "/model/x/converse")


def test_registering_a_route_twice_is_an_error() -> None:
    routes = Routes()
    routes.add("GET", "/healthz", _ok)
    with pytest.raises(ValueError, match="twice"):
        routes.add("GET", "/healthz", _ok)
