"""The gateway's in-memory view of the keys table: a hash -> key map, refreshed in the background.

A known key is checked against memory only. A background task asks the database for the table's
version (row count and latest ``updated_at``) every ``refresh_s`` seconds and reloads the active
keys when it moved, so rotations and revocations apply within about that long. A key not in
memory is looked up in the table once (``find``), so a key works the moment ``gearshift keys
create`` returns; a key found missing is remembered as such for ``NEGATIVE_TTL_S``, so a client
retrying a bad key does not cost a query per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from gearshift.policy.keys import KeyInfo, KeyStore, hash_key

log = logging.getLogger("gearshift.policy.keys")

# A key found missing in the table is not looked up again for this long (a key created since
# works at the latest then), and at most this many misses are remembered.
NEGATIVE_TTL_S = 2.0
NEGATIVE_MAX = 10_000


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
        self._missing: OrderedDict[str, float] = OrderedDict()  # hash -> monotonic expiry
        self._lookup_failing = False

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def find(self, secret: str) -> KeyInfo | None:
        """The active key for ``secret``: from memory, else from the table (then the whole view
        is reloaded, so the new key's budget applies too). None for an unknown or revoked key,
        and while the table cannot be read (a key is never trusted unchecked)."""
        digest = hash_key(secret)
        info = self._by_hash.get(digest)
        if info is not None:
            return info
        now = time.monotonic()
        until = self._missing.get(digest)
        if until is not None and until > now:
            return None
        try:
            found = await asyncio.to_thread(self._store.find_active, digest)
            if found is not None:
                await self.refresh(force=True)
        except Exception as exc:
            if not self._lookup_failing:
                log.error("looking a key up in the keys table failed (%s); refusing it", exc)
            self._lookup_failing = True
            return None
        self._lookup_failing = False
        if found is None:
            self._missing[digest] = now + NEGATIVE_TTL_S
            self._missing.move_to_end(digest)
            while len(self._missing) > NEGATIVE_MAX:
                self._missing.popitem(last=False)
            return None
        return self._by_hash.get(digest, found)

    def by_id(self, key_id: str) -> KeyInfo | None:
        return self._by_id.get(key_id)

    def active(self) -> list[KeyInfo]:
        return list(self._by_id.values())

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload when the table changed (or ``force``); True when it did."""
        version = await asyncio.to_thread(self._store.version)
        if version == self._version and not force:
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
