"""What the learning-loop commands share: the config, its ledger and the router named."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gearshift.config import RouterConfig, Settings
    from gearshift.ledger.store import LedgerStore


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="the gateway's configuration (YAML)")
    p.add_argument("--router", help="router name (default: the one with learning on)")


def open_learning(args: argparse.Namespace) -> tuple[Settings, RouterConfig, LedgerStore]:
    from gearshift.config import load_settings
    from gearshift.learning.offline import learning_router
    from gearshift.ledger.store import open_store

    settings = load_settings(args.config)
    cfg = learning_router(settings, args.router)
    return settings, cfg, open_store(settings.storage)
