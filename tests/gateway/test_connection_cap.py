"""At most ``max_connections`` open connections per upstream origin; requests beyond it queue
(and a queued request that is cancelled, or a connection that breaks, never leaks a slot)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import Running, issue_config
from tests.gateway.test_http1 import Handler, post, read_request, serve  # noqa: F401

from gearshift.providers.http1 import Http1Pool

ASK = [{"role": "user", "content": "Is my refund processed?"}]


def test_requests_beyond_the_cap_queue_and_all_are_answered(
    upstream: FakeOpenAIServer, start_gateway: Callable[..., Running]
) -> None:
    config = issue_config(upstream.base_url)
    config["models"][0]["max_connections"] = 2
    client = start_gateway(config).client()
    upstream.okn.latency_s = 0.3

    def ask(_: int) -> str | None:
        return (
            client.chat.completions.create(model="small", messages=ASK).choices[0].message.content
        )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert answers == [upstream.okn.text] * 8
    assert upstream.max_in_flight == 2  # 8 at once from the client, never more than 2 upstream


async def test_cancelled_waiter_and_broken_connection_free_their_slots(
    serve: Callable[[Handler], Awaitable[str]],  # noqa: F811
) -> None:
    release = asyncio.Event()
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    pool = Http1Pool(await serve(handler), max_connections=1)
    first = asyncio.create_task(post(pool))
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(post(pool))
    await asyncio.sleep(0.05)
    assert pool.open == 1 and connections == 1  # the second request is queued, not connected
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    assert await first == (200, b"ok")  # "Connection: close": the slot is freed when it closes
    assert await post(pool) == (200, b"ok")
    await asyncio.sleep(0.05)
    assert pool.open == 0 and connections == 2
    await pool.aclose()
