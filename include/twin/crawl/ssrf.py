"""The SSRF guard: refuse URLs that would make the crawler reach into private networks.

Links come from authors and from the pages they point to, so a crawler that fetched whatever it
was given could be steered at `http://169.254.169.254/` (cloud credentials), at the database next
to it, or at a router's admin page. `check_url` refuses such URLs before a request is made:

- schemes other than http and https, and URLs carrying credentials (`user:pass@host`);
- host names of cloud metadata services (`metadata.google.internal`, ...);
- hosts whose addresses (every one that `socket.getaddrinfo` returns) are private, loopback,
  link-local, multicast, reserved, unspecified, shared (100.64.0.0/10) or a metadata address,
  including IPv6 forms that embed such an IPv4 address (`::ffff:127.0.0.1`, 6to4, NAT64, Teredo).

Numeric spellings such as `2130706433`, `0x7f.1` or `0177.0.0.1` are caught because the host is
resolved the way the connection would resolve it, not compared as text.

Entries of `allow` (host names, case-insensitive; addresses; CIDRs) are let through: a host name
that matches is not resolved, an address that falls in an allowed network is accepted.

DNS rebinding: a name may resolve to a public address when checked and to a private one when
connected. `PoliteClient` therefore runs `check_url` on every request and on every redirect hop,
and its own transport checks again with `resolve_public` at connect time and connects to the very
address it checked, so there is no second lookup an attacker could answer differently.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

import httpx

from twin.crawl.policy import FetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

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


class BlockedURL(FetchError):
    """A URL the SSRF guard refuses; `reason` names the rule (scheme, credentials, address)."""


def check_url(url: str, allow: tuple[str, ...] = ()) -> None:
    """Return quietly when `url` may be fetched; raise `BlockedURL` saying why when it may not.

    A host name that does not resolve raises a plain `FetchError` (nothing to block, nothing to
    fetch either).
    """
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
        resolve_public(host, port, allow)
    except BlockedURL as exc:
        raise BlockedURL(url, exc.reason) from None
    except OSError as exc:
        raise FetchError(url, f"cannot resolve host {host!r} ({exc})") from None


def resolve_public(host: str, port: int, allow: tuple[str, ...] = ()) -> list[str]:
    """The addresses `host` resolves to, when every one of them may be reached.

    Raises `BlockedURL` (its `url` is `host`) when the name or any address is refused, and
    `OSError` (`socket.gaierror`) when the name does not resolve. An allowed host name is returned
    as it is, unresolved, so the connection resolves it as usual.
    """
    names, networks = _parse_allow(allow)
    name = _normalise_name(host)
    if name in names:
        return [host]
    if name in METADATA_HOSTS:
        raise BlockedURL(host, f"{name} is a cloud metadata host")
    addresses: list[str] = []
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(info[4][0])
        if address in addresses:
            continue
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("%eth0")
        if not _allowed(ip, networks):
            problem = non_public_reason(ip)
            if problem:
                shown = host if address == host else f"{host} resolves to {address}, which"
                raise BlockedURL(host, f"{shown} is {problem}")
        addresses.append(address)
    if not addresses:
        raise socket.gaierror(f"no addresses for {host}")
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


def _allowed(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether `ip` (or the IPv4 address it embeds) lies in one of the allowed networks."""
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            candidates.append(embedded)
    return any(
        candidate.version == network.version and candidate in network
        for candidate in candidates
        for network in networks
    )


def _normalise_name(host: str) -> str:
    """A host name as allow-lists and metadata names are compared: lower case, no final dot."""
    return host.strip("[]").rstrip(".").lower()


@lru_cache(maxsize=64)
def _parse_allow(allow: tuple[str, ...]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Split allow-list entries into host names and networks (a single address is a /32 or /128)."""
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in allow:
        text = _normalise_name(entry.strip())
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            names.add(text)
    return frozenset(names), tuple(networks)
