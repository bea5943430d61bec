"""Generic fixtures for every test area: a free loopback port, and a real uvicorn server running
an ASGI app in a background thread (the way httpx tests its client: real sockets, real HTTP)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvloop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class UvicornThread:
    """``with UvicornThread(app) as server: server.url`` — uvicorn (uvloop + httptools) serving
    ``app`` on 127.0.0.1 in a thread; lifespan startup errors are raised in the caller."""

    def __init__(self, app: Any, *, port: int | None = None, **config: Any) -> None:
        import uvicorn

        self.port = port or free_port()
        self.config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_level="warning",
            access_log=False,
            **config,
        )
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UvicornThread:
        def run() -> None:
            try:
                # The event loop gearshift serve uses, so tests exercise the same transports.
                uvloop.run(self.server.serve())
            except BaseException as exc:
                self._error = exc

        self._thread = threading.Thread(target=run, name="uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start within 20 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)

    def __enter__(self) -> UvicornThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def serve_asgi() -> Iterator[Callable[..., UvicornThread]]:
    """Factory: ``serve_asgi(app)`` starts a server that is stopped after the test."""
    started: list[UvicornThread] = []

    def start(app: Any, **config: Any) -> UvicornThread:
        server = UvicornThread(app, **config).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()
