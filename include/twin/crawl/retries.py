"""What the polite client retries, and how long it waits: busy statuses and transient errors."""

from __future__ import annotations

import email.utils
import ssl
from datetime import UTC, datetime

import httpx
from tenacity import Retrying

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Transport failures that a second attempt can cure; protocol misuse or bad URLs cannot.
RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class RetryableStatus(Exception):
    """A status worth another attempt (429/502/503/504), with the server's Retry-After if any."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(status, retry_after)
        self.status = status
        self.retry_after = retry_after


def retry_after(value: str | None) -> float | None:
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


def worth_retrying(exc: BaseException) -> bool:
    """Whether another attempt may succeed: a busy-server status or a transient network error.

    A certificate that fails verification will fail the same way next time, so it is not retried.
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return False
        cause = cause.__cause__ or cause.__context__
    return isinstance(exc, (RetryableStatus, *RETRY_ERRORS))


def attempts_made(retrying: Retrying) -> str:
    """How many attempts `retrying` made, in words: "5 attempts", "1 attempt"."""
    count = int(retrying.statistics.get("attempt_number", 1))
    return f"{count} attempt" + ("" if count == 1 else "s")


def describe(exc: BaseException | None) -> str:
    """A transport error in words ("ReadTimeout: timed out"), without request headers."""
    if exc is None:
        return "unknown error"
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
