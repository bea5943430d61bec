"""Promotion without a restart: ``gearshift promote`` writes a row to ``router_promotions`` in the
ledger database; every gateway polls that table (one ``MAX(id)`` a second) and, when it moved,
builds the promoted router and swaps it in with one dict assignment. A request decides with the
engine it looked up, so requests in flight finish on the old router."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from gearshift.learning.candidate import Candidate, ResidualPredictor
from gearshift.learning.store import active_candidates, latest_promotion_id

if TYPE_CHECKING:
    from gearshift.api.pipeline import Gateway
    from gearshift.config import RouterConfig, Settings
    from gearshift.learning.sampler import StoreOpener
    from gearshift.ledger.store import LedgerStore
    from gearshift.routing.decision import RouterEngine

log = logging.getLogger("gearshift.learning")

POLL_S = 1.0


def build_engine(settings: Settings, cfg: RouterConfig, candidate_json: str | None) -> RouterEngine:
    """The router ``cfg`` with its configured predictor, or with ``candidate_json`` on top."""
    from gearshift.routing import build_router, load_predictor

    if candidate_json is None:
        return build_router(settings, cfg)
    candidate = Candidate.from_json(candidate_json)
    base = load_predictor(cfg.predictor)
    label = f"candidate of {cfg.name} ({candidate.meta.get('labels', '?')} labels)"
    return build_router(settings, cfg, predictor=ResidualPredictor(base, candidate, label))


class PromotionWatcher:
    def __init__(self, gateway: Gateway, store_opener: StoreOpener, poll_s: float = POLL_S) -> None:
        self.gateway = gateway
        self._open_store = store_opener
        self.poll_s = poll_s
        self.store: LedgerStore | None = None
        self._seen = -1
        self._installed: dict[str, tuple[str | None, RouterEngine]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            self.store = await asyncio.to_thread(self._open_store)
            await self.check()
        except Exception:
            # The gateway serves with its configured routers; promotions apply once it can read.
            log.exception("router promotions: cannot read the ledger database now")
        self._task = asyncio.create_task(self._loop(), name="gearshift-promotions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                if self.store is None:
                    self.store = await asyncio.to_thread(self._open_store)
                await self.check()
            except Exception:
                log.warning("router promotions: poll failed", exc_info=True)

    async def check(self) -> None:
        assert self.store is not None
        latest = await asyncio.to_thread(latest_promotion_id, self.store)
        replaced = [
            name
            for name, (_, engine) in self._installed.items()
            if self.gateway.routers.get(name) is not engine  # a config reload rebuilt it
        ]
        if latest == self._seen and not replaced:
            return
        active = await asyncio.to_thread(active_candidates, self.store)
        self._seen = latest
        for name, cfg in self.gateway.router_configs.items():
            if name not in active:
                continue
            wanted = active[name]
            current = self._installed.get(name)
            if current is not None and current[0] == wanted and name not in replaced:
                continue
            try:
                engine = await asyncio.to_thread(build_engine, self.gateway.settings, cfg, wanted)
            except Exception:
                log.exception("router %s: cannot build the promoted router; keeping the old", name)
                continue
            self.gateway.routers[name] = engine  # atomic swap; in-flight requests keep theirs
            self._installed[name] = (wanted, engine)
            what = "its configured predictor" if wanted is None else "a promoted candidate"
            log.info("router %s now serves %s (promotion #%d)", name, what, latest)
