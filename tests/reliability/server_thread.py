"""The shell of the local servers the tests stand up for the outside world: serve on a daemon
thread while used as a context manager, then stop, wait for the thread and close."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self


class ServerThread:
    """Runs `_serve` on a daemon thread inside `with`; on exit `_shutdown` asks it to stop, the
    thread is joined (5 s at most), then `_close` releases the socket."""

    def __init__(self) -> None:
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._shutdown()
        self._thread.join(5)
        self._close()
