"""Ledger fixtures: every test runs on SQLite and on PostgreSQL (a fresh database per test, from
GEARSHIFT_TEST_POSTGRES_URL; skipped when unset), each with a way to take the database down.

SQLite "goes down" when another connection holds its write lock (writes fail with "database is
locked" after a short busy timeout); PostgreSQL goes down when the loopback TCP proxy in front of
it stops accepting and cuts every open connection, as a crashed server or a network cut would.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest


class TcpProxy:
    """A loopback TCP forwarder that can be switched off (refusing and cutting connections)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.up()

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):  # shutdown wakes the thread blocked in accept()
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@dataclass
class Backend:
    """How a test reaches one database, and how it takes that database down and back up."""

    name: str
    url: str
    spool_dir: Path
    down: Any = None  # () -> None: make the database unreachable
    up: Any = None  # () -> None: bring it back
    _cleanup: list[Any] = field(default_factory=list)

    def open(self, **kwargs: Any) -> Any:
        from gearshift.ledger import open_store

        store = open_store(self.url, spool_dir=self.spool_dir, **kwargs)
        self._cleanup.append(store.close)
        return store

    @contextmanager
    def outage(self) -> Iterator[None]:
        self.down()
        try:
            yield
        finally:
            self.up()


def _sqlite_backend(tmp_path: Path) -> Backend:
    db = tmp_path / "ledger.db"
    backend = Backend("sqlite", f"sqlite:///{db}?busy_timeout_ms=50", tmp_path / "spool")
    holder: dict[str, sqlite3.Connection] = {}

    def down() -> None:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN EXCLUSIVE")  # holds the write lock: every writer gets SQLITE_BUSY
        holder["conn"] = conn

    def up() -> None:
        conn = holder.pop("conn")
        conn.execute("ROLLBACK")
        conn.close()

    backend.down, backend.up = down, up
    return backend


def _postgres_backend(base_url: str, tmp_path: Path) -> Iterator[Backend]:
    import psycopg

    name = f"gs_ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0] + "@" if len(netloc) == 2 else ""
    url = urlunsplit((parts.scheme, f"{user}127.0.0.1:{proxy.port}", f"/{name}", "", ""))
    backend = Backend("postgresql", url, tmp_path / "spool")
    backend.down, backend.up = proxy.down, proxy.up
    try:
        yield backend
    finally:
        for close in reversed(backend._cleanup):
            close()
        proxy.down()
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        b = _sqlite_backend(tmp_path)
        try:
            yield b
        finally:
            for close in reversed(b._cleanup):
                close()
        return
    base_url = os.environ.get("GEARSHIFT_TEST_POSTGRES_URL")
    if not base_url:
        pytest.skip("GEARSHIFT_TEST_POSTGRES_URL is not set (run via scripts/test.sh)")
    yield from _postgres_backend(base_url, tmp_path)
