"""robots.txt for the polite client: fetched once per origin, parsed by protego.

protego applies the longest matching rule and knows the `*` and `$` wildcards (the stdlib parser
applies the first match and knows neither). A 4xx answer means no rules; a 5xx or no answer
means "disallow all" for that origin until the client is closed (as Google does).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from protego import Protego

from twin.crawl.errors import FetchError


@dataclass(frozen=True)
class RobotsRules:
    """The rules of one origin; `unavailable` says why robots.txt could not be read, if so."""

    parser: Protego | None = None
    allow_all: bool = False
    unavailable: str | None = None

    def can_fetch(self, url: str, agent: str) -> bool:
        """Whether `agent` may fetch `url`."""
        if self.allow_all:
            return True
        if self.parser is None:
            return False
        return bool(self.parser.can_fetch(url, agent))

    def max_rate(self, agent: str) -> float | None:
        """The request rate (per second) that Crawl-delay or Request-rate asks of `agent`."""
        if self.parser is None:
            return None
        rates = []
        delay = self.parser.crawl_delay(agent)
        if delay:
            rates.append(1.0 / float(delay))
        rate = self.parser.request_rate(agent)
        if rate and rate.requests and rate.seconds:
            rates.append(rate.requests / rate.seconds)
        return min(rates) if rates else None


class RobotsCache:
    """robots.txt rules per origin, loaded by one thread while the others wait.

    `load(origin)` returns the body of `origin`/robots.txt or raises `FetchError`; `on_rules` is
    told of each origin's parsed rules (the client lowers that host's rate to its Crawl-delay).
    """

    def __init__(
        self,
        load: Callable[[str], str],
        on_rules: Callable[[str, RobotsRules], None] | None = None,
    ) -> None:
        self._load = load
        self._on_rules = on_rules
        self._lock = threading.Lock()
        self._rules: dict[str, RobotsRules] = {}
        self._origin_locks: dict[str, threading.Lock] = {}

    def rules(self, origin: str) -> RobotsRules:
        """The rules of `origin` ("https://example.org"), fetched on first use."""
        with self._lock:
            found = self._rules.get(origin)
            if found is not None:
                return found
            origin_lock = self._origin_locks.setdefault(origin, threading.Lock())
        with origin_lock:
            with self._lock:
                found = self._rules.get(origin)
            if found is None:
                found = self._fetch(origin)
                with self._lock:
                    self._rules[origin] = found
            return found

    def _fetch(self, origin: str) -> RobotsRules:
        try:
            body = self._load(origin)
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                return RobotsRules(allow_all=True)
            return RobotsRules(unavailable=exc.reason)
        rules = RobotsRules(parser=Protego.parse(body))
        if self._on_rules is not None:
            self._on_rules(origin, rules)
        return rules
