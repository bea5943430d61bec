"""``/admin/keys``: manage virtual keys over HTTP, with an audit trail.

``POST /admin/keys`` creates a key (name, team, tags, budget, model allow-list, rate limits,
expiry) and returns it once; ``GET /admin/keys`` lists keys (never their secrets);
``DELETE /admin/keys/{id}`` revokes one at once; ``POST /admin/keys/{id}/rotate`` gives it a new
secret; ``GET /admin/audit`` reads the trail. Every change is recorded in ``admin_audit``: when,
what, on which key, and who (the ``x-gearshift-actor`` header when sent, the fingerprint of the
admin key used, the client's address). The same ``KeyStore`` backs ``gearshift keys``.

The admin key (``server.admin_key_env``) is accepted in a header only (``Authorization: Bearer``
or ``x-api-key``), never in the URL, where access logs keep it. Without an admin key configured
this API is off (401), never open.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from gearshift.api.http import Request, Response, Routes, json_response, render_openai_error
from gearshift.errors import AuthenticationError, InvalidRequest

log = logging.getLogger("gearshift.api.admin_keys")

if TYPE_CHECKING:
    from gearshift.api.pipeline import Gateway
    from gearshift.policy.keys import KeyStore

T = TypeVar("T")
ACTOR_HEADER = "x-gearshift-actor"


def register(routes: Routes, gateway: Gateway) -> None:
    api = KeysAPI(gateway)
    for method, path, handler in (
        ("POST", "/admin/keys", api.create),
        ("GET", "/admin/keys", api.list_keys),
        ("DELETE", "/admin/keys/{key_id}", api.revoke),
        ("POST", "/admin/keys/{key_id}/rotate", api.rotate),
        ("GET", "/admin/audit", api.audit_log),
    ):
        routes.add(method, path, handler, errors=render_openai_error)


class KeysAPI:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self._store: KeyStore | None = None
        self._lock = threading.Lock()  # one store connection, one statement at a time

    # ---- access ----------------------------------------------------------------------------

    def _actor(self, request: Request) -> str:
        """Who is acting: checked admin key, described without revealing it."""
        if "admin_key" in request.query.decode("latin-1"):
            raise AuthenticationError(
                "the admin key goes in a header ('Authorization: Bearer <key>' or 'x-api-key'), "
                "never in the URL, where access logs keep it"
            )
        env = self.settings.server.admin_key_env
        expected = os.environ.get(env) if env else None
        if not expected:
            raise AuthenticationError(
                "the keys API is off: set server.admin_key_env to the environment variable "
                "holding the admin key (and set that variable)"
            )
        given = request.bearer_token() or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise AuthenticationError(
                "this needs the admin key: send 'Authorization: Bearer <key>' or 'x-api-key'"
            )
        fingerprint = hashlib.sha256(expected.encode()).hexdigest()[:12]
        client = request.scope.get("client") or ("?", 0)
        named = (request.headers.get(ACTOR_HEADER) or "").strip()[:200]
        who = f"{named} " if named else ""
        return f"{who}(admin key {fingerprint}, from {client[0]})"

    async def _run(self, work: Callable[[KeyStore], T]) -> T:
        def locked() -> T:
            with self._lock:
                if self._store is None:
                    from gearshift.policy.keys import KeyStore

                    self._store = KeyStore.open(self.settings.storage)
                return work(self._store)

        return await asyncio.to_thread(locked)

    async def _keys_changed(self) -> None:
        """A revoked or rotated key stops working on this gateway at once (other replicas see
        it within ``policy.key_refresh_s``)."""
        refresh = getattr(self.gateway.policy, "refresh_keys", None)
        if refresh is not None:
            try:
                await refresh()
            except Exception as exc:  # the change is stored; the poll will pick it up
                log.warning("re-reading the keys table after a change failed: %s", exc)

    # ---- handlers --------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        actor = self._actor(request)
        body = request.json()
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        options = self._create_options(body)

        def work(store: KeyStore) -> tuple[str, dict[str, Any]]:
            secret, info = store.create(**options)
            store.audit(actor, "create", info.id, info.public())
            return secret, info.public()

        secret, public = await self._run(work)
        return json_response(201, {"key": secret, **public})

    async def list_keys(self, request: Request) -> Response:
        self._actor(request)
        active_only = "active=true" in request.query.decode("latin-1")
        keys = await self._run(lambda store: store.list(include_revoked=not active_only))
        return json_response(200, {"object": "list", "data": [k.public() for k in keys]})

    async def revoke(self, request: Request) -> Response:
        actor = self._actor(request)
        key_id = request.path_params["key_id"]

        def work(store: KeyStore) -> dict[str, Any]:
            info = store.revoke(key_id)
            store.audit(actor, "revoke", key_id, {"revoked_at": info.revoked_at})
            return info.public()

        public = await self._run(work)
        await self._keys_changed()
        return json_response(200, public)

    async def rotate(self, request: Request) -> Response:
        actor = self._actor(request)
        key_id = request.path_params["key_id"]

        def work(store: KeyStore) -> tuple[str, dict[str, Any]]:
            secret, info = store.rotate(key_id)
            store.audit(actor, "rotate", key_id, {"prefix": info.key_prefix})
            return secret, info.public()

        secret, public = await self._run(work)
        await self._keys_changed()
        return json_response(200, {"key": secret, **public})

    async def audit_log(self, request: Request) -> Response:
        self._actor(request)
        entries = await self._run(lambda store: store.audit_log())
        return json_response(200, {"object": "list", "data": entries})

    # ---- validation ------------------------------------------------------------------------

    def _create_options(self, body: dict[str, Any]) -> dict[str, Any]:
        from gearshift.policy.keys import parse_budget, parse_expiry

        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            raise InvalidRequest(
                f"unknown field(s) {', '.join(unknown)}; a key takes "
                f"{', '.join(sorted(CREATE_FIELDS))}"
            )
        options: dict[str, Any] = {}
        for name in ("name", "team"):
            if body.get(name) is not None:
                options[name] = _text(body[name], name)
        tags = body.get("tags")
        if tags is not None:
            if not isinstance(tags, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
            ):
                raise InvalidRequest("'tags' must be an object of strings", param="tags")
            options["tags"] = tags
        if body.get("budget") is not None:
            options["budget"] = parse_budget(_text(body["budget"], "budget"))
        models = body.get("models")
        if models is not None:
            routers, configured = self.gateway.known_names()
            known = {*routers, *configured}
            if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
                raise InvalidRequest("'models' must be an array of names", param="models")
            missing = [m for m in models if m not in known]
            if missing:
                raise InvalidRequest(
                    f"'models' names unknown router(s) or model(s): {', '.join(missing)}; "
                    f"known: {', '.join(sorted(known))}",
                    param="models",
                )
            options["models"] = models
        for name in ("rpm", "tpm"):
            value = body.get(name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise InvalidRequest(f"'{name}' must be a positive integer", param=name)
                options[name] = value
        if body.get("expires_at") is not None:
            options["expires_at"] = parse_expiry(body["expires_at"])
        return options


CREATE_FIELDS = frozenset({"name", "team", "tags", "budget", "models", "rpm", "tpm", "expires_at"})


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"'{name}' must be a non-empty string", param=name)
    return value.strip()
