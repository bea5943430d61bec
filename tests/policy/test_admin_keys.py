"""``/admin/keys`` over real HTTP: create (team, tags, budget, model allow-list, rate limits,
expiry), list, revoke, rotate; the admin key in a header only; every action in the audit trail;
a created key works at once through the real openai SDK and its limits are enforced."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from tests.conftest import UvicornThread
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import LARGE_KEY, issue_config

from gearshift.api.app import create_app
from gearshift.config import parse_settings
from gearshift.policy.keys import KeyStore

ADMIN = "admin-secret-for-tests"
HEADERS = {"authorization": f"Bearer {ADMIN}", "x-gearshift-actor": "alice@example.com"}
HI = [{"role": "user", "content": "hello"}]


@pytest.fixture
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def start(
    upstream: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., tuple[str, str]]]:
    monkeypatch.setenv("LARGE_API_KEY", LARGE_KEY)
    monkeypatch.setenv("GS_ADMIN_KEY", ADMIN)
    servers: list[UvicornThread] = []

    def run(admin_env: str | None = "GS_ADMIN_KEY") -> tuple[str, str]:
        storage = f"sqlite:///{tmp_path}/ledger.db"
        config = issue_config(upstream.base_url, storage=storage)
        config["server"] = {"admin_key_env": admin_env} if admin_env else {}
        config["policy"] = {"auth": "required", "key_refresh_s": 0.1}
        server = UvicornThread(create_app(parse_settings(config))).start()
        servers.append(server)
        return server.url, storage

    yield run
    for server in servers:
        server.stop()


def chat(url: str, key: str, model: str = "auto") -> Any:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(model=model, messages=HI)  # type: ignore[arg-type]


def eventually(call: Callable[[], Any], timeout: float = 5.0) -> Any:
    """The gateway re-reads keys every policy.key_refresh_s; retry until the change shows."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (openai.AuthenticationError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_create_use_list_rotate_revoke_and_audit(start: Callable[..., tuple[str, str]]) -> None:
    url, storage = start()
    created = httpx.post(
        f"{url}/admin/keys",
        headers=HEADERS,
        json={
            "name": "helpdesk-prod",
            "team": "support",
            "tags": {"feature": "helpdesk"},
            "budget": "50/month",
            "models": ["auto"],
            "rpm": 600,
            "tpm": 100000,
            "expires_at": "2099-01-01T00:00:00Z",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret, key_id = body["key"], body["id"]
    assert secret.startswith("gs-") and body["team"] == "support"
    assert body["budget"] == "50/month" and body["models"] == ["auto"]
    assert body["rpm"] == 600 and body["tpm"] == 100000 and body["expires_at"] == 4070908800.0

    assert eventually(lambda: chat(url, secret)).choices[0].message.content
    # The allow-list: the router is allowed, a model named directly is not.
    with pytest.raises(openai.PermissionDeniedError) as denied:
        chat(url, secret, model="small")
    assert "may use only auto" in str(denied.value)

    listed = httpx.get(f"{url}/admin/keys", headers=HEADERS).json()["data"]
    assert [k["id"] for k in listed] == [key_id]
    assert (
        "key" not in listed[0]
        and secret not in httpx.get(f"{url}/admin/keys", headers=HEADERS).text
    )

    rotated = httpx.post(f"{url}/admin/keys/{key_id}/rotate", headers=HEADERS).json()
    new_secret = rotated["key"]
    assert new_secret != secret and rotated["id"] == key_id
    eventually(lambda: chat(url, new_secret))
    with pytest.raises(openai.AuthenticationError):
        eventually(lambda: _refused(url, secret))

    revoked = httpx.delete(f"{url}/admin/keys/{key_id}", headers=HEADERS)
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    with pytest.raises(openai.AuthenticationError):
        eventually(lambda: _refused(url, new_secret))

    trail = httpx.get(f"{url}/admin/audit", headers=HEADERS).json()["data"]
    assert [e["action"] for e in trail] == ["revoke", "rotate", "create"]
    assert all(e["key_id"] == key_id for e in trail)
    assert all(e["actor"].startswith("alice@example.com (admin key ") for e in trail)
    assert all(ADMIN not in str(e) and secret not in str(e) for e in trail)
    assert all(e["ts"] > time.time() - 60 for e in trail)
    # The CLI records into the same trail.
    store = KeyStore.open(storage)
    try:
        assert len(store.audit_log()) == 3
    finally:
        store.close()


def _refused(url: str, key: str) -> None:
    """Raise AuthenticationError once the gateway refuses the key (AssertionError until then)."""
    try:
        chat(url, key)
    except openai.AuthenticationError:
        raise
    raise AssertionError("still accepted")


def test_an_expired_key_is_refused(start: Callable[..., tuple[str, str]]) -> None:
    url, storage = start()
    store = KeyStore.open(storage)
    try:
        secret, _ = store.create(name="short-lived", expires_at=time.time() + 1.0)
    finally:
        store.close()
    eventually(lambda: chat(url, secret))
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError) as expired:
        chat(url, secret)
    assert "expired" in str(expired.value)


def test_admin_key_in_a_header_only(start: Callable[..., tuple[str, str]]) -> None:
    url, _ = start()
    assert httpx.get(f"{url}/admin/keys").status_code == 401
    wrong = httpx.get(f"{url}/admin/keys", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    in_url = httpx.get(f"{url}/admin/keys", params={"admin_key": ADMIN})
    assert in_url.status_code == 401 and "header" in in_url.json()["error"]["message"]
    assert httpx.get(f"{url}/admin/keys", headers={"x-api-key": ADMIN}).status_code == 200


def test_off_without_an_admin_key(start: Callable[..., tuple[str, str]]) -> None:
    url, _ = start(admin_env=None)
    refused = httpx.post(f"{url}/admin/keys", headers=HEADERS, json={"name": "x"})
    assert refused.status_code == 401 and "admin_key_env" in refused.json()["error"]["message"]


def test_bad_input_is_a_clear_400(start: Callable[..., tuple[str, str]]) -> None:
    url, _ = start()
    for body, needle in (
        ({"models": ["no-such"]}, "unknown router(s) or model(s): no-such"),
        ({"budget": "lots"}, "AMOUNT/PERIOD"),
        ({"rpm": 0}, "'rpm' must be a positive integer"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "in the past"),
        ({"colour": "blue"}, "unknown field(s) colour"),
    ):
        response = httpx.post(f"{url}/admin/keys", headers=HEADERS, json=body)
        assert response.status_code == 400, body
        assert needle in response.json()["error"]["message"], response.text
    missing = httpx.delete(f"{url}/admin/keys/key_missing", headers=HEADERS)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found", missing.text
    assert httpx.get(f"{url}/admin/audit", headers=HEADERS).json()["data"] == []


def test_a_keys_own_rate_limit_is_enforced(start: Callable[..., tuple[str, str]]) -> None:
    url, _ = start()
    created = httpx.post(f"{url}/admin/keys", headers=HEADERS, json={"name": "slow", "rpm": 2})
    secret = created.json()["key"]
    if time.time() % 60 > 50:  # keep the three requests inside one UTC minute
        time.sleep(61 - time.time() % 60)
    eventually(lambda: chat(url, secret))
    chat(url, secret)
    with pytest.raises(openai.RateLimitError) as limited:
        chat(url, secret)
    assert "rpm 2" in str(limited.value)
    assert int(limited.value.response.headers["retry-after"]) >= 1
