"""Targets controllers shared by replicas through Redis.

Each replica appends every finished request of a router with targets to a shared list (one Lua
call, sent off the request path), and once a second loads the shared window into its own
controller, which re-decides from it. So every replica steers by the same recent traffic, and a
replica that just started picks up where the others are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

import orjson

from gearshift.policy.controller import Outcome, TargetsController

log = logging.getLogger("gearshift.policy.controller")

# KEYS: window list, sums hash, latency list of the served model ("" when none).
# ARGV: outcome JSON, cost, window size, latency ("" when none), latency list size, halve-at count.
_RECORD = """
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[3]) - 1)
if ARGV[4] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[4])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
end
local n = tonumber(redis.call('HINCRBYFLOAT', KEYS[2], 'count', 1))
local s = tonumber(redis.call('HINCRBYFLOAT', KEYS[2], 'cost', ARGV[2]))
if n > tonumber(ARGV[6]) then
  redis.call('HSET', KEYS[2], 'count', tostring(n / 2), 'cost', tostring(s / 2))
end
return 1
"""


class ControllerSync:
    def __init__(
        self,
        client: Any,
        prefix: str,
        controllers: Mapping[str, TargetsController],
        *,
        interval_s: float = 1.0,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._controllers = dict(controllers)
        self._interval_s = interval_s
        self._record = client.register_script(_RECORD)
        self._task: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        # Outcomes waiting to be shared; one sender drains them in pipelined batches.
        self._queue: deque[tuple[TargetsController, Outcome]] = deque(maxlen=10_000)
        self._wake = asyncio.Event()

    def _key(self, router: str, part: str) -> str:
        return f"{self._prefix}ctl:{router}:{part}"

    def record(self, router: str, outcome: Outcome) -> None:
        """Append one outcome to the shared window, without making the caller wait."""
        ctl = self._controllers.get(router)
        if ctl is None:
            return
        self._queue.append((ctl, outcome))
        self._wake.set()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Send every queued outcome in one pipelined round trip."""
        if not self._queue:
            return
        batch = list(self._queue)
        self._queue.clear()
        pipe = self._redis.pipeline(transaction=False)
        for ctl, outcome in batch:
            await self._queue_record(pipe, ctl, outcome)
        try:
            await pipe.execute()
        except Exception as exc:  # the local controllers still have them; sharing resumes later
            log.error("sharing controller state through Redis failed: %s", exc)

    async def _queue_record(self, pipe: Any, ctl: TargetsController, outcome: Outcome) -> None:
        size = ctl.targets.window_requests
        body = orjson.dumps(
            [
                [outcome.predicted.get(m, 0.0) for m in ctl.models],
                outcome.served,
                outcome.cost_usd,
                outcome.latency_ms,
                outcome.tolerance,
            ]
        )
        latency = "" if outcome.latency_ms is None or not outcome.served else outcome.latency_ms
        lat_key = self._key(ctl.router, f"lat:{outcome.served}") if outcome.served else ""
        await self._record(  # queued on the pipeline, sent by execute()
            keys=[self._key(ctl.router, "window"), self._key(ctl.router, "sums"), lat_key],
            args=[body, outcome.cost_usd, size, latency, max(20, size // 5), 10 * size],
            client=pipe,
        )

    async def pull(self) -> None:
        """Load every shared window into its controller."""
        for router, ctl in self._controllers.items():
            size = ctl.targets.window_requests
            pipe = self._redis.pipeline(transaction=False)
            pipe.lrange(self._key(router, "window"), 0, size - 1)
            pipe.hmget(self._key(router, "sums"), "cost", "count")
            for m in ctl.models:
                pipe.lrange(self._key(router, f"lat:{m}"), 0, max(20, size // 5) - 1)
            window, sums, *lats = await pipe.execute()
            if not window:
                continue
            outcomes = []
            for raw in reversed(window):  # oldest first
                # Entries written before the tolerance was shared have four fields.
                preds, served, cost, latency, *tolerance = orjson.loads(raw)
                outcomes.append(
                    Outcome(
                        dict(zip(ctl.models, preds, strict=True)),
                        served,
                        cost,
                        latency,
                        tolerance[0] if tolerance else None,
                    )
                )
            latency_by_model = {
                m: [float(v) for v in reversed(values)]
                for m, values in zip(ctl.models, lats, strict=True)
            }
            cost_sum = float(sums[0] or 0.0)
            count_sum = float(sums[1] or 0.0)
            ctl.load(outcomes, latency_by_model, cost_sum, count_sum)

    async def start(self) -> None:
        await self.pull()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._loop())
        self._sender = loop.create_task(self._send_loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.pull()
            except Exception as exc:
                log.error("loading shared controller state from Redis failed: %s", exc)

    async def aclose(self) -> None:
        for task in (self._task, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._sender = None
        await self.flush()
