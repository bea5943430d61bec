"""Policies through a running gearshift, with the real openai, anthropic and boto3 clients: keys
with ``auth: required`` (Bedrock clients present theirs as a Bedrock API key), hard budgets
refused with 429 in each dialect's own shape, and a soft budget that routes to the lighter model."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import boto3
import httpx
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from tests.conftest import UvicornThread
from tests.fakes.openai_server import FakeOpenAIServer

from gearshift.api.app import GearshiftApp, create_app
from gearshift.config import parse_settings
from gearshift.ledger.record import LedgerRecord
from gearshift.policy import keycache
from gearshift.policy.keys import KeyStore

HI = [{"role": "user", "content": "Hi"}]


@dataclass
class Running:
    server: UvicornThread
    app: GearshiftApp
    storage: str
    records: list[LedgerRecord] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def openai(self, key: str = "sk-anything") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0)

    def anthropic(self, key: str = "sk-anything") -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=key, max_retries=0)

    def bedrock(self) -> Any:
        return boto3.client(
            "bedrock-runtime",
            endpoint_url=self.url,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def start(
    fake_upstream: FakeOpenAIServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Running]]:
    fake_upstream.reset()
    # boto3 signs with these (the gateway ignores SigV4 and reads only bearer keys).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDPOLICYTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "policy-test-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    started: list[UvicornThread] = []

    def run(
        policy: dict[str, Any],
        tolerance: float = 0.1,
        targets: dict[str, Any] | None = None,
        server: dict[str, Any] | None = None,
    ) -> Running:
        storage = f"sqlite:///{tmp_path}/ledger.db"
        base = fake_upstream.base_url
        settings = parse_settings(
            {
                "models": [
                    {
                        "name": "small",
                        "base_url": base,
                        "tier": 1,
                        "max_retries": 0,
                        "price": {"input_per_mtok": 0.25, "output_per_mtok": 1.25},
                    },
                    {
                        "name": "large",
                        "base_url": base,
                        "tier": 3,
                        "max_retries": 0,
                        "price": {"input_per_mtok": 15, "output_per_mtok": 75},
                    },
                ],
                "routers": [
                    {
                        "name": "auto",
                        "models": ["small", "large"],
                        "quality_tolerance": tolerance,
                        "targets": targets,
                    }
                ],
                "storage": storage,
                "policy": policy,
                "server": server or {},
            }
        )
        app = create_app(settings)
        running = Running(UvicornThread(app).start(), app, storage)
        started.append(running.server)
        app.gateway.observers.append(running.records.append)
        return running

    yield run
    for server in started:
        server.stop()


def new_key(storage: str, **kw: Any) -> tuple[str, str]:
    store = KeyStore.open(storage)
    try:
        secret, info = store.create(**kw)
        return secret, info.id
    finally:
        store.close()


def test_auth_required_in_every_dialect(
    start: Callable[..., Running],
) -> None:
    gs = start({"auth": "required"})
    secret, key_id = new_key(gs.storage, team="support", tags={"feature": "helpdesk"})

    with pytest.raises(openai.AuthenticationError) as oa_err:
        gs.openai("sk-live-provider-key-0123").chat.completions.create(model="small", messages=HI)
    assert "not a valid gearshift virtual key" in str(oa_err.value)
    assert "sk-live-provider-key-0123" not in str(oa_err.value.response.text)
    with pytest.raises(anthropic.AuthenticationError):
        gs.anthropic().messages.create(model="small", max_tokens=50, messages=HI)  # type: ignore[arg-type]
    with pytest.raises(ClientError) as br_err:
        gs.bedrock().converse(
            modelId="small", messages=[{"role": "user", "content": [{"text": "Hi"}]}]
        )
    # AWS answers a bad credential with 403 (AccessDenied / UnrecognizedClient), as does gearshift.
    assert br_err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "virtual key" in br_err.value.response["Error"]["Message"]

    # The key works within seconds of creation (the gateway polls the keys table).
    completion = _eventually(
        lambda: gs.openai(secret).chat.completions.create(model="small", messages=HI)
    )
    assert completion.choices[0].message.content
    gs.anthropic(secret).messages.create(model="small", max_tokens=50, messages=HI)  # type: ignore[arg-type]
    # Over HTTPS, boto3 sends AWS_BEARER_TOKEN_BEDROCK as a bearer key; on plain-HTTP loopback it
    # refuses to, so the key travels in x-api-key, added by a botocore event hook.
    bedrock = gs.bedrock()
    bedrock.meta.events.register(
        "before-send.bedrock-runtime.*",
        lambda request, **_: request.headers.__setitem__("x-api-key", secret),
    )
    bedrock.converse(modelId="small", messages=[{"role": "user", "content": [{"text": "Hi"}]}])

    ok = [r for r in gs.records if r.outcome == "ok"]
    assert len(ok) == 3
    assert {r.key_id for r in ok} == {key_id}
    assert all(r.tags["team"] == "support" and r.tags["feature"] == "helpdesk" for r in ok)
    refused = [r for r in gs.records if r.outcome != "ok"]
    assert refused and all(r.status == 401 and r.outcome == "rejected" for r in refused)
    assert all(r.key_id is None and r.cost_usd == 0 for r in refused)
    assert not any("sk-live-provider-key-0123" in (r.error or "") for r in refused)


def _eventually(call: Callable[[], Any], timeout: float = 5.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except openai.AuthenticationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# 30 prompt + 12 completion tokens on "large" = $0.00135; the budget fits two such requests.
HARD = {"budgets": [{"name": "all-traffic", "limit_usd": 0.004}], "reserve_usd": 0.0014}


def test_hard_budget_openai(start: Callable[..., Running]) -> None:
    gs = start(HARD)
    client = gs.openai()
    for _ in range(2):
        client.chat.completions.create(model="large", messages=HI)
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="large", messages=HI)
    err = exc.value
    assert err.status_code == 429
    body = err.response.json()["error"]
    assert body["code"] == "budget_exceeded"
    # $0.0027 spent of $0.004: refused on spend + estimate, not exhausted
    assert body["message"].startswith(
        "budget 'all-traffic' (all traffic) would be exceeded: $0.0027 spent this month"
        " + ~$0.0014 estimated for this request > $0.004; it resets at "
    )
    assert int(err.response.headers["retry-after"]) > 0
    rejected = [r for r in gs.records if r.outcome == "rejected"]
    assert len(rejected) == 1 and rejected[0].status == 429
    assert sum(r.cost_usd for r in gs.records) == 2 * r_cost()

    # Streams are held to the same budget.
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="large", messages=HI, stream=True)


def test_spent_budget_is_exhausted_openai(start: Callable[..., Running]) -> None:
    """Two requests spend the limit exactly: the third is refused as exhausted."""
    gs = start({"budgets": [{"name": "all-traffic", "limit_usd": 0.0027}], "reserve_usd": 0.0014})
    client = gs.openai()
    for _ in range(2):
        client.chat.completions.create(model="large", messages=HI)
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="large", messages=HI)
    assert exc.value.response.json()["error"]["message"].startswith(
        "budget 'all-traffic' (all traffic) is exhausted: $0.0027 of $0.0027 spent this month;"
        " it resets at "
    )


def r_cost() -> Any:
    from decimal import Decimal

    return Decimal("0.00135")


def test_hard_budget_anthropic(start: Callable[..., Running]) -> None:
    gs = start(HARD)
    client = gs.anthropic()
    for _ in range(2):
        client.messages.create(model="large", max_tokens=50, messages=HI)  # type: ignore[arg-type]
    with pytest.raises(anthropic.RateLimitError) as exc:
        client.messages.create(model="large", max_tokens=50, messages=HI)  # type: ignore[arg-type]
    body = exc.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "all-traffic" in body["error"]["message"] and "resets at" in body["error"]["message"]


def test_hard_budget_bedrock(start: Callable[..., Running]) -> None:
    gs = start(HARD)
    client = gs.bedrock()
    msgs = [{"role": "user", "content": [{"text": "Hi"}]}]
    for _ in range(2):
        client.converse(modelId="large", messages=msgs)
    with pytest.raises(ClientError) as exc:
        client.converse(modelId="large", messages=msgs)
    err = exc.value.response
    assert err["Error"]["Code"] == "ThrottlingException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert "all-traffic" in err["Error"]["Message"]
    with pytest.raises(ClientError) as stream_exc:
        client.converse_stream(modelId="large", messages=msgs)
    assert stream_exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


PROOF = "Prove that there are infinitely many primes, rigorously."


def _ask(gs: Running, dialect: str) -> None:
    if dialect == "openai":
        gs.openai().chat.completions.create(
            model="auto", messages=[{"role": "user", "content": PROOF}]
        )
    elif dialect == "anthropic":
        gs.anthropic().messages.create(
            model="auto", max_tokens=50, messages=[{"role": "user", "content": PROOF}]
        )
    else:
        gs.bedrock().converse(
            modelId="auto", messages=[{"role": "user", "content": [{"text": PROOF}]}]
        )


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "bedrock"])
def test_soft_budget_routes_to_the_lighter_model(
    start: Callable[..., Running], dialect: str
) -> None:
    policy = {
        "budgets": [{"name": "soft", "limit_usd": 10, "soft_limit_usd": 0.002}],
        "reserve_usd": 0.0014,
    }
    gs = start(policy, tolerance=0.0)  # tolerance 0: always the best predicted model
    for i in range(4):
        _ask(gs, dialect)
        while len(gs.records) <= i:  # settled (and counted) before the next request
            time.sleep(0.01)
    # Two requests on "large" cross $0.002; from then on only the lighter model is allowed.
    assert [r.served_model for r in gs.records] == ["large", "large", "small", "small"]
    assert [r.chosen_model for r in gs.records] == ["large", "large", "small", "small"]


def test_key_revoked_while_the_gateway_runs(
    start: Callable[..., Running], capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    from gearshift.cli.main import main

    gs = start({"auth": "required", "key_refresh_s": 0.2})
    config = tmp_path / "gearshift.yaml"
    config.write_text(f"storage: {gs.storage}\n")
    assert main(["keys", "create", "--team", "ops", "--config", str(config), "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    client = gs.openai(created["key"])
    _eventually(lambda: client.chat.completions.create(model="small", messages=HI))

    assert main(["keys", "revoke", created["id"], "--config", str(config)]) == 0
    deadline = time.monotonic() + 5
    while True:  # the gateway notices within about key_refresh_s, with no restart
        try:
            client.chat.completions.create(model="small", messages=HI)
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "revoked key still accepted after 5 s"
        time.sleep(0.05)


def test_cost_target_steers_the_running_gateway(start: Callable[..., Running]) -> None:
    # $0.0003 per request sits between small ($0.0000225) and large ($0.00135).
    targets = {
        "avg_cost_per_request_usd": 0.0003,
        "max_quality_tolerance": 1.0,
        "window_requests": 20,
    }
    gs = start({}, tolerance=0.0, targets=targets)
    client = gs.openai()
    for _ in range(60):
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": PROOF}])
    served = [r.served_model for r in gs.records]
    assert served[:20] == ["large"] * 20  # the router's own choice until the controller has data
    assert set(served[-20:]) == {"small"}  # then the tolerance rises until the target holds
    policy = gs.app.gateway.policy
    [status] = policy.controllers_status()  # type: ignore[attr-defined]
    assert status["router"] == "auto" and status["state"] == "ok"
    assert status["effective_tolerance"] > 0
    assert gs.records[-1].tolerance == pytest.approx(status["effective_tolerance"], abs=1e-3)


def test_metrics_carry_controller_and_budget_gauges(start: Callable[..., Running]) -> None:
    targets = {"avg_cost_per_request_usd": 0.0003, "window_requests": 20}
    gs = start(HARD, tolerance=0.0, targets=targets)
    client = gs.openai()
    client.chat.completions.create(model="auto", messages=HI)
    with urllib.request.urlopen(f"{gs.url}/metrics") as resp:
        text = resp.read().decode()
    assert 'gearshift_controller_tolerance{router="auto"} 0' in text
    assert 'gearshift_controller_state{router="auto",state="warming_up"} 1' in text
    assert 'gearshift_budget_limit_usd{budget="all-traffic"} 0.004' in text
    spent = [line for line in text.splitlines() if line.startswith("gearshift_budget_spent_usd")]
    assert spent and float(spent[0].split()[-1]) > 0


# ---- keys mean what they say ---------------------------------------------------------------
# A presented gearshift key that is unknown or revoked is refused (401; Bedrock 403) under
# ``auth: optional`` too, never served as anonymous; a new key works the moment it is created
# (looked up on a cache miss, misses cached briefly); under ``auth: required`` the model list and
# token counts need a key as well.

UNKNOWN = "gs-0123456789abcdefghijklmnopqrstuv"


def test_unknown_and_revoked_keys_are_refused_under_optional_auth(
    start: Callable[..., Running],
) -> None:
    gs = start({"auth": "optional"})
    # No key, or a placeholder that is not a gearshift key: anonymous.
    assert gs.openai("sk-anything").chat.completions.create(model="small", messages=HI).choices
    assert httpx.post(
        f"{gs.url}/v1/chat/completions", json={"model": "small", "messages": HI}
    ).is_success

    with pytest.raises(openai.AuthenticationError):
        gs.openai(UNKNOWN).chat.completions.create(model="small", messages=HI)
    with pytest.raises(anthropic.AuthenticationError):
        gs.anthropic(UNKNOWN).messages.create(model="small", max_tokens=5, messages=HI)  # type: ignore[arg-type]
    converse = httpx.post(
        f"{gs.url}/model/small/converse",
        json={"messages": [{"role": "user", "content": [{"text": "Hi"}]}]},
        headers={"x-api-key": UNKNOWN},
    )
    assert converse.status_code == 403
    assert converse.headers["x-amzn-errortype"] == "AccessDeniedException"

    secret, key_id = new_key(gs.storage, name="soon-revoked")
    served = gs.openai(secret).chat.completions.with_raw_response.create(model="small", messages=HI)
    assert served.http_response.status_code == 200
    store = KeyStore.open(gs.storage)
    try:
        store.revoke(key_id)
    finally:
        store.close()
    time.sleep(1.5)  # the gateway re-reads the keys table every policy.key_refresh_s (1 s)
    with pytest.raises(openai.AuthenticationError):
        gs.openai(secret).chat.completions.create(model="small", messages=HI)

    rows = {r.id: r for r in gs.records}
    refused = [r for r in rows.values() if r.outcome == "rejected"]
    assert len(refused) == 4 and all(r.status == 401 and r.key_id is None for r in refused)
    assert [r.key_id for r in rows.values() if r.outcome == "ok"] == [None, None, key_id]


def test_a_new_key_works_at_once(start: Callable[..., Running]) -> None:
    # A poll far slower than the test: only the lookup on a cache miss can let the key in.
    gs = start({"auth": "required", "key_refresh_s": 60})
    with pytest.raises(openai.AuthenticationError):
        gs.openai(UNKNOWN).chat.completions.create(model="small", messages=HI)
    secret, key_id = new_key(gs.storage, team="support")
    completion = gs.openai(secret).chat.completions.create(model="small", messages=HI)
    assert completion.choices[0].message.content
    assert gs.records[-1].key_id == key_id and gs.records[-1].tags["team"] == "support"


def test_a_missing_key_is_cached_briefly(
    start: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    gs = start({"auth": "required", "key_refresh_s": 60})
    lookups: list[str] = []
    original = KeyStore.find_active

    def counting(self: KeyStore, key_hash: str) -> object:
        lookups.append(key_hash)
        return original(self, key_hash)

    monkeypatch.setattr(KeyStore, "find_active", counting)
    for _ in range(5):
        with pytest.raises(openai.AuthenticationError):
            gs.openai(UNKNOWN).chat.completions.create(model="small", messages=HI)
    assert len(lookups) == 1  # one query, then the negative cache answers
    # A key created after the refusal works once the miss has expired (at most NEGATIVE_TTL_S).
    secret, _ = new_key(gs.storage)
    deadline = time.monotonic() + keycache.NEGATIVE_TTL_S + 2
    while True:
        try:
            gs.openai(secret).chat.completions.create(model="small", messages=HI)
            break
        except openai.AuthenticationError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_every_api_route_needs_a_key_under_required_auth(start: Callable[..., Running]) -> None:
    gs = start({"auth": "required"})
    secret, _ = new_key(gs.storage)
    count_body = {"model": "small", "messages": HI}
    for method, path, body in (
        ("GET", "/v1/models", None),
        ("GET", "/v1/models/small", None),
        ("POST", "/v1/messages/count_tokens", count_body),
    ):
        bare = httpx.request(method, gs.url + path, json=body)
        assert bare.status_code == 401, path
        keyed = httpx.request(
            method, gs.url + path, json=body, headers={"authorization": f"Bearer {secret}"}
        )
        assert keyed.status_code == 200, (path, keyed.text)
    assert httpx.get(gs.url + "/healthz").status_code == 200  # load balancers need no key


def test_bedrock_refuses_an_unknown_key_with_403(start: Callable[..., Running]) -> None:
    gs = start({"auth": "optional"})
    client = gs.bedrock()
    client.meta.events.register(
        "before-send.bedrock-runtime.*",
        lambda request, **_: request.headers.__setitem__("x-api-key", UNKNOWN),
    )
    with pytest.raises(ClientError) as refused:
        client.converse(modelId="small", messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# Keys mean what they say on every route (issue 15): an expired key, however it was created, is
# refused like a revoked one in every dialect; under ``auth: required`` nothing but the health
# checks answers without a key; a key revoked or rotated over /admin/keys stops at once.

KEY_ROUTES: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("POST", "/v1/chat/completions", {"model": "small", "messages": HI}),
    ("POST", "/v1/embeddings", {"model": "small", "input": "hello"}),
    ("POST", "/v1/responses", {"model": "small", "input": "hello"}),
    ("POST", "/v1/messages", {"model": "small", "max_tokens": 5, "messages": HI}),
    ("POST", "/v1/messages/count_tokens", {"model": "small", "messages": HI}),
    (
        "POST",
        "/model/small/converse",
        {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]},
    ),
    ("POST", "/v1/feedback", {"request_id": "req_someone_elses", "score": 1}),
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/small", None),
)


def refused_everywhere(gs: Running, key: str | None) -> None:
    """Every key-taking route refuses ``key`` (None: no key) in its own dialect."""
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    for method, path, body in KEY_ROUTES:
        answer = httpx.request(method, gs.url + path, json=body, headers=headers)
        if path.startswith("/model/"):  # Bedrock: as AWS answers a bad credential
            assert answer.status_code == 403, (path, answer.text)
            assert answer.headers["x-amzn-errortype"] == "AccessDeniedException"
        else:
            assert answer.status_code == 401, (path, answer.text)
            assert answer.json()["error"]["type"] == "authentication_error", path
        if key is not None:
            assert key not in answer.text  # never echoed


def test_an_expired_cli_key_is_refused_on_every_route_under_optional_auth(
    start: Callable[..., Running], capsys: pytest.CaptureFixture[str]
) -> None:
    from gearshift.cli.main import main

    gs = start({"auth": "optional", "key_refresh_s": 60})
    assert main(["keys", "create", "--expires", "3s", "--storage", gs.storage, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    secret = created["key"]
    assert created["expires_at"] > time.time() and created["expired"] is False
    # It works at once (found on a cache miss; the poll is a minute away), attributed to its id.
    served = gs.openai(secret).chat.completions.create(model="small", messages=HI)
    assert served.choices and gs.records[-1].key_id == created["id"]
    time.sleep(max(0.0, created["expires_at"] - time.time()) + 0.05)
    with pytest.raises(openai.AuthenticationError) as expired:
        gs.openai(secret).chat.completions.create(model="small", messages=HI)
    assert "expired" in str(expired.value)
    with pytest.raises(anthropic.AuthenticationError):
        gs.anthropic(secret).messages.create(model="small", max_tokens=5, messages=HI)  # type: ignore[arg-type]
    refused_everywhere(gs, secret)
    # A request with no key is still anonymous under auth: optional.
    assert httpx.post(f"{gs.url}/v1/chat/completions", json={"model": "small", "messages": HI})
    assert main(["keys", "list", "--storage", gs.storage]) == 0
    assert "expired" in capsys.readouterr().out


def test_every_route_needs_a_key_under_required_auth(start: Callable[..., Running]) -> None:
    gs = start({"auth": "required"})
    refused_everywhere(gs, None)
    refused_everywhere(gs, UNKNOWN)
    secret, _ = new_key(gs.storage)
    for method, path, body in KEY_ROUTES:
        keyed = httpx.request(
            method, gs.url + path, json=body, headers={"authorization": f"Bearer {secret}"}
        )
        # Served, or refused for another reason than the key (someone else's feedback id).
        assert keyed.status_code in (200, 404), (path, keyed.text)
        assert keyed.status_code == 200 or path == "/v1/feedback", (path, keyed.text)
    # Metrics and dashboard data need the admin key; with none configured they are locked,
    # not open, and a virtual key does not open them.
    for path in ("/metrics", "/api/dashboard", "/api/report"):
        for headers in ({}, {"authorization": f"Bearer {secret}"}):
            locked = httpx.get(gs.url + path, headers=headers)
            assert locked.status_code == 401, (path, locked.text)
            assert "admin_key_env" in locked.json()["error"]["message"]
    for path in ("/healthz", "/healthz/live", "/healthz/ready"):
        assert httpx.get(gs.url + path).status_code == 200, path  # load balancers need no key


def test_a_key_revoked_or_rotated_over_http_stops_at_once(
    start: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GS_TEST_ADMIN", "admin-for-tests")
    admin = {"authorization": "Bearer admin-for-tests"}
    # A poll a minute away: only the refresh after the change can make it apply at once.
    gs = start({"auth": "required", "key_refresh_s": 60}, server={"admin_key_env": "GS_TEST_ADMIN"})
    assert httpx.get(f"{gs.url}/metrics", headers=admin).status_code == 200
    made = httpx.post(f"{gs.url}/admin/keys", headers=admin, json={"name": "a"}).json()
    other = httpx.post(f"{gs.url}/admin/keys", headers=admin, json={"name": "b"}).json()
    for key in (made["key"], other["key"]):
        assert gs.openai(key).chat.completions.create(model="small", messages=HI).choices

    assert httpx.delete(f"{gs.url}/admin/keys/{made['id']}", headers=admin).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        gs.openai(made["key"]).chat.completions.create(model="small", messages=HI)

    rotated = httpx.post(f"{gs.url}/admin/keys/{other['id']}/rotate", headers=admin).json()
    with pytest.raises(openai.AuthenticationError):
        gs.openai(other["key"]).chat.completions.create(model="small", messages=HI)
    assert gs.openai(rotated["key"]).chat.completions.create(model="small", messages=HI).choices
    assert gs.records[-1].key_id == other["id"]
