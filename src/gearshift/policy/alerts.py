"""Budget alerts: one log line, and a JSON POST to the configured webhook, off the request path.

``send`` only schedules the POST; failures are logged, never raised, and never slow a request.
The POST honours ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` as upstream calls do.
aiohttp is imported on the first POST, so a gateway with no webhook never loads it for alerts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("gearshift.policy.alerts")


class AlertSender:
    def __init__(self, webhook_url: str | None, *, timeout_s: float = 5.0) -> None:
        self.webhook_url = webhook_url
        self._timeout_s = timeout_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: Any = None
        self.sent = 0  # POSTs answered with 2xx (for status and tests)
        self.failed = 0

    def send(self, payload: dict[str, Any]) -> None:
        log.warning("budget alert: %s", payload.get("message", payload))
        if not self.webhook_url:
            return
        task = asyncio.get_running_loop().create_task(self._post(payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, payload: dict[str, Any]) -> None:
        import aiohttp

        try:
            if self._session is None:
                timeout = aiohttp.ClientTimeout(total=self._timeout_s)
                # trust_env: the same proxy variables as the upstream calls (providers/proxy.py)
                self._session = aiohttp.ClientSession(timeout=timeout, trust_env=True)
            async with self._session.post(self.webhook_url, json=payload) as resp:
                if resp.status >= 300:
                    self.failed += 1
                    log.error("alert webhook answered HTTP %s", resp.status)
                else:
                    self.sent += 1
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.failed += 1
            log.error("alert webhook failed: %s", exc.__class__.__name__ + ": " + str(exc))

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for pending POSTs (shutdown and tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def aclose(self) -> None:
        await self.drain()
        if self._session is not None:
            await self._session.close()
            self._session = None
