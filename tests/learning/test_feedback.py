"""POST /v1/feedback: a key rates only its own requests; bad bodies are 400s in OpenAI's shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from tests.fakes.learning_world import world_config

from gearshift.policy.keys import KeyStore

from .conftest import ENGLISH, Gw, store_for


def _post(gw: Gw, body: Any, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{gw.url}/v1/feedback", json=body, headers=headers, timeout=10)


def _feedback_rows(url: str) -> list[tuple[Any, ...]]:
    with store_for(url) as store:
        return store.execute_read("SELECT request_id, score, source, comment FROM feedback")


def test_anonymous_caller_rates_anonymous_requests(
    start: Callable[..., Gw], ledger_url: str
) -> None:
    gw = start()
    _, model, rid = gw.ask(ENGLISH[0])
    ok = _post(gw, {"request_id": rid, "thumbs": "down", "comment": "wrong link"})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "object": "feedback",
        "request_id": rid,
        "score": 0.0,
        "model": model,
        "kind": ok.json()["kind"],
    }
    assert _post(gw, {"request_id": rid, "score": 0.75}).status_code == 200
    assert sorted(_feedback_rows(ledger_url)) == [
        (rid, 0.0, "user", "wrong link"),
        (rid, 0.75, "user", None),
    ]


def test_bad_bodies_and_unknown_ids(start: Callable[..., Gw], ledger_url: str) -> None:
    gw = start()
    _, _, rid = gw.ask(ENGLISH[0])
    cases = [
        ({"request_id": rid}, 400),
        ({"request_id": rid, "score": 1.5}, 400),
        ({"request_id": rid, "score": True}, 400),
        ({"request_id": rid, "thumbs": "sideways"}, 400),
        ({"request_id": rid, "score": 1, "thumbs": "up"}, 400),
        ({"request_id": rid, "score": 1, "comment": 5}, 400),
        ({"request_id": "", "score": 1}, 400),
        ({"request_id": rid, "score": 1, "stars": 5}, 400),
        ([1, 2], 400),
        ({"request_id": "no-such-request", "score": 1}, 404),
    ]
    for body, status in cases:
        r = _post(gw, body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["type"] in ("invalid_request_error", "not_found_error"), r.text
    bad_json = httpx.post(f"{gw.url}/v1/feedback", content=b"{nope", timeout=10)
    assert bad_json.status_code == 400
    assert _feedback_rows(ledger_url) == []


def test_a_key_rates_only_its_own_requests(
    start: Callable[..., Gw], ledger_url: str, world: Any
) -> None:
    keys = KeyStore.open(ledger_url)
    alice, _ = keys.create(team="a")
    bob, _ = keys.create(team="b")
    config = world_config(world.base_url, ledger_url)
    config["policy"] = {"auth": "optional", "key_refresh_s": 0.2}
    gw = start(config)
    _, _, mine = gw.ask(ENGLISH[0], key=alice)
    _, _, anon = gw.ask(ENGLISH[1])
    refused = _post(gw, {"request_id": mine, "score": 1}, key=bob)
    assert refused.status_code == 404
    # an unknown request id is not an unknown model: its own code, and the field it names
    assert refused.json()["error"]["code"] == "not_found", refused.text
    assert refused.json()["error"]["param"] == "request_id", refused.text
    assert _post(gw, {"request_id": mine, "score": 1}).status_code == 404
    assert _post(gw, {"request_id": anon, "score": 1}, key=alice).status_code == 404
    assert _post(gw, {"request_id": mine, "score": 1}, key=alice).status_code == 200
    assert _post(gw, {"request_id": anon, "score": 0}).status_code == 200
    assert sorted(r[:2] for r in _feedback_rows(ledger_url)) == sorted([(mine, 1.0), (anon, 0.0)])


def test_feedback_on_an_older_request_is_found_in_the_ledger(
    start: Callable[..., Gw], ledger_url: str
) -> None:
    first = start()
    _, _, rid = first.ask(ENGLISH[0])
    first.drain()
    second = start()  # another replica: it never saw the request, the ledger did
    assert _post(second, {"request_id": rid, "thumbs": "up"}).status_code == 200


def test_feedback_shows_in_reports_per_model_and_kind(
    start: Callable[..., Gw], ledger_url: str
) -> None:
    import contextlib
    import io
    import json

    from gearshift.cli.main import main

    gw = start()
    ids = [gw.ask(p)[2] for p in ENGLISH[:3]]
    for rid, score in zip(ids, (1.0, 0.25, 0.0), strict=True):
        assert _post(gw, {"request_id": rid, "score": score}).status_code == 200
    gw.drain()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["report", "--storage", ledger_url, "--format", "json"]) == 0
    feedback = json.loads(out.getvalue())["feedback"]
    assert sum(f["ratings"] for f in feedback) == 3
    assert {f["model"] for f in feedback} == {"light"}
    mean = sum(f["mean_score"] * f["ratings"] for f in feedback) / 3
    assert abs(mean - 1.25 / 3) < 1e-3
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["report", "--storage", ledger_url]) == 0
    assert "Application feedback by model and kind" in text.getvalue()
