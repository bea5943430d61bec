"""Where cached answers live: ``memory`` (this process, LRU), ``sqlite`` (a file every worker on
the host shares), ``redis`` (every replica). Each expires entries after ``ttl_s``."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from gearshift.cache import CacheBackend, CachedAnswer
from gearshift.config import CacheConfig, Settings
from gearshift.errors import ConfigError

REDIS_PREFIX = "gearshift:cache:"
# sqlite: expired rows are deleted every this many stores (reads skip them anyway).
PURGE_EVERY = 1000


def backend_for(config: CacheConfig, settings: Settings) -> CacheBackend:
    if config.backend == "memory":
        return MemoryBackend(config.max_entries)
    if config.backend == "sqlite":
        return SQLiteBackend(config.path)
    url = config.redis_url or settings.policy.redis_url
    if not url:
        raise ConfigError(
            "cache backend 'redis' needs a server: set the router's cache.redis_url "
            "or policy.redis_url"
        )
    return RedisBackend(url)


class MemoryBackend:
    """A dict in insertion order: the oldest entry goes first when full; a hit moves to the end."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()

    async def get(self, key: str) -> CachedAnswer | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, answer = found
        if expires < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return answer

    async def put(self, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        entries = self._entries
        entries[key] = (time.monotonic() + ttl_s, answer)
        entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    async def aclose(self) -> None:
        self._entries.clear()


class SQLiteBackend:
    """One table in its own file (not the ledger's: cache writes must not queue behind it).
    Reads run inline (a primary-key lookup in the page cache, microseconds); writes go to a
    thread so a disk sync never stalls the event loop."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._stores = 0

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS response_cache "
                "(key TEXT PRIMARY KEY, expires REAL NOT NULL, answer BLOB NOT NULL)"
            )
            self._db = db
        return self._db

    async def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            row = (
                self._open()
                .execute(
                    "SELECT answer FROM response_cache WHERE key = ? AND expires > ?",
                    (key, time.time()),
                )
                .fetchone()
            )
        return None if row is None else CachedAnswer.from_bytes(row[0])

    async def put(self, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        data = answer.to_bytes()

        def write() -> None:
            with self._lock:
                db = self._open()
                now = time.time()
                db.execute(
                    "INSERT OR REPLACE INTO response_cache (key, expires, answer) VALUES (?, ?, ?)",
                    (key, now + ttl_s, data),
                )
                self._stores += 1
                if self._stores % PURGE_EVERY == 0:
                    db.execute("DELETE FROM response_cache WHERE expires <= ?", (now,))

        await asyncio.to_thread(write)

    async def aclose(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class RedisBackend:
    def __init__(self, url: str) -> None:
        self.url = url
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.from_url(self.url)
        return self._client

    async def get(self, key: str) -> CachedAnswer | None:
        data = await self._redis().get(REDIS_PREFIX + key)
        return None if data is None else CachedAnswer.from_bytes(data)

    async def put(self, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        await self._redis().set(REDIS_PREFIX + key, answer.to_bytes(), px=int(ttl_s * 1000))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
