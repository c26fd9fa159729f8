"""Other local users are not trusted: no secret of the stack on a command line or in a file they
can read, each component in Postgres as its own role, Triton's repository API and MLflow's
registry closed to clients without the platform's credentials, MongoDB's user without an open
window or an administrative role, raw payloads private."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import scratch_home
from twin.settings import TRITON_REPOSITORY_KEY_HEADER, Settings

pytestmark = pytest.mark.integration


def stack_secrets(home: Path) -> dict[str, str]:
    """Every generated secret of the stack at `home`, by file name."""
    folder = home / "secrets"
    return {p.name: p.read_text().strip() for p in folder.iterdir() if p.is_file()}


def readable_by_others(home: Path) -> list[Path]:
    """Files under `home` another local user can reach (every folder on the way o+x) and read."""
    found = []
    for folder, dirs, files in os.walk(home):
        path = Path(folder)
        if not path.stat().st_mode & stat.S_IXOTH:
            dirs[:] = []  # nothing below can be reached by others
            continue
        for name in files:
            file = path / name
            mode = file.lstat().st_mode
            if stat.S_ISREG(mode) and mode & stat.S_IROTH:
                found.append(file)
    return found


def test_no_secret_on_a_command_line_or_in_a_file_others_can_read(
    stack_settings: Settings,
) -> None:
    home = stack_settings.home
    secrets = stack_secrets(home)
    assert {"postgres_password", "mongo_password"} <= set(secrets)

    # `ww`: whole lines (ps cuts them at $COLUMNS otherwise); /proc read directly as well.
    args = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True)
    listed = [args.stdout]
    for proc in psutil.process_iter():
        try:
            listed.append(" ".join(proc.cmdline()))
        except psutil.Error:
            continue
    on_command_lines = [name for name, value in secrets.items() if value in "\n".join(listed)]
    assert on_command_lines == [], f"secrets visible in `ps`: {on_command_lines}"

    leaks = []
    for path in readable_by_others(home):
        if path.stat().st_size > 50_000_000:
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        leaks += [f"{path}: {name}" for name, value in secrets.items() if value in text]
    assert leaks == [], leaks

    for pid_file in (home / "run").glob("*.pid"):
        assert stat.S_IMODE(pid_file.stat().st_mode) == 0o600, pid_file
        assert "command" not in pid_file.read_text()


def test_each_component_uses_its_own_postgres_role(stack_settings: Settings) -> None:
    import psycopg

    from twin.stack.postgres import PostgresService

    with psycopg.connect(stack_settings.require("warehouse_dsn")) as conn:
        user, superuser = conn.execute(
            "select current_user, rolsuper from pg_roles where rolname = current_user"
        ).fetchone()
    assert (user, superuser) == ("twin", False)

    from twin.stack import Stack

    stack = Stack(stack_settings.home, ("postgres",))
    postgres = stack.services["postgres"]
    assert isinstance(postgres, PostgresService)
    with psycopg.connect(postgres.admin_dsn()) as conn:
        owners = dict(
            conn.execute(
                "select datname, pg_get_userbyid(datdba) from pg_database "
                "where datname in ('twin', 'mlflow', 'airflow')"
            ).fetchall()
        )
        mlflow_users = {
            row[0]
            for row in conn.execute(
                "select distinct usename from pg_stat_activity where datname = 'mlflow'"
            )
        }
    assert owners == {"twin": "twin", "mlflow": "mlflow", "airflow": "airflow"}
    if mlflow_users:  # the session's MLflow server is ours: it logs in as `mlflow`
        assert mlflow_users == {"mlflow"}
    config = (stack.services["airflow"].home / "airflow.cfg").read_text()
    assert "postgresql+psycopg2://airflow:" in config


def test_triton_repository_api_wants_the_platform_key(stack_settings: Settings) -> None:
    import tritonclient.grpc as triton_grpc
    import tritonclient.http as triton_http
    from tritonclient.utils import InferenceServerException

    from twin.serving.client import grpc_client, http_client

    http_url = stack_settings.require("triton_http_url")
    name = f"probe_files_{uuid.uuid4().hex[:6]}"
    # Python code a client would have the server run (here harmless: it answers nothing).
    config = (
        f'name: "{name}" backend: "python" max_batch_size: 0 '
        'input [ { name: "x" data_type: TYPE_STRING dims: [ 1 ] } ] '
        'output [ { name: "y" data_type: TYPE_STRING dims: [ 1 ] } ]'
    )
    model = b"class TritonPythonModel:\n    def execute(self, requests):\n        return []\n"
    files = {"file:1/model.py": model}

    anonymous = triton_http.InferenceServerClient(http_url.removeprefix("http://"))
    with pytest.raises(InferenceServerException, match=r"restricted|403|not allowed"):
        anonymous.load_model(name, config=config, files=files)
    with pytest.raises(InferenceServerException):
        anonymous.get_model_repository_index()
    wrong = {TRITON_REPOSITORY_KEY_HEADER: "not-the-key"}
    with pytest.raises(InferenceServerException):
        anonymous.load_model(name, headers=wrong, config=config, files=files)
    anonymous.close()
    grpc_anonymous = triton_grpc.InferenceServerClient(stack_settings.require("triton_grpc_url"))
    with pytest.raises(InferenceServerException):
        grpc_anonymous.load_model(name, config=config, files=files)
    with pytest.raises(InferenceServerException):
        grpc_anonymous.get_model_repository_index()
    assert grpc_anonymous.is_server_live()  # health and inference stay open
    grpc_anonymous.close()

    platform = http_client(stack_settings)
    try:
        index = {m["name"] for m in platform.get_model_repository_index()}
    finally:
        platform.close()
    assert name not in index
    platform_grpc = grpc_client(stack_settings)
    try:
        assert name not in {m.name for m in platform_grpc.get_model_repository_index().models}
    finally:
        platform_grpc.close()


def test_registry_tags_need_the_platform_credentials(stack_settings: Settings) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from twin.store.tracking import tracking_client

    uri = stack_settings.require("mlflow_tracking_uri")
    platform = tracking_client(stack_settings)
    name = f"probe-review-{uuid.uuid4().hex[:8]}"
    experiment = platform.create_experiment(f"{name}-experiment")
    logged = platform.create_logged_model(experiment)
    platform.create_registered_model(name)
    version = platform.create_model_version(
        name, f"models:/{logged.model_id}", model_id=logged.model_id
    ).version

    tag = {"name": name, "version": str(version), "key": "review", "value": "approved"}
    set_tag = f"{uri}/api/2.0/mlflow/model-versions/set-tag"
    assert httpx.post(set_tag, json=tag, timeout=30).status_code == 401
    wrong = ("twin", "not-the-password")
    assert httpx.post(set_tag, json=tag, auth=wrong, timeout=30).status_code == 401
    search = f"{uri}/api/2.0/mlflow/registered-models/search"
    assert httpx.get(search, timeout=30).status_code == 401

    credentials = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    saved = {k: os.environ.pop(k, None) for k in credentials}
    try:
        with pytest.raises(MlflowException):
            MlflowClient(tracking_uri=uri).set_model_version_tag(
                name, str(version), "review", "approved"
            )
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})

    platform.set_model_version_tag(name, str(version), "review", "approved")
    assert platform.get_model_version(name, str(version)).tags.get("review") == "approved"


def test_mongo_user_is_made_without_an_open_window_and_has_no_admin_role() -> None:
    """While `up` creates the user, a client without the stack's credentials gets nothing from
    any port the server listens on; afterwards the user has no administrative role."""
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure, PyMongoError

    from twin.stack import Stack

    home = scratch_home("twin-mongo-user-")
    stack = Stack(home, ("mongo",))
    probes: list[tuple[int, str]] = []
    done = threading.Event()

    def probe() -> None:
        tried: set[int] = set()
        while not done.is_set():
            for proc in psutil.Process().children(recursive=True):
                try:
                    if "secantusd" not in " ".join(proc.cmdline()):
                        continue
                    ports = {
                        c.laddr.port
                        for c in proc.net_connections(kind="tcp")
                        if c.status == psutil.CONN_LISTEN
                    }
                except psutil.Error:
                    continue
                for port in ports - tried:
                    tried.add(port)
                    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
                    try:
                        with MongoClient(uri, serverSelectionTimeoutMS=1500) as client:
                            client.admin.command("listDatabases")
                        probes.append((port, "answered"))
                    except PyMongoError as err:
                        probes.append((port, f"refused: {type(err).__name__}"))
            time.sleep(0.05)

    watcher = threading.Thread(target=probe, daemon=True)
    watcher.start()
    try:
        stack.up()
        done.set()
        watcher.join(10)
        mongo = stack.services["mongo"]
        assert probes, "no listening port of the server was seen during `up`"
        assert all(result.startswith("refused") for _, result in probes), probes
        assert len({port for port, _ in probes}) >= 2, probes  # the provisioning run was probed

        with MongoClient(mongo.uri, serverSelectionTimeoutMS=5000) as client:
            status = client.admin.command("connectionStatus")["authInfo"]
            roles = {r["role"] for r in status["authenticatedUserRoles"]}
            assert roles == {"readWriteAnyDatabase", "dbAdminAnyDatabase"}
            with pytest.raises(OperationFailure, match="not authorized"):
                client.admin.command("createUser", "intruder", pwd="x", roles=["root"])
            with pytest.raises(OperationFailure, match="not authorized"):
                client.admin.command("grantRolesToUser", mongo.user, roles=["root"])
            client["scratch_db"].items.insert_one({"ok": True})  # tests' scratch databases
            client.drop_database("scratch_db")
    finally:
        done.set()
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


def test_raw_payloads_are_private(tmp_path: Path) -> None:
    from twin.store.object_store import LocalObjectStore

    old_umask = os.umask(0)  # the most permissive umask a user can have
    try:
        root = tmp_path / "objects"
        root.mkdir(mode=0o755)
        LocalObjectStore(root).put("linkedin/export.zip", b"PK whole export")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "linkedin").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "linkedin" / "export.zip").stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a system user needs root")
def test_system_user_is_created_where_sbin_is_not_on_path(monkeypatch) -> None:
    from twin.stack.postgres import ensure_system_user

    name = f"twintest{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    try:
        assert ensure_system_user(name).pw_name == name
    finally:
        userdel = shutil.which("userdel", path="/usr/sbin:/sbin")
        if userdel:
            subprocess.run([userdel, name], check=False, capture_output=True)


def test_twin_rag_logs_in_as_the_serving_role_with_serving_rights_only(
    scratch_warehouse: Settings, tmp_path: Path
) -> None:
    """twin_rag's settings hold the serving role's login on the warehouse it serves (a scratch
    one here), never the platform's; that role reads the chunk store (tables built after the
    grant too) and writes and expires the serving logs, and is refused everything else."""
    import json
    from urllib.parse import urlsplit

    import psycopg

    from twin.serving.repository import install_rag
    from twin.store.serving import delete_expired, write_inference_log
    from twin.store.warehouse import warehouse_connection

    settings = scratch_warehouse.model_copy(update={"triton_model_repository": tmp_path})
    assert settings.serving_dsn, "SERVING_DSN missing from stack.env"
    folder = tmp_path / install_rag(settings)
    written = json.loads((folder / "1" / "settings.json").read_text())
    dsn = urlsplit(written["warehouse_dsn"])
    platform = urlsplit(settings.require("warehouse_dsn"))
    assert (dsn.username, dsn.path) == ("twin_serving", platform.path)
    assert platform.password not in json.dumps(written)
    assert written["serving_dsn"] is None

    with warehouse_connection(settings, autocommit=True) as conn:  # built after the grant
        conn.execute("create table vectors.chunks_later (chunk_id text)")
        conn.execute("insert into vectors.chunks_later values ('c1')")
        conn.execute("create schema if not exists marts")
        conn.execute("create table marts.private_notes (note text)")
    row = {"request_id": "r1", "model": "twin_rag", "query": "q", "status": "ok"}
    with psycopg.connect(written["warehouse_dsn"], autocommit=True) as conn:
        assert conn.execute("select chunk_id from vectors.chunks_later").fetchall() == [("c1",)]
        assert write_inference_log(conn, [row]) == 1
        assert delete_expired(conn, 30)["inference_log"] == 0
        refused = [
            "select * from marts.private_notes",
            "update serving.inference_log set query = 'x'",
            "drop table serving.inference_log",
            "delete from vectors.chunks_later",
            "create table serving.mine (x int)",
            "create schema mine",
        ]
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
