"""PostgreSQL 16 + pgvector (pgserver's binaries): password logins only, private socket folder.

Postgres refuses to run as root. Run as root, the stack starts it as the dedicated system user
`pgserver` when that user can reach the stack's home and the binaries as they are, and otherwise
in a user namespace where root appears as an unprivileged user; it never changes the permissions
of a folder outside the stack's home.
"""

from __future__ import annotations

import functools
import os
import pwd
import stat
import subprocess
from pathlib import Path
from urllib.parse import quote

from twin.settings import endpoint_to_connection
from twin.stack.base import LOOPBACK, Service, ServiceError, StackContext, package_dir
from twin.stack.files import write_private

SYSTEM_USER = "pgserver"
NAMESPACE_UID = 65534  # "nobody" inside the namespace: Postgres only needs a non-zero user id
# Password (SCRAM) logins everywhere: on loopback TCP and on the Unix socket.
PG_HBA = """\
# Written by `twin stack up`; edits are overwritten. Every login needs the password.
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


def ensure_system_user(name: str) -> pwd.struct_passwd:
    """The system user `name`, created (no login, no home) when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


def blocking_folder(path: Path) -> Path | None:
    """The first folder on the way to `path` (itself included) that other users cannot enter."""
    for folder in reversed((path, *path.parents)):
        if folder.exists() and not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def namespace_prefix() -> list[str]:
    """The command prefix that runs a program in a new user namespace as NAMESPACE_UID."""
    uid = str(NAMESPACE_UID)
    return ["unshare", "--user", f"--map-user={uid}", f"--map-group={uid}", "--"]


@functools.cache
def user_namespaces_work() -> bool:
    """Whether this machine lets us run a command in a new user namespace."""
    try:
        result = subprocess.run(
            [*namespace_prefix(), "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


class PostgresService(Service):
    """PostgreSQL 16 + pgvector from the pgserver package, on loopback TCP and a Unix socket."""

    name = "postgres"
    ports = ("postgres",)
    databases = ("twin", "mlflow", "airflow")
    system_user = SYSTEM_USER

    def __init__(self, ctx: StackContext) -> None:
        super().__init__(ctx)
        self._mode: str | None = None

    @property
    def bin_dir(self) -> Path:
        # Located, not imported: importing pgserver has side effects we do not need.
        return package_dir("pgserver") / "pginstall" / "bin"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "socket"

    @property
    def password(self) -> str:
        return self.ctx.secret("postgres_password")

    def mode(self) -> str:
        """How the server runs: `self` (not root), `system-user` or `namespace` (as root)."""
        if self._mode is None:
            self._mode = self._choose_mode()
        return self._mode

    def _choose_mode(self) -> str:
        if os.geteuid() != 0:
            return "self"
        if self.data_dir.exists():  # keep the owner an existing cluster was created for
            return "namespace" if self.data_dir.stat().st_uid == 0 else "system-user"
        blocked = blocking_folder(self.ctx.home) or blocking_folder(self.bin_dir)
        if blocked is None:
            return "system-user"
        if user_namespaces_work():
            return "namespace"
        raise ServiceError(
            f"postgres: refuses to run as root, and the user {SYSTEM_USER!r} cannot enter "
            f"{blocked} (no o+x), which the stack does not change; user namespaces are not "
            "available either. Run as a normal user, or put the project and TWIN_HOME under "
            "folders others may traverse."
        )

    def run_as(self) -> str | None:
        return self.system_user if self.mode() == "system-user" else None

    def _wrap(self, command: list[str]) -> list[str]:
        if self.mode() != "namespace":
            return command
        return [*namespace_prefix(), *command]

    def _own(self, *paths: Path) -> None:
        """Hand paths inside the stack's home to the user the server runs as."""
        if self.mode() == "system-user":
            entry = ensure_system_user(self.system_user)
            for path in paths:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def prepare(self) -> None:
        super().prepare()
        self.dir.chmod(0o711 if self.mode() == "system-user" else 0o700)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.chmod(0o700)
        self._own(self.socket_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        hba = write_private(self.data_dir / "pg_hba.conf", PG_HBA)
        self._own(hba)

    def _initdb(self) -> None:
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        pwfile = write_private(self.dir / "initdb.pw", self.password + "\n")
        self._own(self.data_dir, pwfile)
        command = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            f"--pwfile={pwfile}",
        ]
        try:
            subprocess.run(
                self._wrap(command),
                check=True,
                capture_output=True,
                text=True,
                user=self.run_as(),
                timeout=120,
            )
        except subprocess.CalledProcessError as err:
            raise ServiceError(f"postgres: initdb failed:\n{err.stderr[-2000:]}") from err
        finally:
            pwfile.unlink(missing_ok=True)

    def command(self) -> list[str]:
        return self._wrap(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                LOOPBACK,
                "-p",
                str(self.port()),
                "-k",
                str(self.socket_dir),
                "-c",
                "unix_socket_permissions=0700",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=128MB",
                "-c",
                "logging_collector=off",
            ]
        )

    def dsn(self, database: str = "twin", driver: str = "postgresql") -> str:
        return (
            f"{driver}://postgres:{quote(self.password, safe='')}@{LOOPBACK}:{self.port()}"
            f"/{database}"
        )

    def check(self, timeout_s: float) -> str:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), connect_timeout=max(1, int(timeout_s))) as conn:
            version = conn.execute("show server_version").fetchone()[0]
        return f"PostgreSQL {version}"

    def after_start(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("select datname from pg_database")}
            for database in self.databases:
                if database not in existing:
                    conn.execute(f'create database "{database}"')
        with psycopg.connect(self.dsn("twin"), autocommit=True) as conn:
            conn.execute("create extension if not exists vector")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port()}/twin"

    def endpoints(self) -> dict[str, str]:
        dsn = self.dsn("twin")
        return {
            "WAREHOUSE_DSN": dsn,
            "AIRFLOW_CONN_WAREHOUSE_POSTGRES": endpoint_to_connection("warehouse_dsn", dsn),
        }
