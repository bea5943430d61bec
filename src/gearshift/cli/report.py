"""``gearshift report``: spend, savings, routing mix and latency from the ledger.

Reads the ledger named by ``--storage URL`` or by ``--config FILE``'s ``storage``, whether the
gateway is running or not (SQLite in WAL mode allows a reader beside the writer).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from gearshift.errors import ConfigError

BY_HELP = (
    "group by model, router, key, day, hour, kind, outcome, or any tag name "
    "(feature, team, user, ...; 'tag:NAME' also works)"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gearshift report",
        description="Where the money goes and what routing saved, from the request ledger.",
    )
    p.add_argument("--since", help="start: a duration back from now (7d, 12h) or an ISO date")
    p.add_argument("--until", help="end (exclusive): a duration back from now or an ISO date")
    p.add_argument("--by", default="model", help=BY_HELP + " (default: model)")
    p.add_argument("--format", choices=("text", "json", "csv"), default="text")
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="only requests whose dimension or tag NAME equals VALUE (repeatable), "
        "e.g. --where team=support --where model=large",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--config", help="gearshift YAML config (its storage and model tiers)")
    source.add_argument("--storage", help="ledger URL: sqlite:///path.db or postgresql://...")
    return p


def run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    from gearshift.analytics import queries, render
    from gearshift.analytics.db import LedgerDB

    try:
        queries.check_by(args.by, "--by")
        filters = queries.parse_where(args.where)
        queries.check_filters(filters)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    settings = None
    if args.config or not args.storage:
        from gearshift.config import Settings, load_settings

        settings = load_settings(args.config) if args.config else None
        url = args.storage or (settings.storage if settings else Settings().storage)
    else:
        url = args.storage
    now = time.time()
    try:
        since = queries.parse_time(args.since, now=now) if args.since else None
        until = queries.parse_time(args.until, now=now) if args.until else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with LedgerDB(url) as db:
        if not db.table_exists("requests"):
            raise ConfigError(f"{url} holds no gearshift ledger (no 'requests' table)")
        try:
            report = queries.full_report(
                db,
                args.by,
                since,
                until,
                filters,
                settings,
                now=now,
                progress=lambda note: print(f"gearshift report: {note}", file=sys.stderr),
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if args.format == "json":
        sys.stdout.write(render.to_json(report) + "\n")
    elif args.format == "csv":
        sys.stdout.write(render.to_csv(report, args.by))
    else:
        from rich.console import Console

        # Piped to a file or a pager: wide enough that no column is squeezed into "…".
        width = None if sys.stdout.isatty() else 170
        render.print_tables(report, args.by, Console(width=width))
    return 0
