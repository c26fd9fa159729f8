"""Per-host limits of the polite client: how many requests at once, how many per second."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class HostGate:
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


class HostGates:
    """One `HostGate` per host:port, created on first use; safe to share between threads."""

    def __init__(self, concurrency: int, rate: float) -> None:
        self._concurrency = concurrency
        self._rate = rate
        self._lock = threading.Lock()
        self._gates: dict[str, HostGate] = {}

    def get(self, host_port: str) -> HostGate:
        """The gate of `host_port` ("example.org:443")."""
        with self._lock:
            gate = self._gates.get(host_port)
            if gate is None:
                gate = HostGate(self._concurrency, self._rate)
                self._gates[host_port] = gate
            return gate
