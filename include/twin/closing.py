"""`Closing`: a resource (the crawler's HTTP client and extraction pool, `twin.parallel.CpuPool`)
that a `with` block closes when it ends, however it ends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Closing(ABC):
    """Usable as `with resource:`; `close()` runs on leaving the block."""

    @abstractmethod
    def close(self) -> None:
        """Release what the resource holds; it cannot be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
