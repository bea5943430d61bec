"""Outbound HTTP proxies for upstream calls: which proxy (if any) a URL goes through, and an
HTTP CONNECT tunnel through it.

Which proxy: a model's ``proxy:`` wins (``direct`` means none); otherwise the standard variables,
read the way curl and Python's urllib read them: ``HTTPS_PROXY`` for https:// upstreams,
``HTTP_PROXY`` for http:// ones (lower-case spellings too), and ``NO_PROXY`` (a comma-separated list
of hosts, ``.domain`` suffixes, ``host:port``, or ``*``) for the hosts that bypass it. Resolved
once per upstream origin when its pool is made, never per request.

The tunnel: ``CONNECT host:port`` with ``Proxy-Authorization: Basic`` from the proxy URL's
credentials; once the proxy answers 200 the connection carries the upstream's bytes (TLS to the
upstream is started inside it), so the proxy sees where a call goes but never what it says. Only
http:// proxies are supported (TLS to the proxy itself is not).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import unquote, urlsplit

__all__ = [
    "Proxy",
    "ProxyRefused",
    "ProxyUnreachable",
    "environment_problems",
    "open_tunnel",
    "parse_proxy",
    "proxy_for",
]

# Enough for any proxy's status line and headers; a longer answer is not a proxy we can talk to.
MAX_CONNECT_RESPONSE = 64 * 1024
P = TypeVar("P", bound=asyncio.Protocol)


class ProxyRefused(ConnectionError):
    """The proxy answered the CONNECT with something other than 200 (407, 403, 502...)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ProxyUnreachable(ConnectionError):
    """The proxy itself could not be reached (down, refused, wrong address)."""


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None  # the Proxy-Authorization value, from the URL's user:password
    display: str  # the proxy URL without credentials: what messages and logs name

    def __repr__(self) -> str:  # never print the credentials
        return f"Proxy({self.display})"


def parse_proxy(url: str) -> Proxy:
    # "proxy:3128" (no scheme) is common in HTTPS_PROXY: read it as http://proxy:3128.
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"unsupported proxy {_without_credentials(url)!r}: use http://host:port")
    authorization = None
    if parts.username is not None:
        user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(user_pass.encode()).decode("ascii")
    port = parts.port or 80
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Proxy(parts.hostname, port, authorization, f"http://{host}:{port}")


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.rpartition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"


def proxy_for(
    url: str, configured: str | None = None, env: dict[str, str] | None = None
) -> Proxy | None:
    """The proxy for calls to ``url``: the configured one, else the environment's (None: go
    direct)."""
    if configured == "direct":
        return None
    if configured:
        return parse_proxy(configured)
    import urllib.request  # stdlib's reading of *_PROXY / NO_PROXY; once per origin

    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment() if env is None else _lower(env)
    chosen = proxies.get(parts.scheme)
    if not chosen:
        return None
    host = parts.hostname or ""
    # proxy_bypass_environment is public but missing from typeshed
    bypass = getattr(urllib.request, "proxy_bypass_environment")(  # noqa: B009
        f"{host}:{parts.port}" if parts.port else host, proxies
    )
    return None if bypass else parse_proxy(chosen)


def environment_problems(env: dict[str, str] | None = None) -> list[str]:
    """Proxy variables that are set but unusable (a socks5:// or https:// proxy), as startup
    errors: better than every request failing, or going around the proxy."""
    import urllib.request

    proxies = urllib.request.getproxies_environment() if env is None else _lower(env)
    problems = []
    for scheme in ("https", "http"):
        value = proxies.get(scheme)
        if value:
            try:
                parse_proxy(value)
            except ValueError as exc:
                problems.append(f"{scheme.upper()}_PROXY: {exc}")
    return problems


def _lower(env: dict[str, str]) -> dict[str, str]:
    """``{"https": url, "http": url, "no": hosts}`` from an explicit environment (tests)."""
    out: dict[str, str] = {}
    for name, value in env.items():
        lowered = name.lower()
        if value and lowered.endswith("_proxy"):
            out.setdefault(lowered[: -len("_proxy")], value)
    return out


async def open_tunnel(
    proxy: Proxy,
    host: str,
    port: int,
    protocol_factory: Callable[[], P],
    *,
    tls: ssl.SSLContext | None,
    timeout: float,
) -> tuple[asyncio.Transport, P]:
    """A connection to ``host:port`` through the proxy, handed to a new protocol (TLS inside the
    tunnel when ``tls`` is given). Raises ``ProxyUnreachable`` / ``ProxyRefused`` naming the
    proxy (never its credentials), ``TimeoutError`` past ``timeout``."""
    loop = asyncio.get_running_loop()
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    async with asyncio.timeout(timeout):
        try:
            transport, setup = await loop.create_connection(_ConnectSetup, proxy.host, proxy.port)
        except OSError as exc:
            raise ProxyUnreachable(
                f"cannot reach proxy {proxy.display} (for {target}): {exc.strerror or exc}"
            ) from None
        request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if proxy.authorization:
            request += f"Proxy-Authorization: {proxy.authorization}\r\n"
        transport.write((request + "\r\n").encode("latin-1"))
        try:
            status, reason = await setup.answer
        except BaseException:
            transport.abort()
            raise
        if status != 200:
            transport.abort()
            raise ProxyRefused(
                f"proxy {proxy.display} refused the tunnel to {target}: {status} {reason}".rstrip(),
                status,
            )
        protocol = protocol_factory()
        if tls is None:
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            return transport, protocol
        try:
            inner = await loop.start_tls(transport, protocol, tls, server_hostname=host)
        except BaseException:
            transport.abort()
            raise
        assert inner is not None
        protocol.connection_made(inner)
        return inner, protocol


class _ConnectSetup(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT: its status line and headers, nothing more."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_CONNECT_RESPONSE:
                too_long = ConnectionError("the proxy's answer to CONNECT is too long")
                self.answer.set_exception(too_long)
            return
        status_line = self._buffer[:end].split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            self.answer.set_exception(
                ConnectionError(f"the proxy answered CONNECT with {status_line[:80]!r}")
            )
            return
        self.answer.set_result((int(parts[1]), parts[2] if len(parts) > 2 else ""))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(
                ConnectionError("the proxy closed the connection before answering CONNECT")
            )
