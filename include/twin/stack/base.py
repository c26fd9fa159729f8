"""What every service of the embedded stack shares: its context, its contract, its errors.

Each service is a real server process started from a package installed in the project's virtual
environment; nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from twin.stack.files import create_secret, private_dir
from twin.stack.process import ManagedProcess

LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service could not be prepared, started or reached."""


@dataclass
class StackContext:
    """What every service needs to know about the stack it belongs to."""

    home: Path
    ports: dict[str, int]
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def secrets_dir(self) -> Path:
        return private_dir(self.home / "secrets")

    def secret(self, name: str, generate: Callable[[], str] | None = None) -> str:
        """A generated secret kept in the stack's home (mode 0600 from creation), made once."""
        if generate is None:
            return create_secret(self.secrets_dir / name)
        return create_secret(self.secrets_dir / name, generate)

    def base_env(self) -> dict[str, str]:
        """The environment servers start with: ours, with the venv's bin first on PATH."""
        env = dict(os.environ)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env


def package_dir(package: str) -> Path:
    """Where an installed package lives, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError(f"the {package} package is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


class Service(ABC):
    """One server of the embedded stack."""

    name: str
    ports: tuple[str, ...]

    def __init__(self, ctx: StackContext) -> None:
        self.ctx = ctx
        self.dir = ctx.home / self.name
        self.process = ManagedProcess(self.name, ctx.run_dir, ctx.log_dir / f"{self.name}.log")

    def port(self, key: str | None = None) -> int:
        return self.ctx.ports[key or self.ports[0]]

    def prepare(self) -> None:
        """Create folders and one-time state (idempotent)."""
        self.dir.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def command(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    def env(self) -> dict[str, str]:
        return self.ctx.base_env()

    def run_as(self) -> str | None:
        """The system user the server runs as (None: the current user)."""
        return None

    @abstractmethod
    def check(self, timeout_s: float) -> str:
        """Reach the server through its own protocol; return a short detail or raise."""

    def after_start(self) -> None:  # noqa: B027 - optional hook, most services need none
        """One-time work once the server answers (databases, users, extensions)."""

    @property
    @abstractmethod
    def url(self) -> str:
        """Where people and clients reach the service."""

    def endpoints(self) -> dict[str, str]:
        """The `stack.env` entries this service contributes."""
        return {}
