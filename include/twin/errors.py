"""Turn the failures a user can fix (bad settings, a service that is down) into one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from twin.settings import SettingsError

# Exception class names (module-qualified) of each client library, and the service they mean.
SERVICE_ERRORS: dict[str, str] = {
    "psycopg.OperationalError": "Postgres (WAREHOUSE_DSN)",
    "pymongo.errors.ServerSelectionTimeoutError": "MongoDB (MONGO_URI)",
    "pymongo.errors.AutoReconnect": "MongoDB (MONGO_URI)",
    "mlflow.exceptions.MlflowException": "MLflow (MLFLOW_TRACKING_URI)",
    "tritonclient.utils.InferenceServerException": "Triton (TRITON_HTTP_URL / TRITON_GRPC_URL)",
    "requests.exceptions.ConnectionError": "an HTTP service",
    "httpx.ConnectError": "an HTTP service",
}


def describe_failure(err: BaseException) -> tuple[str | None, int]:
    """`(message, exit status)` for a failure a user can act on; `(None, 1)` for a real bug."""
    if isinstance(err, SettingsError):
        return str(err), 2
    if isinstance(err, RuntimeError) and "is not set" in str(err):
        return str(err), 2
    for cls in type(err).__mro__:
        service = SERVICE_ERRORS.get(f"{cls.__module__}.{cls.__qualname__}")
        if service:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            return (
                f"{service} failed: {first[:300]} (is the stack up? `twin stack status`)",
                1,
            )
    return None, 1


# --- pipeline tasks: a down service fails the task with one clear line ---------------------


class ServiceUnavailable(RuntimeError):
    """A service a pipeline task needs is down or refuses the connection."""


@contextmanager
def clear_service_errors(step: str) -> Iterator[None]:
    """Re-raise a down service as `ServiceUnavailable` naming `step` and the service, without
    the client library's chained traceback; any other error passes through unchanged."""
    try:
        yield
    except Exception as err:
        message, _ = describe_failure(err)
        if message is None:
            raise
        raise ServiceUnavailable(f"{step}: {message}") from None


# --- the platform's author: a stage with nothing of theirs fails, never succeeds empty -------


class NoAuthorDocuments(LookupError):
    """A stage found nothing of its author; a run on an author with no documents fails with
    this, naming the stage and the author, instead of succeeding with nothing."""

    def __init__(self, stage: str, author: str, what: str, advice: str = "") -> None:
        self.stage, self.author, self.what = stage, author, what
        advice = advice or "crawl their links (twin_crawl), then run twin_warehouse"
        super().__init__(f"{stage}: author {author!r} has no {what}; {advice}")
