"""The errors a fetch raises: `FetchError` for any URL that could not be fetched, and its
subclass `BlockedURL` for one the SSRF guard refuses.

They live apart from the client, the policy and the guard so that each of those can raise or
catch them without importing the others.
"""

from __future__ import annotations


class FetchError(Exception):
    """A URL could not be fetched: `url` is the URL asked for, `reason` says why in words.

    `status` is the HTTP status when the server answered with an error, else None.
    """

    def __init__(self, url: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason
        self.status = status

    def __str__(self) -> str:
        return f"{self.url}: {self.reason}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keep `status` when the error crosses a process boundary (executors, Airflow workers).
        return (_rebuild_fetch_error, (type(self), self.url, self.reason, self.status))


class BlockedURL(FetchError):
    """A URL the SSRF guard refuses; `reason` names the rule (scheme, credentials, address)."""


def _rebuild_fetch_error(
    cls: type[FetchError], url: str, reason: str, status: int | None
) -> FetchError:
    """Unpickle a FetchError (or subclass) with its status."""
    error = cls(url, reason)
    error.status = status
    return error
