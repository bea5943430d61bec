"""``gearshift keys``: create, list, revoke and rotate virtual keys in the ledger database.

The key itself is printed once, at creation or rotation; only its SHA-256 hash is stored. A
running gateway picks up every change within about ``policy.key_refresh_s`` seconds. Each change
is recorded in the admin audit trail (``GET /admin/audit``) as ``cli:user@host``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gearshift.errors import ConfigError

if TYPE_CHECKING:
    from gearshift.policy.keys import KeyInfo


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gearshift keys", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default="gearshift.yaml", help="config naming the ledger")
    common.add_argument("--storage", help="ledger URL (overrides the config's storage)")
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", parents=[common], help="issue a new key (printed once)")
    create.add_argument("--name", help="a label for people, e.g. 'helpdesk-prod'")
    create.add_argument("--team", help="default team tag of every request with this key")
    create.add_argument("--tags", help="more default tags: k=v,k2=v2")
    create.add_argument("--budget", help="this key's own budget, USD per period: 2000/month")
    create.add_argument(
        "--expires",
        metavar="WHEN",
        help="refused after this: a duration from now (90m, 12h, 30d, 2w), an ISO time with "
        "its offset (2027-01-31T00:00:00Z) or unix seconds",
    )
    create.add_argument(
        "--models", help="routers / models it may use, comma-separated (default: any)"
    )
    create.add_argument("--rpm", type=_positive, help="its own requests per minute")
    create.add_argument("--tpm", type=_positive, help="its own tokens per minute")
    create.add_argument("--json", action="store_true", help="print JSON")
    lst = sub.add_parser("list", parents=[common], help="list keys (never the secrets)")
    lst.add_argument("--active", action="store_true", help="hide revoked keys")
    lst.add_argument("--json", action="store_true", help="print JSON")
    for name, help_ in (("revoke", "revoke a key at once"), ("rotate", "issue a new secret")):
        sp = sub.add_parser(name, parents=[common], help=help_)
        sp.add_argument("id", help="key id, as 'keys list' shows it (key_...)")
        sp.add_argument("--json", action="store_true", help="print JSON")
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _expiry(spec: str) -> float:
    from gearshift.policy.keys import parse_expiry

    return parse_expiry(float(spec) if spec.strip().isdigit() else spec, param="--expires")


def _models(args: argparse.Namespace) -> list[str] | None:
    """The allow-list, checked against the configuration's routers and models when the config
    file can be read (with only --storage there is nothing to check against)."""
    if args.models is None:
        return None
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if not names:
        raise ConfigError("--models names no router or model")
    from gearshift.config import load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError:
        if args.storage:
            return names
        raise
    known = {r.name for r in settings.routers} | {m.name for m in settings.models}
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(
            f"--models names unknown router(s) or model(s): {', '.join(missing)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return names


def _storage(args: argparse.Namespace) -> str:
    if args.storage:
        return str(args.storage)
    from gearshift.config import load_settings

    try:
        return load_settings(args.config).storage
    except ConfigError as exc:
        raise ConfigError(f"{exc.message}\n(or pass --storage URL)") from None


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M") if ts else "-"


def run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    from gearshift.policy.keys import KeyStore, parse_budget, parse_tags

    store = KeyStore.open(_storage(args))
    try:
        if args.action == "create":
            budget = parse_budget(args.budget) if args.budget else None
            secret, info = store.create(
                name=args.name,
                team=args.team,
                tags=parse_tags(args.tags),
                budget=budget,
                models=_models(args),
                rpm=args.rpm,
                tpm=args.tpm,
                expires_at=_expiry(args.expires) if args.expires else None,
            )
            store.audit(_actor(), "create", info.id, info.public())
            if args.json:
                print(json.dumps({"key": secret, **info.public()}))
            else:
                print(secret)
                print(
                    f"created {info.id}; this is the only time the key is shown: store it now",
                    file=sys.stderr,
                )
        elif args.action == "list":
            keys = store.list(include_revoked=not args.active)
            if args.json:
                print(json.dumps([k.public() for k in keys], indent=2))
            else:
                _print_table(keys)
        elif args.action == "revoke":
            info = store.revoke(args.id)
            store.audit(_actor(), "revoke", info.id, {"revoked_at": info.revoked_at})
            if args.json:
                print(json.dumps(info.public()))
            else:
                print(f"revoked {info.id} ({info.key_prefix}...) at {_when(info.revoked_at)}")
        else:
            secret, info = store.rotate(args.id)
            store.audit(_actor(), "rotate", info.id, {"prefix": info.key_prefix})
            if args.json:
                print(json.dumps({"key": secret, **info.public()}))
            else:
                print(secret)
                print(f"rotated {info.id}: the old key no longer works", file=sys.stderr)
    finally:
        store.close()
    return 0


def _actor() -> str:
    """Who ran the command, for the admin audit trail (same table as ``/admin/keys``)."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"cli:{user}@{socket.gethostname()}"


def _status(key: KeyInfo, now: float) -> str:
    if not key.active:
        return f"revoked {_when(key.revoked_at)}"
    if key.expired(now):
        return f"expired {_when(key.expires_at)}"
    return f"active until {_when(key.expires_at)}" if key.expires_at else "active"


def _print_table(keys: Sequence[KeyInfo]) -> None:
    rows = [["id", "name", "prefix", "team", "tags", "budget", "created", "status"]]
    now = time.time()
    for k in keys:
        pub = k.public()
        rows.append(
            [
                k.id,
                k.name or "-",
                k.key_prefix + "...",
                k.team or "-",
                ",".join(f"{a}={b}" for a, b in k.tags.items()) or "-",
                pub["budget"] or "-",
                _when(k.created_at),
                _status(k, now),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
