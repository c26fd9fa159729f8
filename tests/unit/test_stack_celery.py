"""The embedded stack's Celery mode as configuration: services, queues, Airflow's config, the
broker's secrets (no server started; tests/e2e/test_airflow_scheduler.py runs the chain on it)."""

import configparser
import stat
from pathlib import Path

import pytest

from twin.assets import GENERAL_QUEUES, TRAINING_QUEUE
from twin.stack.manager import START_WAVES, Executor, Stack, StackError

AIRFLOW_STACK = ("postgres", "mongo", "triton", "mlflow", "airflow")


def airflow_cfg(stack: Stack) -> configparser.ConfigParser:
    stack.ctx.ports.update({"postgres": 5001, "airflow": 5002, "redis": 5003})
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(stack.services["airflow"].config_text())  # duplicate sections would raise
    return parser


def test_celery_mode_adds_a_broker_s3_and_workers_for_the_queues(tmp_path: Path) -> None:
    stack = Stack(tmp_path, AIRFLOW_STACK, Executor("celery", workers=2, training_workers=1))

    assert stack.workers == ("worker1", "worker2", "training-worker1")
    assert {"redis", "s3", *stack.workers} <= set(stack.wanted)
    queues = {name: stack.services[name].spec.queues for name in stack.workers}
    assert queues == {
        "worker1": GENERAL_QUEUES,
        "worker2": GENERAL_QUEUES,
        "training-worker1": (TRAINING_QUEUE,),
    }
    hostnames = {stack.services[name].hostname for name in stack.workers}
    assert len(hostnames) == 3  # each worker stands for a machine of its own
    folders = {stack.services[name].dir for name in stack.workers}
    assert len(folders) == 3 and all(f.parent == tmp_path.resolve() / "workers" for f in folders)

    cfg = airflow_cfg(stack)
    assert cfg["core"]["executor"] == "CeleryExecutor"
    assert cfg["celery"]["broker_url"].startswith("redis://:")
    assert cfg["celery"]["task_acks_late"] == "True"
    assert cfg["scheduler"]["task_instance_heartbeat_timeout"] == "90"
    assert "standalone" not in stack.services["airflow"].command()


def test_with_s3_triton_reads_its_models_from_the_bucket(tmp_path: Path) -> None:
    stack = Stack(tmp_path, AIRFLOW_STACK, Executor("celery", workers=1, training_workers=1))
    stack.ctx.ports.update({"s3": 5004, "triton_http": 5005, "triton_grpc": 5006})
    stack.ctx.ports.update({"triton_metrics": 5007, "training-worker1_logs": 5008})
    triton, s3 = stack.services["triton"], stack.services["s3"]

    assert triton.repository_url == "s3://twinops/triton"
    assert triton.endpoints()["TRITON_MODEL_REPOSITORY"] == "s3://twinops/triton"
    assert "--model-repository=s3://http://127.0.0.1:5004/twinops/triton" in triton.command()
    env = triton.env()
    assert env["AWS_ENDPOINT_URL_S3"] == s3.url and env["AWS_ACCESS_KEY_ID"] == s3.access_key_id
    starts = [wave for wave in START_WAVES if "triton" in wave or "s3" in wave]
    assert [("s3" in w, "triton" in w) for w in starts] == [(True, False), (False, True)]
    worker = stack.services["training-worker1"].env()
    assert worker["TWIN_TRAINING_DIR"] == str(
        tmp_path.resolve() / "workers/training-worker1/training"
    )

    local_stack = Stack(tmp_path / "local", AIRFLOW_STACK)
    local_stack.ctx.ports.update({"triton_http": 5005, "triton_grpc": 5006, "triton_metrics": 5007})
    local = local_stack.services["triton"]
    assert local.repository_url == str(local.repository)
    assert f"--model-repository={local.repository}" in local.command()
    assert local.s3 is None


def test_local_mode_is_the_default_and_has_no_broker(tmp_path: Path) -> None:
    stack = Stack(tmp_path, AIRFLOW_STACK)

    assert stack.executor == Executor() and stack.workers == ()
    assert "redis" not in stack.wanted and "s3" not in stack.wanted
    cfg = airflow_cfg(stack)
    assert cfg["core"]["executor"] == "LocalExecutor" and "celery" not in cfg
    assert stack.services["airflow"].command()[-1] == "standalone"


def test_the_mode_is_remembered_so_down_and_status_see_the_workers(tmp_path: Path) -> None:
    Stack(tmp_path, AIRFLOW_STACK, Executor("celery", workers=3, training_workers=0))._save_state()

    again = Stack(tmp_path)  # as `twin stack down` / `status` build it: no flags

    assert again.executor == Executor("celery", workers=3, training_workers=0)
    assert again.workers == ("worker1", "worker2", "worker3")


@pytest.mark.parametrize(
    "kind, workers, training", [("kubernetes", 2, 1), ("celery", 0, 1), ("celery", 2, -1)]
)
def test_a_bad_executor_is_refused(kind: str, workers: int, training: int) -> None:
    with pytest.raises(StackError):
        Executor(kind, workers, training)


def test_the_broker_password_is_in_a_private_file_never_on_the_command_line(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path, AIRFLOW_STACK, Executor("celery"))
    redis = stack.services["redis"]
    stack.ctx.ports["redis"] = 5003
    redis.prepare()

    config = redis.config_path.read_text()
    assert f"requirepass {redis.password}" in config and "bind 127.0.0.1" in config
    assert stat.S_IMODE(redis.config_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(redis.dir.stat().st_mode) == 0o700  # its append-only file: queued tasks
    assert redis.password not in " ".join(redis.command())
    assert redis.password not in redis.url
    worker = stack.services["worker1"]
    worker.prepare()
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in (worker.dir, worker.dir / "tmp"))
