"""The polite HTTP client every crawler shares: guarded, rate-limited, robots-aware, retrying.

One `PoliteClient` is built per crawl run and shared by the crawler's worker threads. For each URL
it checks the SSRF guard and robots.txt, waits for a free slot and a token of that host's budget,
sends a GET with the crawler's User-Agent, follows redirects itself (checking every hop again),
retries what is worth retrying, and returns a `FetchResult` or raises a `FetchError` that names the
URL and the cause.

Choices worth knowing:
- 429, 502, 503 and 504 and connect/read errors are retried with exponential backoff and jitter,
  honouring `Retry-After`; 500 is not retried, because it is almost always a page that is broken
  rather than a server that is busy, and retrying it only adds load.
- robots.txt is read once per origin; 4xx means no rules, 5xx or no answer means "disallow all"
  for that origin until the client is closed (as Google does); Crawl-delay and Request-rate lower
  that host's rate. `urllib.robotparser` applies the first matching rule and does not know the
  `*`/`$` wildcards.
- Environment proxies are ignored and cookies are never kept: the address the SSRF guard checked
  must be the address connected to, and one site's cookies must not follow the crawler elsewhere.
"""

from __future__ import annotations

import codecs
import dataclasses
import email.utils
import http.cookiejar
import logging
import re
import ssl
import threading
import time
import urllib.robotparser
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import charset_normalizer
import httpcore
import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from twin.crawl.policy import CrawlPolicy, FetchError
from twin.crawl.ssrf import BlockedURL, check_url, resolve_public

__all__ = [
    "BlockedURL",
    "CrawlPolicy",
    "CrawlStats",
    "FetchError",
    "FetchResult",
    "PoliteClient",
]

log = logging.getLogger("twin.crawl.http")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Transport failures that a second attempt can cure; protocol misuse or bad URLs cannot.
RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# Labels that browsers decode as windows-1252 (WHATWG Encoding); cp1252 is their superset.
LATIN1_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii"})
META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
UNICODE_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Wide encodings are never guessed without a BOM: short Latin text looks like UTF-16 otherwise.
NO_GUESS = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le", "utf_7"]


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
        """The body as text; never raises.

        Tried in order: a byte-order mark, UTF-8 (bytes that are valid UTF-8 and not ASCII are
        almost never anything else, while a wrong `charset=iso-8859-1` is common), the charset of
        the Content-Type header, a `<meta charset>`, windows-1252 for mostly-Latin text, a guess by
        charset_normalizer, and finally windows-1252 with replacement characters.
        """
        data = self.content
        for bom, encoding in UNICODE_BOMS:
            if data.startswith(bom):
                return data.decode(encoding, errors="replace")
        labels = ["utf-8", charset_of(self.headers.get("content-type", ""))]
        meta = META_CHARSET.search(data[:4096])
        if meta:
            labels.append(meta.group(1).decode("ascii", errors="ignore"))
        for label in labels:
            decoded = _decode_strict(data, label)
            if decoded is not None:
                return decoded
        western = _decode_strict(data, "cp1252")
        if western is not None and _mostly_ascii_letters(western):
            return western
        guess = charset_normalizer.from_bytes(data, cp_exclusion=NO_GUESS).best()
        if guess is not None:
            return str(guess)
        return western if western is not None else data.decode("cp1252", errors="replace")


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


class PoliteClient:
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
        self._lock = threading.Lock()
        self._gates: dict[str, _HostGate] = {}
        self._robots: dict[str, urllib.robotparser.RobotFileParser] = {}
        self._robots_locks: dict[str, threading.Lock] = {}
        self._robots_unavailable: dict[str, str] = {}  # origin -> why its robots.txt failed
        timeout = httpx.Timeout(self.policy.read_timeout_s, connect=self.policy.connect_timeout_s)
        self._client = httpx.Client(
            transport=transport or _GuardedTransport(self.policy.allow_private_hosts),
            headers={"User-Agent": self.policy.user_agent},
            timeout=timeout,
            follow_redirects=False,
            cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
            trust_env=False,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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
        return self._robots_for(_origin(parsed)).can_fetch(self._agent, url)

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
            check_url(current, self.policy.allow_private_hosts)
        except BlockedURL as exc:
            self.stats.add("blocked")
            if current == url:
                raise
            raise BlockedURL(url, f"redirect to {current} refused: {exc.reason}") from None
        if check_robots and not self.allowed_by_robots(current):
            self.stats.add("robots_denied")
            where = "" if current == url else f" (redirect to {current})"
            with self._lock:
                failure = self._robots_unavailable.get(_origin(httpx.URL(current)))
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
            retry=retry_if_exception(_worth_retrying),
            before_sleep=lambda state: self._before_retry(current, state, attempts),
            reraise=True,
        )
        try:
            return retrying(self._exchange, url, current, headers, types)
        except _RetryableStatus as exc:
            reason = f"{exc.status} after {_attempts(retrying)}"
            raise FetchError(url, _at(reason, url, current), status=exc.status) from None
        except RETRY_ERRORS as exc:
            reason = f"{_describe(exc)} after {_attempts(retrying)}"
            raise FetchError(url, _at(reason, url, current)) from exc
        except httpx.HTTPError as exc:
            raise FetchError(url, _at(_describe(exc), url, current)) from exc

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
        gate: _HostGate,
    ) -> _Reply:
        """Turn a streamed response into a reply, or raise what its status and body call for."""
        status = response.status_code
        headers = {k: v for k, v in response.headers.items() if k != "set-cookie"}
        if status in RETRY_STATUSES:
            retry_after = _retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
                # The host asked everyone to wait, so every thread heading there waits too.
                gate.hold_off(min(retry_after, self.policy.backoff_max_s))
            raise _RetryableStatus(status, retry_after)
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
            if not _type_allowed(kind, types):
                raise FetchError(
                    url, _at(f"unexpected content type {kind or '(none)'!r}", url, current)
                )
        limit = self.policy.max_body_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            reason = f"body larger than {limit} bytes (Content-Length {declared})"
            raise FetchError(url, _at(reason, url, current))
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise FetchError(url, _at(f"body larger than {limit} bytes", url, current))
        return _Reply(status, headers, bytes(body), None)

    def _wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the server's Retry-After, else exponential + jitter."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _RetryableStatus) and exc.retry_after is not None:
            return min(exc.retry_after, self.policy.backoff_max_s)
        return min(self._backoff(state), self.policy.backoff_max_s)

    def _before_retry(self, url: str, state: RetryCallState, attempts: int) -> None:
        """Count and log one retry (URL and reason only: headers may carry secrets)."""
        self.stats.add("retries")
        exc = state.outcome.exception() if state.outcome else None
        reason = f"{exc.status}" if isinstance(exc, _RetryableStatus) else _describe(exc)
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

    def _gate(self, url: httpx.URL) -> _HostGate:
        """The concurrency and rate limits of `url`'s host:port, shared by all threads."""
        key = _host_key(url)
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                gate = _HostGate(self.policy.per_host_concurrency, self.policy.per_host_rate)
                self._gates[key] = gate
            return gate

    def _robots_for(self, origin: str) -> urllib.robotparser.RobotFileParser:
        """The parsed robots.txt of `origin`, fetched by one thread while the others wait."""
        with self._lock:
            rules = self._robots.get(origin)
            if rules is not None:
                return rules
            origin_lock = self._robots_locks.setdefault(origin, threading.Lock())
        with origin_lock:
            with self._lock:
                rules = self._robots.get(origin)
            if rules is None:
                rules = self._load_robots(origin)
                with self._lock:
                    self._robots[origin] = rules
            return rules

    def _load_robots(self, origin: str) -> urllib.robotparser.RobotFileParser:
        """Fetch and parse `origin`/robots.txt; 4xx allows all, any other failure disallows all."""
        robots_url = f"{origin}/robots.txt"
        rules = urllib.robotparser.RobotFileParser(robots_url)
        try:
            result = self._follow(robots_url, {}, None, check_robots=False)
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                rules.allow_all = True
            else:
                log.info("robots.txt unavailable, disallowing %s: %s", origin, exc.reason)
                rules.disallow_all = True
                with self._lock:
                    self._robots_unavailable[origin] = exc.reason
            return rules
        rules.parse(result.text().splitlines())
        self._apply_crawl_delay(origin, rules)
        return rules

    def _apply_crawl_delay(self, origin: str, rules: urllib.robotparser.RobotFileParser) -> None:
        """Lower the host's rate to what Crawl-delay or Request-rate asks for, if lower."""
        rates = []
        delay = rules.crawl_delay(self._agent)
        if delay:
            rates.append(1.0 / float(delay))
        request_rate = rules.request_rate(self._agent)
        if request_rate and request_rate.requests and request_rate.seconds:
            rates.append(request_rate.requests / request_rate.seconds)
        if rates:
            self._gate(httpx.URL(origin)).slow_down(min(rates))


@dataclass(frozen=True)
class _Reply:
    """One response of a redirect chain: a body, a 304, or a redirect (`location` set)."""

    status: int
    headers: dict[str, str]
    content: bytes
    location: str | None


class _RetryableStatus(Exception):
    """A status worth another attempt (429/502/503/504), with the server's Retry-After if any."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(status, retry_after)
        self.status = status
        self.retry_after = retry_after


@dataclass
class _HostGate:
    """Per-host limits: a semaphore for concurrency and a token bucket for the request rate.

    The bucket hands out reservations: a caller takes a token even when none is left (the count
    goes negative) and sleeps until its turn, so waiting threads are served in order.
    """

    concurrency: int
    rate: float
    slots: threading.BoundedSemaphore = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _burst: float = field(init=False)
    _tokens: float = field(init=False)
    _stamp: float = field(init=False, default_factory=time.monotonic)
    _paused_until: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(self.concurrency)
        self._burst = float(self.concurrency)
        self._tokens = self._burst

    def take_token(self) -> None:
        """Block until this host's rate (and any Retry-After pause) allows one more request."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            wait = max(-self._tokens / self.rate, self._paused_until - now, 0.0)
        if wait > 0:
            time.sleep(wait)

    def slow_down(self, rate: float) -> None:
        """Lower the rate to `rate` requests per second (never raise it) with no bursts."""
        with self._lock:
            if rate < self.rate:
                self.rate = rate
                self._burst = 1.0
                self._tokens = min(self._tokens, 1.0)

    def hold_off(self, seconds: float) -> None:
        """Send nothing to this host for `seconds` from now."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """A cookie policy that keeps nothing: a crawler has no session to carry between pages."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False


class _GuardedBackend(httpcore.SyncBackend):
    """Opens TCP connections only to addresses the SSRF guard accepts, checked at connect time."""

    def __init__(self, allow: tuple[str, ...]) -> None:
        self._allow = allow

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve_public(host, port, self._allow)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        error: httpcore.ConnectError | None = None
        for address in addresses:  # connect to the address checked, not to a fresh lookup
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"no address to connect to for {host}")


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with its connection pool opening sockets through `_GuardedBackend`."""

    def __init__(self, allow: tuple[str, ...]) -> None:
        super().__init__(trust_env=False)
        # httpx has no public hook for the network backend; the pool is all this transport uses.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=None,  # per-host semaphores bound concurrency, not the pool
            max_keepalive_connections=32,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(allow),
        )


def media_type(content_type: str) -> str:
    """The media type of a Content-Type value, lower case, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def charset_of(content_type: str) -> str:
    """The charset parameter of a Content-Type value, or ""."""
    match = re.search(r"""charset\s*=\s*["']?([^"';\s]+)""", content_type, re.I)
    return match.group(1) if match else ""


def _decode_strict(data: bytes, label: str) -> str | None:
    """`data` decoded with the codec `label` names, or None when unknown or invalid."""
    if not label:
        return None
    label = label.strip().lower()
    candidates = ["cp1252", "latin-1"] if label in LATIN1_LABELS else [label]
    for encoding in candidates:
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return None


def _mostly_ascii_letters(text: str) -> bool:
    """Whether most letters are ASCII, as in Western European text (not Cyrillic or Greek)."""
    letters = [char for char in text if char.isalpha()]
    wide = sum(1 for char in letters if not char.isascii())
    return bool(letters) and wide <= 0.3 * len(letters)


def _type_allowed(kind: str, types: tuple[str, ...]) -> bool:
    """Whether media type `kind` is one of `types` (`type/*` allows a family)."""
    for allowed in types:
        allowed = allowed.lower()
        if kind == allowed or (allowed.endswith("/*") and kind.startswith(allowed[:-1])):
            return True
    return False


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _worth_retrying(exc: BaseException) -> bool:
    """Whether another attempt may succeed: a busy-server status or a transient network error.

    A certificate that fails verification will fail the same way next time, so it is not retried.
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return False
        cause = cause.__cause__ or cause.__context__
    return isinstance(exc, (_RetryableStatus, *RETRY_ERRORS))


def _attempts(retrying: Retrying) -> str:
    """How many attempts `retrying` made, in words: "5 attempts", "1 attempt"."""
    count = int(retrying.statistics.get("attempt_number", 1))
    return f"{count} attempt" + ("" if count == 1 else "s")


def _describe(exc: BaseException | None) -> str:
    """A transport error in words ("ReadTimeout: timed out"), without request headers."""
    if exc is None:
        return "unknown error"
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


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
