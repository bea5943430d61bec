"""Spend counters shared by every replica through Redis; reserve and settle are Lua scripts, so the
check-and-charge over all of a request's budgets is one atomic step on the server.

Layout (prefix ``gs:`` by default): a hash per budget period with fields ``spent`` and
``reserved``; a hash per spend-rate limit with one field per minute; plain keys for alert marks.
``redis`` is imported only when this module is used.
"""

from __future__ import annotations

from typing import Any

from gearshift.errors import ConfigError, ServiceUnavailable
from gearshift.policy.counters import (
    RATE_WINDOW_MINUTES,
    Limit,
    ReserveOutcome,
    rate_retry_after,
)

# KEYS: per limit, its budget hash then its rate hash ("" when none).
# ARGV: estimate, minute, then per limit: hard limit, ttl, rate limit (-1 when none).
# Returns {1, used...} or {0, failed index (1-based), kind, rate buckets (minute, amount)...}.
_RESERVE = """
local est = tonumber(ARGV[1])
local minute = tonumber(ARGV[2])
local n = #KEYS / 2
local used = {}
for i = 1, n do
  local bkey, rkey = KEYS[2*i-1], KEYS[2*i]
  local limit, rlimit = tonumber(ARGV[3*i]), tonumber(ARGV[3*i+2])
  local vals = redis.call('HMGET', bkey, 'spent', 'reserved')
  local u = (tonumber(vals[1]) or 0) + (tonumber(vals[2]) or 0)
  if u + est > limit then return {0, i, 'hard'} end
  if rlimit >= 0 then
    local fields = {}
    for m = minute - WINDOW + 1, minute do fields[#fields+1] = tostring(m) end
    local got = redis.call('HMGET', rkey, unpack(fields))
    local total = 0
    for _, v in ipairs(got) do total = total + (tonumber(v) or 0) end
    if total + est > rlimit then
      local out = {0, i, 'rate'}
      for j, v in ipairs(got) do
        if v then out[#out+1] = minute - WINDOW + j; out[#out+1] = tonumber(v) end
      end
      return out
    end
  end
  used[i] = u + est
end
local out = {1}
for i = 1, n do
  local bkey, rkey = KEYS[2*i-1], KEYS[2*i]
  redis.call('HINCRBY', bkey, 'reserved', est)
  redis.call('EXPIRE', bkey, tonumber(ARGV[3*i+1]))
  if tonumber(ARGV[3*i+2]) >= 0 then
    redis.call('HINCRBY', rkey, tostring(minute), est)
    redis.call('HDEL', rkey, tostring(minute - WINDOW))
    redis.call('EXPIRE', rkey, WINDOW * 120)
  end
  out[#out+1] = used[i]
end
return out
""".replace("WINDOW", str(RATE_WINDOW_MINUTES))

# KEYS as for reserve. ARGV: estimate, actual, minute, then per limit: ttl, has-rate (1/0).
_SETTLE = """
local est, actual, minute = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 1, #KEYS / 2 do
  local bkey, rkey = KEYS[2*i-1], KEYS[2*i]
  redis.call('HINCRBY', bkey, 'reserved', -est)
  local s = redis.call('HINCRBY', bkey, 'spent', actual)
  redis.call('EXPIRE', bkey, tonumber(ARGV[2*i+2]))
  if ARGV[2*i+3] == '1' then redis.call('HINCRBY', rkey, minute, actual - est) end
  out[i] = s
end
return out
"""


class RedisCounters:
    def __init__(self, client: Any, prefix: str = "gs:") -> None:
        self.client = client  # shared with the controllers' sync
        self.prefix = prefix
        self._redis = client
        self._prefix = prefix
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)

    @classmethod
    async def connect(cls, url: str, prefix: str = "gs:") -> RedisCounters:
        """Connect and ping, so an unreachable Redis is a startup error, not a runtime one."""
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        # A blocking pool: a burst of concurrent requests waits for a connection instead of
        # failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=10, socket_connect_timeout=2.0, socket_timeout=5.0
        )
        client = aioredis.Redis(connection_pool=pool)
        try:
            await client.ping()
        except (RedisError, OSError, ValueError) as exc:
            await client.aclose()
            raise ConfigError(
                f"policy.redis_url: cannot reach Redis at {_redacted(url)} ({exc}); "
                "start Redis or remove policy.redis_url to keep counters in this process"
            ) from None
        return cls(client, prefix)

    def _keys(self, limits: list[Limit]) -> list[str]:
        keys = []
        for lim in limits:
            keys.append(self._prefix + lim.counter)
            keys.append(self._prefix + (lim.rate_counter or lim.counter + ":rate"))
        return keys

    async def reserve(self, limits: list[Limit], estimate: int, minute: int) -> ReserveOutcome:
        if not limits:
            return ReserveOutcome(True, [])
        args: list[int] = [estimate, minute]
        for lim in limits:
            has_rate = lim.rate_counter is not None and lim.rate_limit is not None
            args += [lim.limit, lim.ttl_s, lim.rate_limit if has_rate and lim.rate_limit else -1]
        try:
            res = await self._reserve(keys=self._keys(limits), args=args)
        except Exception as exc:
            # Budgets cannot be checked: refuse (503, retryable) rather than spend blindly.
            raise ServiceUnavailable(
                f"budget counters are unavailable (Redis: {exc.__class__.__name__}); "
                "the request was not sent to any model, retry shortly"
            ) from None
        if int(res[0]) == 1:
            return ReserveOutcome(True, [int(x) for x in res[1:]])
        failed = int(res[1]) - 1
        kind = res[2].decode() if isinstance(res[2], bytes) else str(res[2])
        if kind == "hard":
            return ReserveOutcome(False, [], failed, "hard")
        flat = [int(x) for x in res[3:]]
        buckets = dict(zip(flat[0::2], flat[1::2], strict=True))
        rate_limit = limits[failed].rate_limit or 0
        retry = rate_retry_after(buckets, minute, estimate, rate_limit)
        return ReserveOutcome(False, [], failed, "rate", sum(buckets.values()), retry)

    async def settle(
        self, limits: list[Limit], estimate: int, actual: int, minute: int
    ) -> list[int]:
        if not limits:
            return []
        args: list[int] = [estimate, actual, minute]
        for lim in limits:
            has_rate = lim.rate_counter is not None and lim.rate_limit is not None
            args += [lim.ttl_s, 1 if has_rate else 0]
        res = await self._settle(keys=self._keys(limits), args=args)
        return [int(x) for x in res]

    async def used(self, counters: list[str]) -> list[int]:
        out = []
        for c in counters:
            vals = await self._redis.hmget(self._prefix + c, "spent", "reserved")
            out.append(sum(int(v) for v in vals if v is not None))
        return out

    async def spent(self, counters: list[str]) -> list[int]:
        out = []
        for c in counters:
            value = await self._redis.hget(self._prefix + c, "spent")
            out.append(int(value) if value is not None else 0)
        return out

    async def seed(self, counter: str, spent: int, ttl_s: int) -> None:
        key = self._prefix + counter
        if await self._redis.hsetnx(key, "spent", spent):
            await self._redis.expire(key, ttl_s)

    async def mark_once(self, key: str, ttl_s: int) -> bool:
        return bool(await self._redis.set(self._prefix + key, b"1", nx=True, ex=ttl_s))

    async def aclose(self) -> None:
        await self._redis.aclose()


def check_reachable(url: str) -> None:
    """A synchronous ping for startup checks, before any event loop runs."""
    import redis
    from redis.exceptions import RedisError

    client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0)
    try:
        client.ping()
    except (RedisError, OSError, ValueError) as exc:
        raise ConfigError(
            f"policy.redis_url: cannot reach Redis at {_redacted(url)} ({exc}); "
            "start Redis or remove policy.redis_url to keep counters in this process"
        ) from None
    finally:
        client.close()


def _redacted(url: str) -> str:
    """The URL without its password, for error messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
