"""A MongoDB wire-protocol server (secantusdb) on loopback, with SCRAM authentication.

secantusdb has no localhost exception: its first user is created on a run without `--auth`. That
run listens on a fresh loopback port with mutual TLS required, against a throwaway certificate
authority whose keys lie in a private folder (deleted afterwards), so no other client can talk to
it; from then on the server always runs with `--auth` and every command but the handshake needs the
password.

The platform's user has no administrative role: it reads, writes and manages collections and
indexes (and may drop the scratch databases tests make), but cannot create users, grant roles,
read the user store or touch the server itself.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from twin.settings import endpoint_to_connection
from twin.stack.base import LOOPBACK, Service, ServiceError
from twin.stack.process import free_port
from twin.stack.tls import MutualTls, mutual_tls

USER = "twin"
PROVISION_TIMEOUT_S = 60
# Least roles of the platform's user (`docker/` narrows them to the `twin` database alone).
PLATFORM_ROLES = (
    {"role": "readWriteAnyDatabase", "db": "admin"},
    {"role": "dbAdminAnyDatabase", "db": "admin"},
)


class MongoService(Service):
    """A MongoDB wire-protocol server (secantusdb), run as its own process on loopback."""

    name = "mongo"
    ports = ("mongo",)
    user = USER

    @property
    def password(self) -> str:
        return self.ctx.secret("mongo_password")

    @property
    def users_marker(self) -> Path:
        return self.dir / "users"

    def prepare(self) -> None:
        super().prepare()
        (self.dir / "data").mkdir(mode=0o700, exist_ok=True)
        (self.dir / "data").chmod(0o700)
        # An explicit (empty) config turns off the server's config-file auto-discovery.
        (self.dir / "secantusd.toml").touch()
        if self.users_marker.exists() and self.users_marker.read_text().strip() == self.marker:
            return
        self._provision_user()
        self.users_marker.write_text(self.marker + "\n")

    @property
    def marker(self) -> str:
        """The user and its roles, as provisioned (a change provisions them again)."""
        return f"{self.user} " + ",".join(r["role"] for r in PLATFORM_ROLES)

    def _server(self, port: int, auth: bool, tls: MutualTls | None = None) -> list[str]:
        tls_flags = []
        if tls is not None:
            tls_flags = [
                f"--tls-cert-file={tls.server_cert}",
                f"--tls-key-file={tls.server_key}",
                f"--tls-ca-file={tls.ca_file}",
                "--tls-require-client-cert",
            ]
        return [
            str(self.ctx.bin_dir / "secantusd-py"),
            "--config",
            str(self.dir / "secantusd.toml"),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--storage-path",
            str(self.dir / "data"),
            "--sync-on-commit",
            "--log-level",
            "WARNING",
            *(["--auth"] if auth else []),
            *tls_flags,
        ]

    def _provision_user(self) -> None:
        """Create (or reset the password and roles of) the stack's user, on a run that answers
        only a client holding this call's TLS certificate."""
        folder = self.ctx.secrets_dir / "mongo-provisioning"
        try:
            self._provision_over(mutual_tls(folder, LOOPBACK))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _provision_over(self, tls: MutualTls) -> None:
        from pymongo import MongoClient
        from pymongo.errors import OperationFailure, PyMongoError

        port = free_port()
        self.process.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.process.log_path, "ab") as log:
            server = subprocess.Popen(
                self._server(port, auth=False, tls=tls),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                cwd=self.dir,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + PROVISION_TIMEOUT_S
            with MongoClient(
                f"mongodb://{LOOPBACK}:{port}/?directConnection=true",
                serverSelectionTimeoutMS=1000,
                tls=True,
                tlsCAFile=str(tls.ca_file),
                tlsCertificateKeyFile=str(tls.client_pem),
            ) as client:
                while True:
                    if server.poll() is not None:
                        raise ServiceError(
                            f"mongo: server exited while creating its user\n"
                            f"{self.process.log_tail()}"
                        )
                    try:
                        client.admin.command("ping")
                        break
                    except PyMongoError as err:
                        if time.monotonic() > deadline:
                            raise ServiceError(
                                f"mongo: no answer while creating its user: {err}"
                            ) from err
                roles = list(PLATFORM_ROLES)
                try:
                    client.admin.command("createUser", self.user, pwd=self.password, roles=roles)
                except OperationFailure as err:
                    if err.code != 51003:  # the user exists: set its password again
                        raise ServiceError(f"mongo: could not create its user: {err}") from err
                    client.admin.command("updateUser", self.user, pwd=self.password, roles=roles)
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)

    def command(self) -> list[str]:
        return self._server(self.port(), auth=True)

    def check(self, timeout_s: float) -> str:
        from pymongo import MongoClient

        ms = int(timeout_s * 1000)
        with MongoClient(self.uri, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms) as client:
            client.admin.command("ping")  # authenticated: proves the password works
            info = client.server_info()
        return f"MongoDB protocol {info.get('version', '?')}"

    @property
    def uri(self) -> str:
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        return f"mongodb://{auth}{LOOPBACK}:{self.port()}/?directConnection=true&authSource=admin"

    @property
    def url(self) -> str:
        return f"mongodb://{LOOPBACK}:{self.port()}/?directConnection=true"

    def endpoints(self) -> dict[str, str]:
        return {
            "MONGO_URI": self.uri,
            "AIRFLOW_CONN_MONGO_DEFAULT": endpoint_to_connection(
                "mongo_uri", self.uri, directConnection=True, authSource="admin"
            ),
        }
