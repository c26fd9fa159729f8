"""The polite HTTP client every crawler shares: guarded, rate-limited, robots-aware, retrying.

One `PoliteClient` is built per crawl run and shared by the crawler's worker threads. For each URL
it checks the SSRF guard and robots.txt (`robots`), waits for a free slot and a token of that
host's budget (`limits`), sends a GET with the crawler's User-Agent through a transport that
checks addresses again at connect time (`transport`), follows redirects itself (checking every hop
again), retries what is worth retrying, and returns a `FetchResult` or raises a `FetchError` that
names the URL and the cause.

Choices worth knowing:
- 429, 502, 503 and 504 and connect/read errors are retried with exponential backoff and jitter,
  honouring `Retry-After`; 500 is not retried, because it is almost always a page that is broken
  rather than a server that is busy, and retrying it only adds load.
- Crawl-delay and Request-rate of robots.txt lower that host's rate.
- Environment proxies are ignored and cookies are never kept: the address the SSRF guard checked
  must be the address connected to, and one site's cookies must not follow the crawler elsewhere.
- Bodies are read raw and decoded here (`codings`), never more than `max_body_bytes` at any
  step: a compressed body cannot expand past the limit in memory, and chained or unknown
  content codings are refused.
"""

from __future__ import annotations

import dataclasses
import http.cookiejar
import logging
import re
import threading
import time
from dataclasses import dataclass

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from twin.closing import Closing
from twin.crawl.codings import ACCEPT_ENCODING, BodyRefused, BoundedBody
from twin.crawl.decode import decode_body, media_type, type_allowed
from twin.crawl.errors import BlockedURL, FetchError
from twin.crawl.limits import HostGate, HostGates
from twin.crawl.policy import CrawlPolicy
from twin.crawl.retries import (
    RETRY_ERRORS,
    RETRY_STATUSES,
    RetryableStatus,
    attempts_made,
    describe,
    retry_after,
    worth_retrying,
)
from twin.crawl.robots import RobotsCache, RobotsRules
from twin.crawl.ssrf import Resolver, check_url, dns_resolver
from twin.crawl.transport import GuardedTransport, NoCookies

__all__ = [
    "BlockedURL",
    "CrawlPolicy",
    "CrawlStats",
    "FetchError",
    "FetchResult",
    "PoliteClient",
]

log = logging.getLogger("twin.crawl.http")

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class FetchResult:
    """What one fetch returned: the body (or a 304) with the headers a crawler keeps.

    `headers` has lower-cased names and no `set-cookie`; `etag` and `last_modified` are the
    validators to send next time (on a 304 the ones sent are kept when the server repeats none).
    """

    url: str
    final_url: str
    status: int
    headers: dict[str, str]
    content: bytes
    etag: str | None
    last_modified: str | None
    elapsed_s: float

    @property
    def not_modified(self) -> bool:
        """True when the server answered 304: the copy the caller holds is current."""
        return self.status == 304

    @property
    def content_type(self) -> str:
        """The media type without parameters ("text/html"), or "" when the server sent none."""
        return media_type(self.headers.get("content-type", ""))

    def text(self) -> str:
        """The body as text; never raises (see `twin.crawl.decode.decode_body`)."""
        return decode_body(self.content, self.headers.get("content-type", ""))


class CrawlStats:
    """Counters of one client's work, safe to update from many threads.

    `requests`: HTTP requests sent (robots.txt and retries included); `retries`: attempts
    repeated; `not_modified`: 304 answers; `blocked`: URLs refused by the SSRF guard;
    `robots_denied`: URLs refused by robots.txt.
    """

    FIELDS = ("requests", "retries", "not_modified", "blocked", "robots_denied")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.not_modified = 0
        self.blocked = 0
        self.robots_denied = 0

    def add(self, name: str, count: int = 1) -> None:
        """Add `count` to the counter `name`."""
        with self._lock:
            setattr(self, name, getattr(self, name) + count)

    def as_dict(self) -> dict[str, int]:
        """A consistent snapshot of every counter."""
        with self._lock:
            return {name: getattr(self, name) for name in self.FIELDS}

    def __repr__(self) -> str:
        return f"CrawlStats({self.as_dict()})"


class PoliteClient(Closing):
    """The shared, thread-safe HTTP client of every crawler (see the module docstring).

    `transport` replaces the network (tests pass an `httpx.MockTransport`); without it the client
    uses a transport that re-checks each connection's address against the SSRF guard.
    """

    def __init__(
        self, policy: CrawlPolicy | None = None, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.policy = policy or CrawlPolicy()
        self.stats = CrawlStats()
        self._backoff = wait_exponential_jitter(
            multiplier=self.policy.backoff_base_s,
            max=self.policy.backoff_max_s,
            jitter=self.policy.backoff_base_s,
        )
        self._agent = re.split(r"[/\s]", self.policy.user_agent, maxsplit=1)[0]
        self._resolver: Resolver | None = (
            dns_resolver(self.policy.dns_server, self.policy.connect_timeout_s)
            if self.policy.dns_server
            else None
        )
        self._gates = HostGates(self.policy.per_host_concurrency, self.policy.per_host_rate)
        self._robots = RobotsCache(self._load_robots, self._apply_crawl_delay)
        timeout = httpx.Timeout(self.policy.read_timeout_s, connect=self.policy.connect_timeout_s)
        self._client = httpx.Client(
            transport=transport
            or GuardedTransport(self.policy.allow_private_hosts, self._resolver),
            headers={"User-Agent": self.policy.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            timeout=timeout,
            follow_redirects=False,
            cookies=http.cookiejar.CookieJar(policy=NoCookies()),
            trust_env=False,
        )

    def close(self) -> None:
        """Close pooled connections; the client cannot be used afterwards."""
        self._client.close()

    def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: tuple[str, ...] | None = None,
    ) -> FetchResult:
        """GET `url` politely and return its body, or a 304 result when the validators still match.

        `etag` / `last_modified` are sent as If-None-Match / If-Modified-Since; `accept` replaces
        the policy's allowed content types for this call. Raises `FetchError` (or its subclass
        `BlockedURL`) naming `url` and the cause; each failure is logged once at INFO.
        """
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        types = accept or self.policy.allowed_content_types
        try:
            result = self._follow(url, headers, types, check_robots=self.policy.respect_robots)
        except FetchError as exc:
            log.info("fetch failed: %s", exc)
            raise
        if result.not_modified:
            self.stats.add("not_modified")
            return dataclasses.replace(
                result,
                content=b"",
                etag=result.etag or etag,
                last_modified=result.last_modified or last_modified,
            )
        return result

    def check(self, url: str) -> None:
        """Raise `BlockedURL` when the SSRF guard refuses `url` (FetchError when its host does
        not resolve); nothing is sent. For links found in content that is not fetched itself."""
        try:
            check_url(url, self.policy.allow_private_hosts, self._resolver)
        except BlockedURL:
            self.stats.add("blocked")
            raise

    def allowed_by_robots(self, url: str) -> bool:
        """Whether robots.txt of `url`'s origin lets this crawler fetch it (fetched once, cached).

        Always True when the policy does not respect robots.txt; robots.txt itself is always
        allowed; False for a URL that cannot be parsed.
        """
        if not self.policy.respect_robots:
            return True
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            return False
        if parsed.path == "/robots.txt":
            return True
        return self._robots.rules(_origin(parsed)).can_fetch(url, self._agent)

    # --- redirects, retries and one exchange -------------------------------------------------

    def _follow(
        self,
        url: str,
        headers: dict[str, str],
        types: tuple[str, ...] | None,
        *,
        check_robots: bool,
    ) -> FetchResult:
        """Fetch `url`, following redirects by hand so that every hop is checked again."""
        started = time.monotonic()
        chain = [url]
        current = url
        while True:
            self._check_hop(url, current, check_robots=check_robots)
            reply = self._exchange_with_retries(url, current, headers, types)
            if reply.location is None:
                return FetchResult(
                    url=url,
                    final_url=current,
                    status=reply.status,
                    headers=reply.headers,
                    content=reply.content,
                    etag=reply.headers.get("etag"),
                    last_modified=reply.headers.get("last-modified"),
                    elapsed_s=time.monotonic() - started,
                )
            try:
                target = str(httpx.URL(current).join(reply.location).copy_with(fragment=None))
            except (httpx.InvalidURL, ValueError) as exc:
                raise FetchError(url, f"invalid redirect to {reply.location!r} ({exc})") from None
            if target in chain:
                raise FetchError(url, "redirect loop: " + " -> ".join([*chain, target]))
            if len(chain) > self.policy.max_redirects:
                raise FetchError(url, f"more than {self.policy.max_redirects} redirects")
            chain.append(target)
            current = target

    def _check_hop(self, url: str, current: str, *, check_robots: bool) -> None:
        """Refuse `current` (the URL asked for, or a redirect target) by SSRF guard or robots."""
        try:
            check_url(current, self.policy.allow_private_hosts, self._resolver)
        except BlockedURL as exc:
            self.stats.add("blocked")
            if current == url:
                raise
            raise BlockedURL(url, f"redirect to {current} refused: {exc.reason}") from None
        if check_robots and not self.allowed_by_robots(current):
            self.stats.add("robots_denied")
            where = "" if current == url else f" (redirect to {current})"
            failure = self._robots.rules(_origin(httpx.URL(current))).unavailable
            if failure:
                reason = f"robots.txt unavailable ({failure}), so the host is not crawled{where}"
                raise FetchError(url, reason)
            raise FetchError(url, f"disallowed by robots.txt{where}")

    def _exchange_with_retries(
        self,
        url: str,
        current: str,
        headers: dict[str, str],
        types: tuple[str, ...] | None,
    ) -> _Reply:
        """One request/response of the redirect chain, retried when worth it."""
        attempts = self.policy.retries + 1
        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            retry=retry_if_exception(worth_retrying),
            before_sleep=lambda state: self._before_retry(current, state, attempts),
            reraise=True,
        )
        try:
            return retrying(self._exchange, url, current, headers, types)
        except RetryableStatus as exc:
            reason = f"{exc.status} after {attempts_made(retrying)}"
            raise FetchError(url, _at(reason, url, current), status=exc.status) from None
        except RETRY_ERRORS as exc:
            reason = f"{describe(exc)} after {attempts_made(retrying)}"
            raise FetchError(url, _at(reason, url, current)) from exc
        except httpx.HTTPError as exc:
            raise FetchError(url, _at(describe(exc), url, current)) from exc

    def _exchange(
        self,
        url: str,
        current: str,
        headers: dict[str, str],
        types: tuple[str, ...] | None,
    ) -> _Reply:
        """Send one GET to `current` within its host's limits and read the answer."""
        gate = self._gate(httpx.URL(current))
        request_headers = dict(headers)
        if types:
            request_headers["Accept"] = ", ".join(types)
        with gate.slots:
            gate.take_token()
            self.stats.add("requests")
            request = self._client.build_request("GET", current, headers=request_headers)
            try:
                response = self._client.send(request, stream=True)
            except BlockedURL as exc:  # refused at connect time: the name now resolves elsewhere
                self.stats.add("blocked")
                raise BlockedURL(url, _at(exc.reason, url, current)) from None
            except httpx.RemoteProtocolError as exc:
                if "location header" not in str(exc).lower():
                    raise
                # httpx reads the Location as it answers: a broken one is no transient fault
                raise FetchError(url, _at(f"invalid redirect ({exc})", url, current)) from None
            try:
                return self._read(url, current, response, types, gate)
            finally:
                response.close()

    def _read(
        self,
        url: str,
        current: str,
        response: httpx.Response,
        types: tuple[str, ...] | None,
        gate: HostGate,
    ) -> _Reply:
        """Turn a streamed response into a reply, or raise what its status and body call for."""
        status = response.status_code
        headers = {k: v for k, v in response.headers.items() if k != "set-cookie"}
        if status in RETRY_STATUSES:
            wait_s = retry_after(response.headers.get("retry-after"))
            if wait_s is not None:
                # The host asked everyone to wait, so every thread heading there waits too.
                gate.hold_off(min(wait_s, self.policy.backoff_max_s))
            raise RetryableStatus(status, wait_s)
        if status in REDIRECT_STATUSES:
            location = response.headers.get("location")
            if not location:
                raise FetchError(url, _at(f"{status} redirect without a Location", url, current))
            return _Reply(status, headers, b"", location)
        if status == 304:
            return _Reply(status, headers, b"", None)
        if not 200 <= status < 300:
            reason = f"{status} {response.reason_phrase}".strip()
            raise FetchError(url, _at(reason, url, current), status=status)
        if types is not None:
            kind = media_type(response.headers.get("content-type", ""))
            if not type_allowed(kind, types):
                raise FetchError(
                    url, _at(f"unexpected content type {kind or '(none)'!r}", url, current)
                )
        limit = self.policy.max_body_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            reason = f"body larger than {limit} bytes (Content-Length {declared})"
            raise FetchError(url, _at(reason, url, current))
        try:
            body = BoundedBody(response.headers.get("content-encoding", ""), limit)
            for chunk in response.iter_raw():
                body.feed(chunk)
        except BodyRefused as exc:
            raise FetchError(url, _at(str(exc), url, current)) from None
        return _Reply(status, headers, body.finish(), None)

    def _wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the server's Retry-After, else exponential + jitter."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            return min(exc.retry_after, self.policy.backoff_max_s)
        return min(self._backoff(state), self.policy.backoff_max_s)

    def _before_retry(self, url: str, state: RetryCallState, attempts: int) -> None:
        """Count and log one retry (URL and reason only: headers may carry secrets)."""
        self.stats.add("retries")
        exc = state.outcome.exception() if state.outcome else None
        reason = f"{exc.status}" if isinstance(exc, RetryableStatus) else describe(exc)
        delay = state.next_action.sleep if state.next_action else 0.0
        log.info(
            "retrying %s in %.1fs (attempt %d of %d failed: %s)",
            url,
            delay,
            state.attempt_number,
            attempts,
            reason,
        )

    # --- per-host limits and robots.txt ------------------------------------------------------

    def _gate(self, url: httpx.URL) -> HostGate:
        """The concurrency and rate limits of `url`'s host:port, shared by all threads."""
        return self._gates.get(_host_key(url))

    def _load_robots(self, origin: str) -> str:
        """The body of `origin`/robots.txt; raises FetchError (logged when it disallows all)."""
        try:
            return self._follow(f"{origin}/robots.txt", {}, None, check_robots=False).text()
        except FetchError as exc:
            if exc.status is None or exc.status >= 500 or exc.status == 429:
                log.info("robots.txt unavailable, disallowing %s: %s", origin, exc.reason)
            raise

    def _apply_crawl_delay(self, origin: str, rules: RobotsRules) -> None:
        """Lower the host's rate to what Crawl-delay or Request-rate asks for, if lower."""
        rate = rules.max_rate(self._agent)
        if rate:
            self._gate(httpx.URL(origin)).slow_down(rate)


@dataclass(frozen=True)
class _Reply:
    """One response of a redirect chain: a body, a 304, or a redirect (`location` set)."""

    status: int
    headers: dict[str, str]
    content: bytes
    location: str | None


def _at(reason: str, url: str, current: str) -> str:
    """`reason`, saying which redirect hop it happened at when that is not `url` itself."""
    return reason if current == url else f"{reason} (at {current})"


def _origin(url: httpx.URL) -> str:
    """scheme://host[:port] of `url`, the scope of one robots.txt."""
    host = url.raw_host.decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return f"{url.scheme}://{host}" + (f":{url.port}" if url.port else "")


def _host_key(url: httpx.URL) -> str:
    """host:port of `url` (default port filled in), the scope of the per-host limits."""
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{url.raw_host.decode('ascii')}:{port}"
