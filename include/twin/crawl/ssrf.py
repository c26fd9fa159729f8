"""The SSRF guard: refuse URLs that would make the crawler reach into private networks.

Links come from authors and from the pages they point to, so a crawler that fetched whatever it
was given could be steered at `http://169.254.169.254/` (cloud credentials), at the database next
to it, or at a router's admin page. `check_url` refuses such URLs before a request is made:

- schemes other than http and https, and URLs carrying credentials (`user:pass@host`);
- host names of cloud metadata services (`metadata.google.internal`, ...);
- hosts whose addresses (every one the resolver returns) are private, loopback, link-local,
  multicast, reserved, unspecified, shared (100.64.0.0/10) or a metadata address, including IPv6
  forms that embed such an IPv4 address (`::ffff:127.0.0.1`, 6to4, NAT64, Teredo).

Numeric spellings such as `2130706433`, `0x7f.1` or `0177.0.0.1` are caught because the host is
resolved the way the connection would resolve it, not compared as text.

The allow-list holds `host:port` pairs only (`127.0.0.1:8000`, `[::1]:8000`, `site.test:443`):
allowing a loopback test site must not open every other service on that host (the database,
MLflow, Airflow). A pair allows exactly that port of that name or address.

Names are resolved by a `Resolver`: the system's (`socket.getaddrinfo`) or, when a DNS server is
configured, a direct query to that server (`dns_resolver`). DNS rebinding (a name that resolves to
a public address when checked and to a private one when connected) is answered by resolving once
per connection and connecting to the very addresses checked: `PoliteClient`'s transport checks at
connect time, and git is pinned to the checked address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Callable
from functools import lru_cache

import httpx

from twin.crawl.errors import BlockedURL, FetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""(host, port) -> the addresses to connect to; raises OSError when the name does not resolve."""

ALLOWED_SCHEMES = frozenset({"http", "https"})
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "instance-data"})
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)
SHARED_NETWORK = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")
HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]@]+):(\d{1,5})$")


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for `host` (as a connection would resolve it)."""
    addresses: list[str] = []
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def dns_resolver(server: str, timeout_s: float = 5.0) -> Resolver:
    """A resolver that asks the DNS server `server` ("address" or "address:port") directly.

    Numeric hosts (every spelling the C library accepts) are not sent to the server.
    """
    import dns.exception
    import dns.resolver

    address, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [address.strip("[]")]
    resolver.port = int(port or 53)
    resolver.lifetime = timeout_s

    def resolve(host: str, port: int) -> list[str]:
        numeric = _numeric(host, port)
        if numeric is not None:
            return [numeric]
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = resolver.resolve(host.rstrip(".") + ".", rdtype, search=False)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except dns.exception.DNSException as exc:
                raise socket.gaierror(f"DNS lookup of {host} failed: {exc}") from None
            found += [rr.address for rr in answer if rr.address not in found]
        if not found:
            raise socket.gaierror(f"{host} does not resolve")
        return found

    return resolve


def check_url(url: str, allow: tuple[str, ...] = (), resolver: Resolver | None = None) -> None:
    """Return quietly when `url` may be fetched; raise `BlockedURL` saying why when it may not.

    A host name that does not resolve raises a plain `FetchError` (nothing to block, nothing to
    fetch either).
    """
    check_and_resolve(url, allow, resolver)


def check_and_resolve(
    url: str, allow: tuple[str, ...] = (), resolver: Resolver | None = None
) -> tuple[str, int, list[str]]:
    """`check_url`, returning (host, port, addresses checked) for a caller that pins them."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BlockedURL(url, f"not a valid URL ({exc})") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise BlockedURL(url, f"scheme {parsed.scheme or '(none)'!r} is not allowed")
    if parsed.userinfo:
        raise BlockedURL(url, "URLs carrying credentials are not allowed")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise BlockedURL(url, "no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        return host, port, resolve_public(host, port, allow, resolver)
    except BlockedURL as exc:
        raise BlockedURL(url, exc.reason) from None
    except OSError as exc:
        raise FetchError(url, f"cannot resolve host {host!r} ({exc})") from None


def resolve_public(
    host: str, port: int, allow: tuple[str, ...] = (), resolver: Resolver | None = None
) -> list[str]:
    """The addresses `host` resolves to, when every one of them may be reached on `port`.

    Raises `BlockedURL` (its `url` is `host`) when the name or any address is refused, and
    `OSError` (`socket.gaierror`) when the name does not resolve. A name allowed as a
    `host:port` pair is resolved but not checked.
    """
    pairs = parse_allow(allow)
    resolve = resolver or system_resolver
    name = _normalise_name(host)
    if (name, port) in pairs:
        return resolve(host, port)
    if name in METADATA_HOSTS:
        raise BlockedURL(host, f"{name} is a cloud metadata host")
    addresses = resolve(host, port)
    if not addresses:
        raise socket.gaierror(f"no addresses for {host}")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("%eth0")
        if _allowed(ip, port, pairs):
            continue
        problem = non_public_reason(ip)
        if problem:
            shown = host if address == host else f"{host} resolves to {address}, which"
            raise BlockedURL(host, f"{shown} is {problem} (port {port})")
    return addresses


def non_public_reason(ip: IPAddress) -> str | None:
    """Why `ip` is not a public internet address ("a loopback address", ...), or None if it is."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            problem = non_public_reason(embedded)
            if problem:
                return f"an IPv6 form of {embedded}, {problem}"
            if ip.ipv4_mapped is not None or ip in NAT64_NETWORK:
                return None  # only a way of reaching a public IPv4 address
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in SHARED_NETWORK, "a shared address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "not a global address"),
    )
    return next((reason for failed, reason in checks if failed), None)


@lru_cache(maxsize=64)
def parse_allow(allow: tuple[str, ...]) -> frozenset[tuple[str, int]]:
    """The allow-list as (host, port) pairs; a ValueError names an entry that is not `host:port`.

    An address is kept in its canonical spelling; a name lower case without a final dot.
    """
    pairs: set[tuple[str, int]] = set()
    for entry in allow:
        match = HOST_PORT.match(entry.strip())
        port = int(match.group(2)) if match else 0
        if not match or not 0 < port < 65536:
            raise ValueError(
                f"allowed private host {entry!r} is not a host:port pair "
                "(e.g. 127.0.0.1:8000 or [::1]:8000)"
            )
        host = _normalise_name(match.group(1))
        with contextlib.suppress(ValueError):
            host = str(ipaddress.ip_address(host))
        pairs.add((host, port))
    return frozenset(pairs)


def _numeric(host: str, port: int) -> str | None:
    """The address a numeric host spelling stands for ("0x7f.1" -> "127.0.0.1"), else None."""
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except OSError:
        return None
    return str(infos[0][4][0]) if infos else None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64, Teredo client), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64_NETWORK:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def _allowed(ip: IPAddress, port: int, pairs: frozenset[tuple[str, int]]) -> bool:
    """Whether `ip` (or the IPv4 address it embeds) on `port` is an allowed pair."""
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            candidates.append(embedded)
    return any((str(candidate), port) in pairs for candidate in candidates)


def _normalise_name(host: str) -> str:
    """A host name as allow-lists and metadata names are compared: lower case, no final dot."""
    return host.strip("[]").rstrip(".").lower()
