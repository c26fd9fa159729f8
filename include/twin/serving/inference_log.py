"""Off-the-request-path writer for `serving.inference_log` and `serving.shadow_comparisons`.

Requests hand rows to `submit` (a queue put, never blocking, never raising); one background thread
writes them in batches. When Postgres is unreachable the rows wait in a bounded buffer and are
written once it is back (the oldest are dropped past `max_buffered`, with a warning): a logging
failure never fails, nor slows, a request. A batch Postgres refuses for its content (a NUL
character, a value out of range) is written row by row instead: each refused row goes to
`serving.log_quarantine` with the cause, and the others are stored. Rows are redacted by the
store's writers (`twin.store.serving`). Once an hour (and when it first connects) the writer
deletes rows older than `serving_log_retention_days`."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from typing import Any

from twin.settings import Settings

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0
Row = tuple[str, dict[str, Any]]


def _refused(exc: BaseException) -> bool:
    """Whether Postgres (or the driver) refused the rows themselves, rather than being out of
    reach: such rows fail the same way every time, so retrying them is pointless."""
    import psycopg

    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError | ValueError | TypeError):
        return True
    # a value the driver cannot send (no SQLSTATE: refused before it reached the server)
    return isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None


class InferenceLogWriter:
    """A daemon thread that writes submitted rows; `flush` waits until the backlog is written."""

    def __init__(self, settings: Settings, *, max_buffered: int = 10_000, batch: int = 200) -> None:
        self.settings = settings
        self.max_buffered = max_buffered
        self.batch = batch
        self._queue: queue.SimpleQueue[Row] = queue.SimpleQueue()
        self._pending: deque[Row] = deque()
        self._conn = None
        self._schema_ready = False
        self._idle = threading.Event()
        self._idle.set()
        self._stop = threading.Event()
        self.dropped = 0
        self.quarantined = 0
        self.expired = 0
        self.last_error: str | None = None
        self._next_expiry = 0.0
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    def submit(self, table: str, row: dict[str, Any]) -> None:
        """Queue one row for `inference_log` or `shadow_comparisons`; never raises."""
        try:
            self._idle.clear()
            self._queue.put_nowait((table, row))
        except Exception:  # the request matters more than its log line
            log.warning("inference log: could not queue a row", exc_info=True)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued row is written; False when it could not be done in time."""
        return self._idle.wait(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what can be written within `timeout_s`, then stop the thread."""
        self.flush(timeout_s)
        self._stop.set()
        self._thread.join(timeout_s)
        self._disconnect()

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def _drain(self, wait_s: float) -> None:
        try:
            self._pending.append(self._queue.get(timeout=wait_s))
            while True:
                self._pending.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        while len(self._pending) > self.max_buffered:
            self._pending.popleft()
            self.dropped += 1

    def _write_pending(self) -> None:
        from twin.store.serving import ensure_serving_schema
        from twin.store.warehouse import warehouse_connection

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._disconnect()
            self._conn = warehouse_connection(self.settings, autocommit=True)
        if not self._schema_ready:
            ensure_serving_schema(self._conn)
            self._schema_ready = True
        self._expire()
        while self._pending:
            rows = [self._pending[i] for i in range(min(self.batch, len(self._pending)))]
            try:
                self._write(rows)
            except Exception as exc:
                if not _refused(exc):
                    raise
                for row in rows:  # find the refused rows; the others are stored
                    self._write_or_quarantine(row)
                    self._pending.popleft()
                continue
            for _ in rows:
                self._pending.popleft()

    def _write(self, rows: list[Row]) -> None:
        from twin.store.serving import write_inference_log, write_shadow_comparisons

        # each call is one transaction; a re-sent request_id is ignored, so a retry is safe
        write_inference_log(self._conn, [r for t, r in rows if t == "inference_log"])
        write_shadow_comparisons(self._conn, [r for t, r in rows if t == "shadow_comparisons"])

    def _write_or_quarantine(self, row: Row) -> None:
        from twin.store.serving import quarantine_row

        try:
            self._write([row])
        except Exception as exc:
            if not _refused(exc):
                raise  # Postgres went away: the whole batch waits and is retried
            table, values = row
            log.warning(
                "inference log: %s row %s refused, quarantined in serving.log_quarantine: %s",
                table,
                values.get("request_id"),
                type(exc).__name__,
            )
            quarantine_row(self._conn, table, values, exc)
            self.quarantined += 1

    def _expire(self) -> None:
        """Delete rows past the retention period, at most once an hour."""
        from twin.store.serving import delete_expired

        if time.monotonic() < self._next_expiry:
            return
        deleted = delete_expired(self._conn, self.settings.serving_log_retention_days)
        self._next_expiry = time.monotonic() + RETENTION_EVERY_S
        self.expired += sum(deleted.values())
        if any(deleted.values()):
            log.info(
                "inference log: deleted rows older than %d days: %s",
                self.settings.serving_log_retention_days,
                deleted,
            )

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            self._drain(wait_s=0.2 if not self._pending else 0.0)
            if not self._pending:
                if self._queue.empty():
                    self._idle.set()
                continue
            try:
                self._write_pending()
                backoff = 0.5
                self.last_error = None
            except Exception as exc:  # Postgres down: keep the rows, retry later
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._schema_ready = False  # a dropped table is created again
                log.warning("inference log: %d row(s) waiting: %s", len(self._pending), exc)
                self._disconnect()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
