"""The polite client against a real local HTTP server: manners, limits, retries and refusals.

Each test starts its own small `ThreadingHTTPServer` on 127.0.0.1, which counts what it receives,
so the assertions are about what the server saw as much as about what the caller got.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.reliability.rebinding_dns import RebindingDNS
from twin.crawl.http import BlockedURL, CrawlPolicy, FetchError, PoliteClient


@dataclass
class Reply:
    """What the test server answers to one request."""

    status: int = 200
    body: bytes = b"<html><body>ok</body></html>"
    headers: dict[str, str] = field(
        default_factory=lambda: {"Content-Type": "text/html; charset=utf-8"}
    )
    delay_s: float = 0.0
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes


Route = Reply | list[Reply] | Callable[[dict[str, str]], Reply]


class Site:
    """Routes of the test server and what it observed: hits per path, user agents, concurrency."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.user_agents: set[str] = set()
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return self.base + path

    def polite(self, **overrides: object) -> PoliteClient:
        return polite(self, **overrides)

    def answer(self, path: str, headers: dict[str, str]) -> Reply:
        """Count the request and pick its reply; a list of replies is served in turn."""
        with self._lock:
            self.hits[path] += 1
            self.user_agents.add(headers.get("user-agent", ""))
            route = self.routes.get(path.split("?", 1)[0])
            if isinstance(route, list):
                return route.pop(0) if len(route) > 1 else route[0]
        if route is None:
            return Reply(404, b"not found", {"Content-Type": "text/plain"})
        return route(headers) if callable(route) else route

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SiteServer

    def do_GET(self) -> None:
        site = self.server.site
        site.enter()
        try:
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = site.answer(self.path, headers)
            time.sleep(reply.delay_s)
        finally:
            site.leave()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.send_length:
            self.send_header("Content-Length", str(len(reply.body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if reply.status != 304:
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests assert on counts, not on access logs."""


class SiteServer(ThreadingHTTPServer):
    daemon_threads = True
    site: Site


@pytest.fixture
def site() -> Iterator[Site]:
    server = SiteServer(("127.0.0.1", 0), Handler)
    server.site = Site(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.site
    finally:
        server.shutdown()
        server.server_close()


def polite(site: Site, **overrides: object) -> PoliteClient:
    """A client allowed to reach the test site's host:port, with short backoffs so retries stay
    quick."""
    settings: dict[str, object] = {
        "allow_private_hosts": (site.base.removeprefix("http://"),),
        "backoff_base_s": 0.05,
        "backoff_max_s": 2.0,
        "per_host_rate": 1000.0,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 5.0,
    }
    settings.update(overrides)
    return PoliteClient(CrawlPolicy.model_validate(settings))


def test_robots_disallow_is_honoured_without_requesting_the_page(site: Site) -> None:
    site.routes["/robots.txt"] = Reply(
        body=b"User-agent: *\nDisallow: /private/\n", headers={"Content-Type": "text/plain"}
    )
    site.routes["/public"] = Reply()
    site.routes["/private/page"] = Reply()

    with site.polite() as client:
        assert client.fetch(site.url("/public")).status == 200
        with pytest.raises(FetchError) as err:
            client.fetch(site.url("/private/page"))
        assert client.allowed_by_robots(site.url("/private/other")) is False
        assert client.allowed_by_robots(site.url("/public")) is True

    assert err.value.reason == "disallowed by robots.txt"
    assert site.hits["/private/page"] == 0
    assert site.hits["/robots.txt"] == 1  # fetched once, then cached
    assert client.stats.robots_denied == 1
    assert all(agent.startswith("TwinOpsBot/0.1") for agent in site.user_agents)


ROBOTS_PATHS = (
    "/docs/public/a",
    "/docs/secret",
    "/paper.pdf",
    "/paper.pdf?x=1",
    "/ok",
    "/drafts-2024/x",
)


def test_robots_rules_apply_the_longest_match_and_wildcards(site: Site) -> None:
    site.routes["/robots.txt"] = Reply(
        body=b"User-agent: *\nDisallow: /docs/\nAllow: /docs/public/\nDisallow: /*.pdf$\n"
        b"\nUser-agent: TwinOpsBot\nDisallow: /drafts*\nAllow: /docs/public/\n"
        b"Disallow: /docs/\nDisallow: /*.pdf$\n",
        headers={"Content-Type": "text/plain"},
    )

    with site.polite() as client:
        allowed = {path: client.allowed_by_robots(site.url(path)) for path in ROBOTS_PATHS}

    assert allowed == {
        "/docs/public/a": True,  # the longer Allow wins over Disallow: /docs/
        "/docs/secret": False,
        "/paper.pdf": False,  # `*` and `$` are wildcards, not literal characters
        "/paper.pdf?x=1": True,
        "/ok": True,
        "/drafts-2024/x": False,  # the group naming this crawler applies, not `*`
    }


def test_unreachable_robots_txt_disallows_the_whole_host(site: Site) -> None:
    site.routes["/robots.txt"] = Reply(503, b"down", {"Content-Type": "text/plain"})
    site.routes["/page"] = Reply()

    with site.polite(retries=1) as client, pytest.raises(FetchError) as err:
        client.fetch(site.url("/page"))

    assert err.value.reason == (
        "robots.txt unavailable (503 after 2 attempts), so the host is not crawled"
    )

    assert site.hits["/robots.txt"] == 2  # one retry, as for any 503
    assert site.hits["/page"] == 0


def test_crawl_delay_spaces_requests_to_the_host(site: Site) -> None:
    site.routes["/robots.txt"] = Reply(
        body=b"User-agent: *\nCrawl-delay: 1\n", headers={"Content-Type": "text/plain"}
    )
    site.routes["/a"] = Reply()

    with site.polite(per_host_concurrency=4) as client:
        client.fetch(site.url("/a?1"))
        started = time.monotonic()
        client.fetch(site.url("/a?2"))
        elapsed = time.monotonic() - started

    assert elapsed >= 0.9


def test_429_with_retry_after_waits_then_succeeds(site: Site) -> None:
    site.routes["/busy"] = [Reply(429, b"slow down", {"Retry-After": "1"}), Reply()]

    with site.polite() as client:
        result = client.fetch(site.url("/busy"))

    assert result.status == 200
    assert result.elapsed_s >= 0.95
    assert site.hits["/busy"] == 2
    assert client.stats.retries == 1


def test_503_once_is_retried(site: Site) -> None:
    site.routes["/flaky"] = [Reply(503, b"", {"Content-Type": "text/plain"}), Reply()]

    with site.polite() as client:
        result = client.fetch(site.url("/flaky"))

    assert (result.status, site.hits["/flaky"]) == (200, 2)


def test_persistent_429_is_reported_with_the_attempts(site: Site) -> None:
    site.routes["/busy"] = Reply(429, b"", {"Content-Type": "text/plain"})

    with site.polite(retries=2) as client, pytest.raises(FetchError) as err:
        client.fetch(site.url("/busy"))

    assert str(err.value) == f"{site.url('/busy')}: 429 after 3 attempts"
    assert err.value.status == 429
    assert site.hits["/busy"] == 3


def test_500_is_reported_without_retrying(site: Site) -> None:
    site.routes["/broken"] = Reply(500, b"oops", {"Content-Type": "text/plain"})

    with site.polite() as client, pytest.raises(FetchError) as err:
        client.fetch(site.url("/broken"))

    assert str(err.value) == f"{site.url('/broken')}: 500 Internal Server Error"
    assert err.value.status == 500
    assert site.hits["/broken"] == 1


def test_relative_redirects_are_followed(site: Site) -> None:
    site.routes["/old/page"] = Reply(301, b"", {"Location": "../new/page#top"})
    site.routes["/new/page"] = Reply(body=b"moved here")

    with site.polite() as client:
        result = client.fetch(site.url("/old/page"))

    assert result.url == site.url("/old/page")
    assert result.final_url == site.url("/new/page")
    assert result.content == b"moved here"


def test_redirect_loop_is_detected(site: Site) -> None:
    site.routes["/a"] = Reply(302, b"", {"Location": "/b"})
    site.routes["/b"] = Reply(302, b"", {"Location": site.url("/a")})

    with site.polite() as client, pytest.raises(FetchError, match="redirect loop"):
        client.fetch(site.url("/a"))

    assert (site.hits["/a"], site.hits["/b"]) == (1, 1)


def test_too_many_redirects_are_refused(site: Site) -> None:
    for n in range(5):
        site.routes[f"/r{n}"] = Reply(302, b"", {"Location": f"/r{n + 1}"})

    with site.polite(max_redirects=2) as client, pytest.raises(FetchError, match="more than 2"):
        client.fetch(site.url("/r0"))

    assert site.hits["/r3"] == 0


@pytest.mark.parametrize(
    ("target", "words"),
    [("http://10.0.0.1/x", "private"), ("http://169.254.169.254/latest/", "metadata")],
)
def test_redirect_to_a_private_address_is_refused(site: Site, target: str, words: str) -> None:
    site.routes["/go"] = Reply(302, b"", {"Location": target})

    with site.polite() as client, pytest.raises(BlockedURL) as err:
        client.fetch(site.url("/go"))

    assert err.value.url == site.url("/go")
    assert target in err.value.reason
    assert words in err.value.reason
    assert client.stats.blocked == 1


def test_loopback_is_refused_unless_allowed(site: Site) -> None:
    site.routes["/page"] = Reply()

    with site.polite(allow_private_hosts=()) as client, pytest.raises(BlockedURL, match="loopback"):
        client.fetch(site.url("/page"))

    assert sum(site.hits.values()) == 0  # not even robots.txt was asked for


def test_dns_rebinding_is_refused_at_connect_time(site: Site) -> None:
    # A real DNS server answers the first lookup with the allowed test site and every later one
    # with the metadata address: the check passes, the connection must not.
    site.routes["/page"] = Reply()
    port = int(site.base.rsplit(":", 1)[1])
    with RebindingDNS("rebind.test", ["127.0.0.1", "169.254.169.254"]) as dns:
        client = site.polite(respect_robots=False, retries=0, dns_server=dns.address)
        with client, pytest.raises(BlockedURL, match="metadata") as err:
            client.fetch(f"http://rebind.test:{port}/page")

    assert dns.queries["A"] == 2  # checked once, resolved again when connecting
    assert "169.254.169.254" in err.value.reason
    assert sum(site.hits.values()) == 0


def test_allow_list_pair_does_not_open_other_ports_of_the_host(site: Site) -> None:
    site.routes["/go"] = Reply(302, b"", {"Location": "http://127.0.0.1:1/admin"})

    with site.polite() as client, pytest.raises(BlockedURL, match="loopback") as err:
        client.fetch(site.url("/go"))

    assert "127.0.0.1:1" in err.value.reason


def test_oversize_bodies_are_aborted(site: Site) -> None:
    site.routes["/declared"] = Reply(body=b"x" * 5000)
    site.routes["/streamed"] = Reply(body=b"x" * 5000, send_length=False)
    site.routes["/fits"] = Reply(body=b"x" * 1000)

    with site.polite(max_body_bytes=1000) as client:
        with pytest.raises(FetchError, match="body larger than 1000 bytes"):
            client.fetch(site.url("/declared"))
        with pytest.raises(FetchError, match="body larger than 1000 bytes") as err:
            client.fetch(site.url("/streamed"))
        assert len(client.fetch(site.url("/fits")).content) == 1000

    assert "Content-Length" not in err.value.reason  # caught while reading, not from the header


def test_unexpected_content_type_is_refused(site: Site) -> None:
    site.routes["/logo"] = Reply(body=b"\x89PNG....", headers={"Content-Type": "image/png"})

    with site.polite() as client:
        with pytest.raises(FetchError, match="unexpected content type 'image/png'"):
            client.fetch(site.url("/logo"))
        assert client.fetch(site.url("/logo"), accept=("image/*",)).content == b"\x89PNG...."


def test_etag_conditional_get_yields_304(site: Site) -> None:
    def feed(headers: dict[str, str]) -> Reply:
        if headers.get("if-none-match") == '"v1"':
            return Reply(304, b"", {"ETag": '"v1"'})
        return Reply(
            body=b"<rss/>", headers={"Content-Type": "application/rss+xml", "ETag": '"v1"'}
        )

    site.routes["/feed.xml"] = feed

    with site.polite() as client:
        first = client.fetch(site.url("/feed.xml"))
        second = client.fetch(site.url("/feed.xml"), etag=first.etag)

    assert (first.status, first.etag, first.content) == (200, '"v1"', b"<rss/>")
    assert (second.status, second.not_modified, second.content) == (304, True, b"")
    assert second.etag == '"v1"'
    assert client.stats.not_modified == 1


def test_body_mislabelled_as_utf8_still_decodes(site: Site) -> None:
    site.routes["/cafe"] = Reply(
        body="café".encode("cp1252"), headers={"Content-Type": "text/plain; charset=utf-8"}
    )

    with site.polite() as client:
        result = client.fetch(site.url("/cafe"))

    assert result.text() == "café"


def test_per_host_concurrency_never_exceeds_the_limit(site: Site) -> None:
    site.routes["/slow"] = Reply(delay_s=0.2)

    with site.polite(per_host_concurrency=3) as client, ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda n: client.fetch(site.url(f"/slow?n={n}")), range(15)))

    assert all(result.status == 200 for result in results)
    assert site.max_in_flight == 3  # reached, never exceeded


def test_per_host_rate_is_honoured(site: Site) -> None:
    site.routes["/item"] = Reply()

    with site.polite(per_host_rate=20.0, per_host_concurrency=4) as client:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda n: client.fetch(site.url(f"/item?n={n}")), range(20)))
        elapsed = time.monotonic() - started

    # 21 requests (robots.txt included) with a burst of 4 need at least 17/20 s.
    assert elapsed >= 0.8
    assert client.stats.requests == 21
