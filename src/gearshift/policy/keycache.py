"""The gateway's in-memory view of the keys table: a hash -> key map, refreshed in the background.

Every request is checked against memory only. A background task asks the database for the table's
version (row count and latest ``updated_at``) every ``refresh_s`` seconds and reloads the active
keys when it moved, so creations, rotations and revocations apply within about that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gearshift.policy.keys import KeyInfo, KeyStore, hash_key

log = logging.getLogger("gearshift.policy.keys")


class KeyCache:
    def __init__(
        self,
        store: KeyStore,
        *,
        refresh_s: float = 1.0,
        on_change: Callable[[dict[str, KeyInfo]], None] | None = None,
    ) -> None:
        self._store = store
        self._refresh_s = refresh_s
        self._on_change = on_change
        self._by_hash: dict[str, KeyInfo] = {}
        self._by_id: dict[str, KeyInfo] = {}
        self._version: tuple[int, float] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._poll())

    def lookup(self, secret: str) -> KeyInfo | None:
        return self._by_hash.get(hash_key(secret))

    def by_id(self, key_id: str) -> KeyInfo | None:
        return self._by_id.get(key_id)

    def active(self) -> list[KeyInfo]:
        return list(self._by_id.values())

    async def refresh(self) -> bool:
        """Reload when the table changed; True when it did."""
        version = await asyncio.to_thread(self._store.version)
        if version == self._version:
            return False
        by_hash = await asyncio.to_thread(self._store.active_by_hash)
        self._by_hash = by_hash
        self._by_id = {k.id: k for k in by_hash.values()}
        self._version = version
        if self._on_change is not None:
            self._on_change(self._by_id)
        return True

    async def _poll(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception as exc:  # keep serving with the last good view
                if not failing:  # once per outage, not once a second
                    log.error("reading the keys table failed (%s); keeping the last view", exc)
                failing = True
            else:
                if failing:
                    log.warning("reading the keys table works again")
                failing = False

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self._store.close)
