"""The shell of the local servers the tests stand up for the outside world: serve on a daemon
thread while used as a context manager, then stop, wait for the thread and close."""

from __future__ import annotations

import threading
from typing import Self

from twin.closing import Closing


class ServerThread(Closing):
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
        return super().__enter__()

    def close(self) -> None:
        self._shutdown()
        self._thread.join(5)
        self._close()
