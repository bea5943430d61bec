"""The upstream HTTP/1.1 client against a raw asyncio server on loopback that can misbehave in
the ways real upstreams do: chunked and close-delimited bodies, idle connections closed under
us, silence, refusal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from tests.conftest import free_port

from gearshift.providers.http1 import Http1Pool, UpstreamClosed

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for server in servers:
        server.close()


async def post(pool: Http1Pool, timeout: float = 2.0) -> tuple[int, bytes]:
    response = await pool.post(
        "/chat/completions", b"{}", {"X-Test": "1"}, connect_timeout=1, read_timeout=timeout
    )
    return response.status, await response.read()


async def test_keep_alive_reuses_one_connection(serve: Callable[[Handler], Awaitable[str]]) -> None:
    connections = 0
    requests: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                requests.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    pool = Http1Pool(await serve(handler))
    for _ in range(5):
        assert await post(pool) == (200, b"ok")
    assert connections == 1
    assert requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nX-Test: 1\r\n" in requests[0] and requests[0].endswith(b"\r\n\r\n{}")
    await pool.aclose()


async def test_chunked_and_close_delimited_bodies(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    pool = Http1Pool(await serve(chunked))
    response = await pool.post("/x", b"", {}, connect_timeout=1, read_timeout=1)
    pieces = [chunk async for chunk in response.iter_chunks()]
    assert b"".join(pieces) == b"data: 1\n\ndata: 2\n\n" and len(pieces) == 2
    assert await post(Http1Pool(await serve(until_close))) == (200, b"all of it")


async def test_idle_connection_closed_by_upstream_is_retried_once(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def one_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        # Claims keep-alive, then closes anyway (an upstream's idle timeout firing).
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    pool = Http1Pool(await serve(one_per_connection))
    assert await post(pool) == (200, b"ok")
    await asyncio.sleep(0.05)  # the close reaches our side
    assert await post(pool) == (200, b"ok")


async def test_connection_broken_mid_body(serve: Callable[[Handler], Awaitable[str]]) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        writer.transport.abort()

    pool = Http1Pool(await serve(broken))
    response = await pool.post("/x", b"", {}, connect_timeout=1, read_timeout=1)
    with pytest.raises(UpstreamClosed, match="mid-response"):
        await response.read()


async def test_read_timeout_and_refused_connection(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await post(Http1Pool(await serve(silent)), timeout=0.2)
    with pytest.raises(OSError):
        await post(Http1Pool(f"http://127.0.0.1:{free_port()}/v1"))


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        Http1Pool("ftp://example.com")
    assert Http1Pool("https://api.openai.com/v1").port == 443
