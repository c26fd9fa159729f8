"""One URL normaliser for every crawler: one canonical spelling per page.

`canonical_url` drops the fragment and tracking parameters (`utm_*`, `source`, `ref`, click ids,
...), lower-cases scheme and host, removes default ports and duplicate slashes, and makes an
empty path `/`. A trailing slash is kept as the site publishes it: on most servers `/a` and `/a/`
are different resources (one redirects to the other), and the site's own `<link rel=canonical>`
decides which one is the page.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# Query parameters that say where a reader came from, never which page it is.
TRACKING_PARAMS = frozenset(
    [
        "source",
        "ref",
        "ref_src",
        "ref_url",
        "referrer",
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "sk",
        "trk",
        "trkcampaign",
    ]
)
TRACKING_PREFIXES = ("utm_", "pk_", "hsa_")
DEFAULT_PORTS = {"http": 80, "https": 443}
DUPLICATE_SLASHES = re.compile(r"/{2,}")


def is_tracking_param(name: str) -> bool:
    """Whether a query parameter only records where the reader came from."""
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def canonical_url(url: str, base: str | None = None, *, keep_query: bool = True) -> str:
    """`url` (resolved against `base`) in its one canonical spelling; see the module docstring.

    With `keep_query=False` the whole query goes (story URLs whose queries are all tracking).
    """
    if base:
        url = urljoin(base, url.strip())
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    netloc = host
    port = parts.port  # each property of a split URL parses its netloc again: read them once
    if port and DEFAULT_PORTS.get(scheme) != port:
        netloc = f"{host}:{port}"
    username, password = parts.username, parts.password
    if username or password:  # kept, so the SSRF guard still sees and refuses them
        creds = username or ""
        creds += f":{password}" if password else ""
        netloc = f"{creds}@{netloc}"
    path = DUPLICATE_SLASHES.sub("/", parts.path) or "/"
    query = ""
    if keep_query and parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode([(k, v) for k, v in pairs if not is_tracking_param(k)])
    return urlunsplit((scheme, netloc, path, query, ""))


def site_host(url: str) -> str:
    """The host of `url` without a leading `www.`, for same-site comparisons."""
    return _site_host(urlsplit(url))


def same_site(a: str, b: str) -> bool:
    """Whether two URLs are on the same host (`www.` ignored) and port."""
    pa, pb = urlsplit(a), urlsplit(b)
    return _site_host(pa) == _site_host(pb) and (pa.port or DEFAULT_PORTS.get(pa.scheme)) == (
        pb.port or DEFAULT_PORTS.get(pb.scheme)
    )


def _site_host(parts: SplitResult) -> str:
    return (parts.hostname or "").lower().removeprefix("www.")
