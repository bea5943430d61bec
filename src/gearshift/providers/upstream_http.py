"""HTTP plumbing the Anthropic and Bedrock providers share: one pooled aiohttp session per
provider, per-model timeouts, and the mapping of transport failures and statuses to
``UpstreamError`` so the pipeline can retry or fall back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from gearshift.config import ModelConfig
from gearshift.errors import UpstreamError, UpstreamTimeout

# 408 (request timeout), 409 (conflict, used for "model not ready"), 425, 429 and every 5xx
# (Anthropic's 529 "overloaded" included) are worth another try or another model.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
# How long to wait for the end of a body after a stream's final event (normally it is there).
DRAIN_TIMEOUT_S = 0.05


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status in RETRYABLE_STATUSES


class UpstreamSession:
    """A lazily created, pooled ``aiohttp.ClientSession`` (created inside the running loop, never
    at import or construction, so providers can be built before the server's loop exists)."""

    def __init__(self, *, limit: int = 200) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._limit = limit

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300)
            # auto_decompress stays on: providers may gzip JSON; event streams are not compressed.
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=lambda o: orjson.dumps(o).decode()
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def timeouts(model: ModelConfig) -> aiohttp.ClientTimeout:
    """Connect timeout, and a read timeout between bytes (so a slow but flowing stream lives)."""
    return aiohttp.ClientTimeout(
        total=None, sock_connect=model.connect_timeout_s, sock_read=model.read_timeout_s
    )


async def post(
    session: aiohttp.ClientSession,
    url: Any,
    body: bytes,
    headers: dict[str, str],
    model: ModelConfig,
) -> aiohttp.ClientResponse:
    """POST and return the response once its status line and headers are in.

    Transport failures become ``UpstreamTimeout``/``UpstreamError(retryable=True)``; HTTP
    statuses are left to the caller, which knows the provider's error shape."""
    try:
        return await session.post(url, data=body, headers=headers, timeout=timeouts(model))
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout(
            f"{model.name}: no answer from {_host(url)} within the timeout "
            f"({exc.__class__.__name__})",
            model=model.name,
        ) from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(
            f"{model.name}: cannot reach {_host(url)}: {exc}", model=model.name, retryable=True
        ) from None


async def read_all(response: aiohttp.ClientResponse, model: ModelConfig) -> bytes:
    try:
        return await response.read()
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise UpstreamTimeout(
            f"{model.name}: the upstream stopped sending mid-response (read timeout)",
            model=model.name,
        ) from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(
            f"{model.name}: the upstream connection broke mid-response: {exc}", model=model.name
        ) from None
    finally:
        response.release()


async def iter_chunks(response: aiohttp.ClientResponse, model: ModelConfig) -> AsyncIterator[bytes]:
    """The body as it arrives; a broken or stalled connection becomes ``UpstreamError``."""
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise UpstreamTimeout(
            f"{model.name}: the upstream stream stalled (no bytes within the read timeout)",
            model=model.name,
        ) from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(
            f"{model.name}: the upstream stream broke: {exc}", model=model.name
        ) from None


async def drain_for_reuse(response: aiohttp.ClientResponse) -> None:
    """After a stream's last event, read the (normally empty) rest of the body so the pooled
    connection is kept for the next call instead of being closed; give up quickly if the
    upstream keeps it open."""
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        await asyncio.wait_for(response.content.read(), DRAIN_TIMEOUT_S)


def json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _host(url: Any) -> str:
    text = str(url)
    scheme, _, rest = text.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if rest else text
