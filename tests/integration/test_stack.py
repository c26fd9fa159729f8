"""`twin stack up | status | down` on a stack of its own: idempotence, recovery, clean stops."""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys

import psutil
import pytest

from tests.conftest import PROJECT_ROOT, scratch_home
from twin.stack import Stack, StackError

pytestmark = pytest.mark.integration


@pytest.fixture
def small_stack():
    home = scratch_home("twin-lifecycle-")
    stack = Stack(home, ("postgres", "mongo"))
    yield stack
    stack.down()
    shutil.rmtree(home, ignore_errors=True)


def pids_of(stack: Stack) -> dict[str, int]:
    recs = {n: s.process.record() for n, s in stack.services.items()}
    return {name: rec.pid for name, rec in recs.items() if rec is not None}


def test_up_is_idempotent_recovers_a_killed_service_and_down_leaves_nothing(small_stack) -> None:
    first = small_stack.up()
    assert first.started == ["postgres", "mongo"]
    pids = pids_of(small_stack)
    group = [p for pid in pids.values() for p in psutil.process_iter() if os.getpgid(p.pid) == pid]

    second = small_stack.up()
    assert second.started == [] and second.reused == ["postgres", "mongo"]
    assert pids_of(small_stack) == pids

    os.kill(pids["mongo"], signal.SIGKILL)
    psutil.Process(pids["mongo"]).wait(5)
    states = {s.name: s.state for s in small_stack.status()}
    assert states["mongo"] == "unhealthy" and states["postgres"] == "healthy"

    third = small_stack.up()
    assert third.started == ["mongo"]
    assert {s.name: s.state for s in third.statuses}["mongo"] == "healthy"
    group += [
        p for p in psutil.process_iter() if os.getpgid(p.pid) == pids_of(small_stack)["mongo"]
    ]

    assert sorted(small_stack.down()) == ["mongo", "postgres"]
    alive = [p for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert {s.state for s in small_stack.status()} == {"stopped"}

    again = small_stack.up()  # a second up after down works, on the same data
    assert again.started == ["postgres", "mongo"]


def test_a_service_that_cannot_start_is_named_and_nothing_is_left_half_started(
    small_stack, monkeypatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("TWIN_PORT_MONGO", str(taken.getsockname()[1]))

        with pytest.raises(StackError, match=r"^mongo .*") as err:
            small_stack.up()

    assert "mongo.log" in str(err.value)
    assert pids_of(small_stack) == {}
    assert {s.state for s in small_stack.status()} == {"stopped"}


def test_status_command_prints_every_service_and_its_url(small_stack) -> None:
    small_stack.up()
    result = subprocess.run(
        [sys.executable, "-m", "twin.cli", "stack", "status", "--home", str(small_stack.home)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    for name in ("postgres", "mongo", "triton", "mlflow", "airflow"):
        assert name in result.stdout
    assert "healthy" in result.stdout and "mongodb://127.0.0.1:" in result.stdout


# --- local users are not trusted ----------------------------------------------------------------
def test_postgres_wants_the_password_on_tcp_and_on_its_private_socket(small_stack) -> None:
    import psycopg

    small_stack.up()
    postgres = small_stack.services["postgres"]
    socket_dir = postgres.socket_dir
    assert stat.S_IMODE(socket_dir.stat().st_mode) & 0o077 == 0, oct(socket_dir.stat().st_mode)
    hba = (postgres.data_dir / "pg_hba.conf").read_text()
    assert not re.search(r"^\s*(local|host)\S*\s.*\btrust\b", hba, re.M), hba

    port = postgres.port()
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"host={socket_dir} port={port} user=postgres dbname=twin").close()
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"host=127.0.0.1 port={port} user=postgres password=x dbname=twin")
    dsn = f"host={socket_dir} port={port} user=postgres dbname=twin password={postgres.password}"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_mongo_refuses_commands_without_the_stack_password(small_stack) -> None:
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure

    small_stack.up()
    mongo = small_stack.services["mongo"]
    anonymous = f"mongodb://127.0.0.1:{mongo.port()}/?directConnection=true"
    with (
        MongoClient(anonymous, serverSelectionTimeoutMS=3000) as client,
        pytest.raises(OperationFailure, match="requires authentication"),
    ):
        client.twin.documents.insert_one({"url": "https://example.org/"})
    wrong = f"mongodb://twin:wrong@127.0.0.1:{mongo.port()}/?directConnection=true&authSource=admin"
    with (
        MongoClient(wrong, serverSelectionTimeoutMS=3000) as client,
        pytest.raises(OperationFailure),
    ):
        client.twin.documents.find_one()
    with MongoClient(small_stack.endpoints()["MONGO_URI"]) as client:
        client.t_auth.docs.insert_one({"ok": 1})
        assert client.t_auth.docs.count_documents({}) == 1
        client.drop_database("t_auth")


def test_up_changes_no_folder_outside_the_stack_home() -> None:
    """A home under a private folder (like /root) starts, and no ancestor's mode changes."""
    from twin.stack.postgres import PostgresService

    parent = scratch_home("twin-private-")
    parent.chmod(0o700)
    home = parent / "stack"
    stack = Stack(home, ("postgres",))
    pg_bin = PostgresService(stack.ctx).bin_dir
    outside = [*parent.parents, parent, *pg_bin.parents, pg_bin]
    before = {path: stat.S_IMODE(path.stat().st_mode) for path in outside}
    try:
        result = stack.up()
        assert {s.name: s.state for s in result.statuses}["postgres"] == "healthy"
        after = {path: stat.S_IMODE(path.stat().st_mode) for path in outside}
        assert after == before
    finally:
        stack.down()
        shutil.rmtree(parent, ignore_errors=True)


def test_secrets_and_stack_env_are_private_from_their_first_byte(tmp_path, monkeypatch) -> None:
    """Even when the process dies between creating a file and a later chmod, nothing leaks."""
    from pathlib import Path

    def interrupted(*_args, **_kwargs):
        raise RuntimeError("interrupted before chmod")

    old_umask = os.umask(0)  # the most permissive umask a user can have
    try:
        monkeypatch.setattr(os, "chmod", interrupted)
        monkeypatch.setattr(Path, "chmod", interrupted)
        stack = Stack(tmp_path / "home", ("postgres", "mongo"))
        stack.ctx.ports.update({"postgres": 5999, "mongo": 5998})
        try:
            password = stack.services["postgres"].role_password("twin")
            stack.home.mkdir(exist_ok=True)
            stack.write_env()
        except RuntimeError:
            pass
        monkeypatch.undo()
        created = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert created, "nothing was written"
        for path in created:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
        secrets_dir = stack.home / "secrets"
        assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
        assert (secrets_dir / "postgres_twin_password").read_text().strip() == password
        assert password in stack.env_path.read_text()
    finally:
        os.umask(old_umask)


def test_concurrent_first_uses_of_a_secret_agree(tmp_path) -> None:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4) as pool:
        values = list(pool.map(read_secret, [tmp_path] * 16))
    assert len(set(values)) == 1 and len(values[0]) >= 24
    assert [p.name for p in (tmp_path / "secrets").iterdir()] == ["shared"]


def read_secret(home) -> str:
    from twin.stack.base import StackContext

    return StackContext(home=home, ports={}).secret("shared")
