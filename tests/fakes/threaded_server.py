"""Run an aiohttp application on a loopback port in a background thread, for fake providers.

Tests configure a fake through plain attributes and ``fail_next`` (read by handlers on the
server's loop); the GIL and deque's atomic operations make that safe enough for tests.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# A scripted failure: an HTTP status, or one of these behaviours.
#   "timeout"      hold the request without answering for ``hang_s`` seconds
#   "break"        start answering, then drop the connection mid-body
#   "stream_error" (streams) send some content, then an in-band error/exception event
#   "malformed"    answer 200 with a body of the wrong shape (OpenAI: no choices; Anthropic: no
#                  content; Bedrock: no output), or, on a stream, a first frame that does not parse
Failure = int | str


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


@dataclass
class Knobs:
    text: str = "Hello from the fake provider."
    tool_call: bool = True  # answer with a tool call when tools are offered
    tool_input: dict[str, Any] = field(default_factory=lambda: {"city": "Paris", "unit": "c"})
    input_tokens: int = 21  # uncached prompt tokens reported
    output_tokens: int = 9
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    hang_s: float = 5.0
    chunk_delay_s: float = 0.0  # pause between streamed events
    thinking: str = ""  # when set, a reasoning block precedes the answer (counted in output)
    omit_usage: bool = False  # streams: a proxy that strips usage (Bedrock: no metadata event)


class ThreadedServer:
    def __init__(self) -> None:
        self.knobs = Knobs()
        self.received: list[Received] = []
        self.stream_outcomes: list[str] = []  # per stream: "complete" or "disconnected"
        self._script: deque[Failure] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.ssl_context: ssl.SSLContext | None = None  # set before start() to serve HTTPS

    # -- knobs ---------------------------------------------------------------------------------

    def fail_next(self, failure: Failure, times: int = 1) -> None:
        self._script.extend([failure] * times)

    def next_failure(self) -> Failure | None:
        try:
            return self._script.popleft()
        except IndexError:
            return None

    def reset(self) -> None:
        self.knobs = Knobs()
        self.received.clear()
        self.stream_outcomes.clear()
        self._script.clear()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        raise NotImplementedError

    def start(self) -> ThreadedServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # surface start-up failures to the caller
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    async def _serve(self) -> None:
        self._runner = web.AppRunner(
            self.make_app(), handle_signals=False, access_log=None, shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Handlers still holding a scripted "timeout" would otherwise be destroyed pending.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def write_event(server: ThreadedServer, response: web.StreamResponse, data: bytes) -> None:
    """Write one stream event; note a client (gearshift) that went away, then pause if asked."""
    try:
        await response.write(data)
    except ConnectionResetError:
        server.stream_outcomes.append("disconnected")
        raise
    if server.knobs.chunk_delay_s:
        await asyncio.sleep(server.knobs.chunk_delay_s)


async def break_connection(request: web.Request, response: web.StreamResponse) -> None:
    """Drop the TCP connection after what was written so far (a crashed upstream)."""
    await asyncio.sleep(0.01)
    transport = request.transport
    if transport is not None:
        transport.abort()
