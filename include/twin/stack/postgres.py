"""PostgreSQL 16 + pgvector (pgserver's binaries): password logins only, private socket folder.

Each component logs in as its own role, owner of its own database and nothing more: `twin` (the
platform: the warehouse, pgvector, dbt's schemas; it may create scratch databases, which inherit
pgvector from `template1`), `mlflow` and `airflow`. The superuser `postgres` is used by the stack
alone, to create those roles and databases. Role passwords are stored as SCRAM verifiers computed
here, so no plain password reaches the server's statements or logs.

Postgres refuses to run as root. Run as root, the stack starts it as the dedicated system user
`pgserver` when that user can reach the stack's home and the binaries as they are, and otherwise
in a user namespace where root appears as an unprivileged user; it never changes the permissions
of a folder outside the stack's home.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from pathlib import Path
from typing import ClassVar
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


# Where system tools live; a user's PATH often lacks the sbin folders (`sudo`, `su`, CI shells).
SYSTEM_TOOL_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def system_tool(name: str) -> str:
    """The path of a system administration tool: on PATH, else in the sbin folders."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *SYSTEM_TOOL_DIRS])
    found = shutil.which(name, path=search)
    if found is None:
        raise ServiceError(f"postgres: `{name}` is not installed (looked on PATH and in sbin)")
    return found


def ensure_system_user(name: str) -> pwd.struct_passwd:
    """The system user `name`, created (no login, no home) when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        command = [system_tool("useradd"), "--system", "--no-create-home"]
        subprocess.run(
            [*command, "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True
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


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier Postgres stores for `password` (RFC 7677, as libpq makes it)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}$"
        f"{b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


# Objects of a database created before it had its own owner, handed from the superuser to that
# owner (extension members and system schemas stay as they are).
HAND_OVER = r"""
do $$
declare
  target text := {target};
  r record;
begin
  for r in
    select n.nspname from pg_namespace n
    where n.nspowner = 'postgres'::regrole and n.nspname not like 'pg\_%'
      and n.nspname not in ('information_schema', 'public')
  loop
    execute format('alter schema %I owner to %I', r.nspname, target);
  end loop;
  for r in
    select c.oid::regclass::text as name,
           case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
                          when 'S' then 'sequence' when 'f' then 'foreign table'
                          else 'table' end as kind
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relowner = 'postgres'::regrole and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
      and n.nspname not like 'pg\_%' and n.nspname <> 'information_schema'
      and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass
                      and d.objid = c.oid and d.deptype in ('a', 'i', 'e'))
  loop
    execute format('alter %s %s owner to %I', r.kind, r.name, target);
  end loop;
  for r in
    select t.oid::regtype::text as name, t.typtype from pg_type t
    join pg_namespace n on n.oid = t.typnamespace
    where t.typowner = 'postgres'::regrole and t.typtype in ('e', 'd')
      and n.nspname not like 'pg\_%' and n.nspname <> 'information_schema'
      and not exists (select 1 from pg_depend d where d.classid = 'pg_type'::regclass
                      and d.objid = t.oid and d.deptype = 'e')
  loop
    execute format('alter %s %s owner to %I',
                   case r.typtype when 'd' then 'domain' else 'type' end, r.name, target);
  end loop;
  for r in
    select p.oid::regprocedure::text as name, p.prokind from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
    where p.proowner = 'postgres'::regrole and p.prokind in ('f', 'p')
      and n.nspname not like 'pg\_%' and n.nspname <> 'information_schema'
      and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass
                      and d.objid = p.oid and d.deptype = 'e')
  loop
    execute format('alter %s %s owner to %I',
                   case r.prokind when 'p' then 'procedure' else 'function' end, r.name, target);
  end loop;
end
$$
"""


class PostgresService(Service):
    """PostgreSQL 16 + pgvector from the pgserver package, on loopback TCP and a Unix socket."""

    name = "postgres"
    ports = ("postgres",)
    # database -> the login role that owns it (the same roles as docker/postgres/init.sh)
    owners: ClassVar[dict[str, str]] = {"twin": "twin", "mlflow": "mlflow", "airflow": "airflow"}
    databases = tuple(owners)
    platform_role = "twin"  # may also create (scratch) databases
    # twin_rag's login: owns nothing; granted (per database) only what serving does
    serving_role = "twin_serving"
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
        """The superuser's password (the stack's own administration only)."""
        return self.ctx.secret("postgres_password")

    def role_password(self, role: str) -> str:
        """The password of a component's login role (a stack secret, 0600)."""
        return self.ctx.secret(f"postgres_{role}_password")

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
        """The DSN of `database` as the role that owns it (the platform's role for `twin`)."""
        role = self.owners[database]
        return self._dsn(role, self.role_password(role), database, driver)

    def admin_dsn(self, database: str = "postgres") -> str:
        """The superuser's DSN: the stack's own administration, never handed to a component."""
        return self._dsn("postgres", self.password, database, "postgresql")

    def _dsn(self, role: str, password: str, database: str, driver: str) -> str:
        return f"{driver}://{role}:{quote(password, safe='')}@{LOOPBACK}:{self.port()}/{database}"

    def check(self, timeout_s: float) -> str:
        import psycopg

        timeout = max(1, int(timeout_s))
        with psycopg.connect(self.admin_dsn(), connect_timeout=timeout) as conn:
            version = conn.execute("show server_version").fetchone()[0]
        return f"PostgreSQL {version}"

    def after_start(self) -> None:
        """Each component's role and database, pgvector in `twin` and in `template1`."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            roles = {row[0] for row in conn.execute("select rolname from pg_roles")}
            for role in dict.fromkeys([*self.owners.values(), self.serving_role]):
                verb = "alter" if role in roles else "create"
                conn.execute(
                    sql.SQL("{} role {} login nosuperuser nocreaterole password {}").format(
                        sql.SQL(verb),
                        sql.Identifier(role),
                        sql.Literal(scram_verifier(self.role_password(role))),
                    )
                )
            conn.execute(
                sql.SQL("alter role {} createdb").format(sql.Identifier(self.platform_role))
            )
            # the platform may end twin_rag's sessions (dropping a scratch database it served)
            conn.execute(
                sql.SQL("grant {} to {}").format(
                    sql.Identifier(self.serving_role), sql.Identifier(self.platform_role)
                )
            )
            owned = dict(
                conn.execute("select datname, pg_get_userbyid(datdba) from pg_database").fetchall()
            )
        # pgvector is not a trusted extension: new databases (the platform's scratch databases)
        # get it from the template, so their owner needs no superuser.
        with psycopg.connect(self.admin_dsn("template1"), autocommit=True) as conn:
            conn.execute("create extension if not exists vector")
        for database, role in self.owners.items():
            if database not in owned:
                self._create_database(database)
            elif owned[database] != role:
                self._hand_over(database, role)
        with psycopg.connect(self.admin_dsn("twin"), autocommit=True) as conn:
            conn.execute("create extension if not exists vector")

    def _create_database(self, database: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("create database {} owner {}").format(
                    sql.Identifier(database), sql.Identifier(self.owners[database])
                )
            )

    def _hand_over(self, database: str, role: str) -> None:
        """Give a database made before it had its own role (and what is in it) to that role."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("alter database {} owner to {}").format(
                    sql.Identifier(database), sql.Identifier(role)
                )
            )
        with psycopg.connect(self.admin_dsn(database), autocommit=True) as conn:
            conn.execute(sql.SQL(HAND_OVER).format(target=sql.Literal(role)))

    @property
    def url(self) -> str:
        return f"postgresql://{self.platform_role}@{LOOPBACK}:{self.port()}/twin"

    def endpoints(self) -> dict[str, str]:
        dsn = self.dsn("twin")
        role = self.serving_role
        return {
            "WAREHOUSE_DSN": dsn,
            "SERVING_DSN": self._dsn(role, self.role_password(role), "twin", "postgresql"),
            "AIRFLOW_CONN_WAREHOUSE_POSTGRES": endpoint_to_connection("warehouse_dsn", dsn),
        }
