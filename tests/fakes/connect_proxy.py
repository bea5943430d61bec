"""A small real forward proxy on loopback, for tests and benchmarks: ``CONNECT host:port`` tunnels
(what clients use for https:// and what gearshift uses for every upstream) and absolute-form
requests (``POST http://host/path``, what most clients use for http:// through a proxy).

Steered like a corporate proxy would be: ``credentials`` demands ``Proxy-Authorization: Basic``
(407 with ``Proxy-Authenticate`` otherwise), ``refuse`` answers every request with that status
(403: "blocked by policy"). It records each tunnel's target, each absolute URL and each
Proxy-Authorization it saw.

Run standalone for benchmarks: ``python -m tests.fakes.connect_proxy --port 3128``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import threading
from urllib.parse import urlsplit

REASONS = {403: "Forbidden", 407: "Proxy Authentication Required", 502: "Bad Gateway"}


class FakeConnectProxy:
    def __init__(
        self, *, credentials: tuple[str, str] | None = None, refuse: int | None = None
    ) -> None:
        self.credentials = credentials
        self.refuse = refuse
        self.tunnels: list[str] = []  # "host:port" per CONNECT that was let through
        self.forwarded: list[str] = []  # absolute URL per plain-HTTP request forwarded
        self.authorizations: list[str | None] = []  # Proxy-Authorization of each request
        self.refused = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeConnectProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._client, "127.0.0.1", port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-connect-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def __enter__(self) -> FakeConnectProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- one client connection -----------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = [*lines[0].split(" "), "", ""][:3]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        auth = headers.get("proxy-authorization")
        self.authorizations.append(auth)
        status = self._verdict(auth)
        if status is not None:
            self.refused += 1
            extra = 'Proxy-Authenticate: Basic realm="fake"\r\n' if status == 407 else ""
            body = f"{status} {REASONS.get(status, '')}\n".encode()
            writer.write(
                f"HTTP/1.1 {status} {REASONS.get(status, 'Refused')}\r\n{extra}"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await _close(writer)
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = await self._open(host.strip("[]"), int(port), writer)
            if upstream is None:
                return
            self.tunnels.append(target)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await self._pipe(reader, writer, *upstream)
            return
        # Absolute-form: forward this request (and whatever follows on the connection) to the
        # origin, with the request line rewritten to origin-form and proxy headers dropped.
        url = urlsplit(target)
        upstream = await self._open(url.hostname or "", url.port or 80, writer)
        if upstream is None:
            return
        self.forwarded.append(target)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = [ln for ln in lines[1:] if ln and not ln.lower().startswith("proxy-")]
        rewritten = "\r\n".join([f"{method} {path} HTTP/1.1", *kept]) + "\r\n\r\n"
        upstream[1].write(rewritten.encode("latin-1"))
        await self._pipe(reader, writer, *upstream)

    def _verdict(self, auth: str | None) -> int | None:
        if self.credentials is not None:
            user, password = self.credentials
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if auth != expected:
                return 407
        return self.refuse

    async def _open(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await asyncio.open_connection(host, port)
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await _close(writer)
            return None

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        await _close(sink)


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description="fake CONNECT proxy (loopback)")
    parser.add_argument("--port", type=int, default=3128)
    args = parser.parse_args()
    proxy = FakeConnectProxy().start(args.port)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        proxy.stop()


if __name__ == "__main__":
    main()
