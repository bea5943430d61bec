"""Virtual keys: issued once, stored only as a SHA-256 hash in the ledger database.

A key looks like ``gs-`` + 32 URL-safe random characters. SHA-256 (not a slow password hash) is
right here: the key is 192 random bits, so there is nothing to brute-force, and the gateway checks
it on every request from an in-memory map (see ``KeyCache``), never with a database hit.

``KeyStore`` is synchronous (the CLI uses it directly; the gateway's cache polls it in a thread).
The table is created by the ledger's migrations; ``KEYS_TABLE_SQL`` is that step, and the store
also applies it idempotently so ``gearshift keys`` works on a database the gateway never opened.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gearshift.errors import ConfigError, InvalidRequest, ResourceNotFound
from gearshift.ledger.migrations import M004_KEYS
from gearshift.policy.db import Database, open_database
from gearshift.policy.periods import Period

KEY_PREFIX = "gs-"

KEYS_TABLE_SQL = M004_KEYS.statements("sqlite")[0]  # same text on both backends

_COLUMNS = (
    "id, name, key_hash, key_prefix, team, tags, budget_usd, budget_period, "
    "created_at, updated_at, revoked_at"
)
# A key's limits (model allow-list, rate limits, expiry) and the admin audit trail live in their
# own tables, created here like the keys table (so the ledger's migration list is untouched).
KEY_LIMITS_SQL = (
    "CREATE TABLE IF NOT EXISTS key_limits (key_id TEXT PRIMARY KEY, models TEXT, "
    "rpm INTEGER, tpm INTEGER, expires_at DOUBLE PRECISION)"
)
AUDIT_SQL = (
    "CREATE TABLE IF NOT EXISTS admin_audit (ts DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, "
    "action TEXT NOT NULL, key_id TEXT, detail TEXT NOT NULL DEFAULT '{}')"
)
_SELECT = (
    f"SELECT {_COLUMNS.replace('id, name', 'keys.id, name', 1)}, models, rpm, tpm, expires_at "
    "FROM keys LEFT JOIN key_limits ON key_limits.key_id = keys.id"
)
_BUDGET_SPEC = re.compile(r"^\s*\$?(\d+(?:\.\d+)?)\s*/\s*(day|week|month)\s*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_DURATION_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)  # 24 bytes -> 32 characters


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_budget(spec: str) -> tuple[float, Period]:
    """``2000/month`` -> (2000.0, "month")."""
    m = _BUDGET_SPEC.match(spec)
    if not m:
        raise InvalidRequest(
            f"budget {spec!r} is not AMOUNT/PERIOD (USD per day, week or month), e.g. 2000/month"
        )
    amount = float(m.group(1))
    if amount <= 0:
        raise InvalidRequest(f"budget {spec!r} must be more than 0 USD")
    period: Period = m.group(2)  # type: ignore[assignment]
    return amount, period


def parse_expiry(value: object, *, now: float | None = None, param: str = "expires_at") -> float:
    """When a key expires, as unix seconds: unix seconds, an ISO 8601 time with its offset
    (``2027-01-31T00:00:00Z``) or a duration from now (``90m``, ``12h``, ``30d``, ``2w``). It
    must lie in the future."""
    now = time.time() if now is None else now
    if isinstance(value, int | float) and not isinstance(value, bool):
        when = float(value)
    elif isinstance(value, str):
        duration = _DURATION.match(value)
        if duration:
            when = now + float(duration.group(1)) * _DURATION_S[duration.group(2)]
        else:
            try:
                parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                parsed = None
            if parsed is None or parsed.tzinfo is None:
                raise InvalidRequest(
                    f"{param} {value[:60]!r} is not unix seconds, an ISO time with its offset "
                    "(2027-01-31T00:00:00Z) or a duration (90m, 12h, 30d, 2w)",
                    param=param,
                )
            when = parsed.timestamp()
    else:
        raise InvalidRequest(f"'{param}' must be a number or a string", param=param)
    if not when > now:  # also refuses NaN
        raise InvalidRequest(f"'{param}' is in the past", param=param)
    return when


def parse_tags(spec: str | None) -> dict[str, str]:
    """``feature=helpdesk,env=prod`` -> dict; a malformed pair is an error naming it."""
    tags: dict[str, str] = {}
    for pair in (spec or "").split(","):
        if not pair.strip():
            continue
        k, sep, v = pair.partition("=")
        if not sep or not k.strip() or not v.strip():
            raise InvalidRequest(f"tag {pair.strip()!r} is not KEY=VALUE")
        tags[k.strip()] = v.strip()
    return tags


@dataclass(slots=True, frozen=True)
class KeyInfo:
    id: str
    name: str | None
    key_prefix: str  # the first characters, enough to recognise a key in a list
    team: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    budget_usd: float | None = None
    budget_period: Period | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    revoked_at: float | None = None
    models: tuple[str, ...] | None = None  # routers / models it may use; None = any
    rpm: int | None = None
    tpm: int | None = None
    expires_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def default_tags(self) -> dict[str, str]:
        """Tags every request with this key carries (``team`` included)."""
        tags = dict(self.tags)
        if self.team:
            tags["team"] = self.team
        return tags

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.key_prefix,
            "team": self.team,
            "tags": self.tags,
            "budget": (
                f"{self.budget_usd:g}/{self.budget_period}" if self.budget_usd is not None else None
            ),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "active": self.active,
            "expired": self.expired(time.time()),
            "models": list(self.models) if self.models is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "expires_at": self.expires_at,
        }


def _row_to_info(row: tuple[Any, ...]) -> tuple[str, KeyInfo]:
    (kid, name, key_hash, prefix, team, tags, budget, period, created, updated, revoked) = row[:11]
    models, rpm, tpm, expires = row[11:] if len(row) > 11 else (None, None, None, None)
    info = KeyInfo(
        id=kid,
        name=name,
        key_prefix=prefix,
        team=team,
        tags=json.loads(tags or "{}"),
        budget_usd=float(budget) if budget is not None else None,
        budget_period=period,
        created_at=float(created),
        updated_at=float(updated),
        revoked_at=float(revoked) if revoked is not None else None,
        models=tuple(json.loads(models)) if models is not None else None,
        rpm=int(rpm) if rpm is not None else None,
        tpm=int(tpm) if tpm is not None else None,
        expires_at=float(expires) if expires is not None else None,
    )
    return key_hash, info


class KeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._db.execute(KEYS_TABLE_SQL)
        self._db.execute(KEY_LIMITS_SQL)
        self._db.execute(AUDIT_SQL)

    @classmethod
    def open(cls, storage_url: str) -> KeyStore:
        return cls(open_database(storage_url))

    def close(self) -> None:
        self._db.close()

    def _now(self) -> float:
        # Strictly increasing, so the gateway's (count, max(updated_at)) version always moves.
        latest = self._db.fetchone("SELECT MAX(updated_at) FROM keys")
        now = time.time()
        if latest and latest[0] is not None and float(latest[0]) >= now:
            now = float(latest[0]) + 1e-6
        return now

    def create(
        self,
        *,
        name: str | None = None,
        team: str | None = None,
        tags: dict[str, str] | None = None,
        budget: tuple[float, Period] | None = None,
        models: list[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        expires_at: float | None = None,
    ) -> tuple[str, KeyInfo]:
        """Returns (the key itself, shown once; its stored info)."""
        secret = new_secret()
        now = self._now()
        info = KeyInfo(
            id="key_" + secrets.token_hex(6),
            name=name,
            key_prefix=secret[:7],
            team=team,
            tags=dict(tags or {}),
            budget_usd=budget[0] if budget else None,
            budget_period=budget[1] if budget else None,
            created_at=now,
            updated_at=now,
        )
        self._db.execute(
            f"INSERT INTO keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                info.id,
                info.name,
                hash_key(secret),
                info.key_prefix,
                info.team,
                json.dumps(info.tags, sort_keys=True),
                info.budget_usd,
                info.budget_period,
                info.created_at,
                info.updated_at,
                None,
            ),
        )
        if models is not None or rpm is not None or tpm is not None or expires_at is not None:
            self._db.execute(
                "INSERT INTO key_limits (key_id, models, rpm, tpm, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (info.id, json.dumps(models) if models is not None else None, rpm, tpm, expires_at),
            )
        return secret, self.get(info.id)

    def audit(self, actor: str, action: str, key_id: str | None, detail: dict[str, Any]) -> None:
        """Record one administrative action: who, when, what, on which key (never a secret)."""
        self._db.execute(
            "INSERT INTO admin_audit (ts, actor, action, key_id, detail) VALUES (?, ?, ?, ?, ?)",
            (time.time(), actor, action, key_id, json.dumps(detail, sort_keys=True)),
        )

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest administrative actions, newest first."""
        rows = self._db.fetchall(
            "SELECT ts, actor, action, key_id, detail FROM admin_audit ORDER BY ts DESC LIMIT ?",
            (limit,),
        )
        return [
            {
                "ts": float(ts),
                "actor": actor,
                "action": action,
                "key_id": kid,
                "detail": json.loads(d),
            }
            for ts, actor, action, kid, d in rows
        ]

    def get(self, key_id: str) -> KeyInfo:
        row = self._db.fetchone(f"{_SELECT} WHERE keys.id = ?", (key_id,))
        if row is None:
            raise ResourceNotFound(
                f"no virtual key with id {key_id!r}; 'gearshift keys list' shows them"
            )
        return _row_to_info(row)[1]

    def list(self, *, include_revoked: bool = True) -> list[KeyInfo]:
        rows = self._db.fetchall(f"{_SELECT} ORDER BY created_at")
        infos = [_row_to_info(r)[1] for r in rows]
        return [k for k in infos if include_revoked or k.active]

    def revoke(self, key_id: str) -> KeyInfo:
        info = self.get(key_id)
        if not info.active:
            return info
        now = self._now()
        self._db.execute(
            "UPDATE keys SET revoked_at = ?, updated_at = ? WHERE id = ?", (now, now, key_id)
        )
        return self.get(key_id)

    def rotate(self, key_id: str) -> tuple[str, KeyInfo]:
        """A new secret for the same key id: budgets, tags and history carry over."""
        info = self.get(key_id)
        if not info.active:
            raise InvalidRequest(f"key {key_id} is revoked; create a new one instead")
        secret = new_secret()
        self._db.execute(
            "UPDATE keys SET key_hash = ?, key_prefix = ?, updated_at = ? WHERE id = ?",
            (hash_key(secret), secret[:7], self._now(), key_id),
        )
        return secret, self.get(key_id)

    def version(self) -> tuple[int, float]:
        row = self._db.fetchone("SELECT COUNT(*), MAX(updated_at) FROM keys")
        if row is None:
            return (0, 0.0)
        return int(row[0]), float(row[1] or 0.0)

    def find_active(self, key_hash: str) -> KeyInfo | None:
        """The active key with this hash, straight from the table (one indexed row)."""
        row = self._db.fetchone(f"{_SELECT} WHERE key_hash = ? AND revoked_at IS NULL", (key_hash,))
        return _row_to_info(row)[1] if row is not None else None

    def active_by_hash(self) -> dict[str, KeyInfo]:
        rows = self._db.fetchall(f"{_SELECT} WHERE revoked_at IS NULL")
        return dict(_row_to_info(r) for r in rows)


def require_storage(url: str | None) -> str:
    if not url:
        raise ConfigError("no ledger storage configured; set 'storage:' in the config file")
    return url
