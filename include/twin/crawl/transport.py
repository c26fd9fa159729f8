"""The network layer of the polite client: sockets only to addresses the SSRF guard accepts.

httpx resolves names itself when it connects; a name checked a moment earlier may resolve
elsewhere by then (DNS rebinding). This transport resolves once, at connect time, checks every
address and connects to exactly those addresses.
"""

from __future__ import annotations

import http.cookiejar
from collections.abc import Iterable

import httpcore
import httpx

from twin.crawl.ssrf import Resolver, resolve_public


class NoCookies(http.cookiejar.DefaultCookiePolicy):
    """A cookie policy that keeps nothing: a crawler has no session to carry between pages."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False


class GuardedBackend(httpcore.SyncBackend):
    """Opens TCP connections only to addresses the SSRF guard accepts, checked at connect time."""

    def __init__(self, allow: tuple[str, ...], resolver: Resolver | None = None) -> None:
        self._allow = allow
        self._resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve_public(host, port, self._allow, self._resolver)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        error: httpcore.ConnectError | None = None
        for address in addresses:  # connect to the address checked, not to a fresh lookup
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"no address to connect to for {host}")


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with its connection pool opening sockets through `GuardedBackend`."""

    def __init__(self, allow: tuple[str, ...], resolver: Resolver | None = None) -> None:
        super().__init__(trust_env=False)
        # httpx has no public hook for the network backend; the pool is all this transport uses.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=None,  # per-host semaphores bound concurrency, not the pool
            max_keepalive_connections=32,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(allow, resolver),
        )
