"""The production stack in docker/, checked without a container engine.

No Docker engine runs on development machines, so the compose file must be valid by construction.
`compose_problems` holds the checks (structure, dependencies, health, ports, volumes, secrets, the
env contract); the tests run it on the real file and on broken copies, so that each check is seen
failing. The env contract is compared with the names the embedded stack writes to stack.env.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from twin.settings import CONNECTION_IDS
from twin.stack.manager import Stack
from twin.stack.services import PostgresService

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = PROJECT_ROOT / "docker"
COMPOSE_PATH = DOCKER_DIR / "docker-compose.yml"
GPU_OVERRIDE_PATH = DOCKER_DIR / "docker-compose.gpu.yml"
ENV_EXAMPLE_PATH = DOCKER_DIR / ".env.example"
REQUIREMENTS_PATH = PROJECT_ROOT / "requirements.txt"

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-training",
)
EXPECTED_SERVICES = ("postgres", "mongo", "minio", "minio-init", "redis", "mlflow", "triton")
EXPECTED_SERVICES += AIRFLOW_SERVICES
ONE_SHOT_SERVICES = {"minio-init", "airflow-init"}
# Only UIs and APIs are published; the stores stay on the stack's network.
PUBLISHING_SERVICES = {"airflow-apiserver", "mlflow", "triton", "minio"}
AIRFLOW_COMMON = "x-airflow-common"

# Variables every Airflow container must have (DESIGN.md contracts; the embedded stack's names).
ENV_CONTRACT = (
    "MONGO_URI",
    "WAREHOUSE_DSN",
    "MLFLOW_TRACKING_URI",
    "TRITON_HTTP_URL",
    "TRITON_GRPC_URL",
    "TRITON_METRICS_URL",
    "TRITON_MODEL_REPOSITORY",
    "OBJECT_STORE_URL",
    "AIRFLOW_CONN_MONGO_DEFAULT",
    "AIRFLOW_CONN_WAREHOUSE_POSTGRES",
    "AIRFLOW_CONN_MLFLOW_DEFAULT",
    "AIRFLOW_CONN_TRITON_DEFAULT",
    "AIRFLOW_CONN_AWS_DEFAULT",
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
)
FIXED_VALUES = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-apiserver:8080/execution/",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
RESTART_POLICY = re.compile(r"no|always|unless-stopped|on-failure(:\d+)?")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY")
LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0"}
PLACEHOLDER = "change-me"
# In reading order: `$$` (a literal dollar), `${NAME}` / `${NAME<op>arg}`, or a bare `$NAME`.
DOLLAR = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)
URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<netloc>[^/\s\"'?,]+)")


# --- reading ---------------------------------------------------------------------------------
def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


COMPOSE = load_yaml(COMPOSE_PATH)


def strings(node: Any) -> Iterator[str]:
    """Every string value in a YAML tree (mapping keys excluded)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def interpolations(text: str) -> list[re.Match]:
    """The `${...}` and bare `$NAME` interpolations compose performs on `text` (not `$$`)."""
    return [m for m in DOLLAR.finditer(text) if m.group(0) != "$$"]


def render(text: str) -> str:
    """`text` as compose would interpolate it with an empty environment, required variables shown
    as `<NAME>` so that where a secret lands stays visible."""

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op = (match.group("op") or "").lstrip(":")
        if op == "-":
            return match.group("arg")
        return "" if op == "+" else f"<{name}>"

    return DOLLAR.sub(one, text)


def is_secret_name(name: str) -> bool:
    """Whether a variable holds a secret (`..._FILE` names a file that holds one)."""
    return bool(SECRET_NAME.search(name)) and not name.endswith("_FILE")


def as_json(text: str) -> dict | None:
    """An interpolated JSON object (an Airflow connection), or None when `text` is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def is_required_var(text: str) -> bool:
    """Whether `text` is exactly one `${NAME:?message}` interpolation."""
    match = DOLLAR.fullmatch(text.strip())
    return bool(match and match.group("op") == ":?")


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def depends_of(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def build_of(service: dict, base_dir: Path) -> tuple[Path, Path] | None:
    """(context, Dockerfile) of a service that builds an image."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    context = (base_dir / build.get("context", ".")).resolve()
    return context, context / build.get("dockerfile", "Dockerfile")


def requirement_pins(text: str) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", text, re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (ln.strip().split(None, 1) for ln in joined.splitlines() if ln.strip())
    ]


def copy_sources(path: Path) -> list[str]:
    sources = []
    for instruction, args in dockerfile_instructions(path):
        if instruction in ("COPY", "ADD"):
            words = [w for w in args.split() if not w.startswith("--")]
            sources += words[:-1]
    return sources


def env_example() -> dict[str, str]:
    entries = {}
    for line in ENV_EXAMPLE_PATH.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            entries[name.strip()] = value.strip()
    return entries


# --- the checks ------------------------------------------------------------------------------
Check = Callable[[dict, Path], list[str]]


def check_top_level(compose: dict, base_dir: Path) -> list[str]:
    problems = []
    if "version" in compose:
        problems.append("obsolete top-level `version` key (Compose Specification has none)")
    services = compose.get("services") or {}
    problems += [f"service {name} is missing" for name in EXPECTED_SERVICES if name not in services]
    return problems


def check_images(compose: dict, base_dir: Path) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        if "image" not in service and "build" not in service:
            problems.append(f"{name}: neither `image` nor `build`")
        built = build_of(service, base_dir)
        if built is None:
            continue
        context, dockerfile = built
        if not context.is_dir():
            problems.append(f"{name}: build context {context} does not exist")
        if not dockerfile.is_file():
            problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
            continue
        declared = {
            args.split("=", 1)[0].strip()
            for instruction, args in dockerfile_instructions(dockerfile)
            if instruction == "ARG"
        }
        args = service["build"].get("args") if isinstance(service["build"], dict) else None
        problems += [
            f"{name}: build arg {arg} is not an ARG of {dockerfile.name}"
            for arg in args or {}
            if arg not in declared
        ]
    return problems


def check_depends_on(compose: dict, base_dir: Path) -> list[str]:
    problems = []
    services = compose["services"]
    for name, service in services.items():
        for target, condition in depends_of(service).items():
            if target not in services:
                problems.append(f"{name}: depends on undefined service '{target}'")
                continue
            if condition not in CONDITIONS:
                problems.append(f"{name}: invalid condition '{condition}' on {target}")
            if condition == "service_healthy" and "healthcheck" not in services[target]:
                problems.append(
                    f"{name}: waits for {target} to be healthy but it has no healthcheck"
                )
            if condition == "service_completed_successfully" and services[target].get(
                "restart", "no"
            ) not in ("no", "on-failure"):
                problems.append(f"{name}: waits for {target} to complete but it restarts forever")
    return problems


def check_restart_and_health(compose: dict, base_dir: Path) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        restart = service.get("restart", "no")
        if not (isinstance(restart, str) and RESTART_POLICY.fullmatch(restart)):
            problems.append(f'{name}: invalid restart policy {restart!r} (quote "no" in YAML)')
        if name in ONE_SHOT_SERVICES:
            if restart != "no":
                problems.append(f'{name}: a one-shot job must not restart (restart: "no")')
            continue
        if restart == "no":
            problems.append(f"{name}: a long-running service needs a restart policy")
        test = (service.get("healthcheck") or {}).get("test")
        if not test:
            problems.append(f"{name}: a long-running service needs a healthcheck")
        elif isinstance(test, list) and test[0] not in ("CMD", "CMD-SHELL"):
            problems.append(f"{name}: healthcheck test must start with CMD or CMD-SHELL")
    return problems


def check_ports(compose: dict, base_dir: Path) -> list[str]:
    problems = []
    published: dict[str, str] = {}
    for name, service in compose["services"].items():
        ports = service.get("ports") or []
        if ports and name not in PUBLISHING_SERVICES:
            problems.append(f"{name}: publishes ports but only UIs and APIs may")
        for port in ports:
            if not isinstance(port, str):
                problems.append(f"{name}: published port {port!r} is not a string")
                continue
            parts = render(port).split(":")
            if not parts[-1].split("/")[0].isdigit() or len(parts) < 2:
                problems.append(f"{name}: published port {port!r} is not HOST:CONTAINER")
                continue
            host = ":".join(parts[:-1])
            if host in published:
                problems.append(f"{name}: host port {host} is also published by {published[host]}")
            published[host] = name
    return problems


def check_volumes(compose: dict, base_dir: Path) -> list[str]:
    problems = []
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                if not (base_dir / source).exists():
                    problems.append(f"{name}: bind-mounted {source} does not exist")
            elif source not in declared:
                problems.append(f"{name}: undeclared volume '{source}'")
    return problems


def check_environment(compose: dict, base_dir: Path) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        for key, value in env_of(service).items():
            if not isinstance(value, str):
                problems.append(f"{name}: {key} is {value!r}, not a string (quote it)")
        for text in strings(service):
            problems += [
                f"{name}: unbraced ${m.group('bare')} in {text[:40]!r} (write ${{...}} or $$)"
                for m in interpolations(text)
                if m.group("bare")
            ]
    return problems


def check_airflow_common(compose: dict, base_dir: Path) -> list[str]:
    common = compose.get(AIRFLOW_COMMON)
    if not common:
        return [f"no `{AIRFLOW_COMMON}` anchor for the Airflow services"]
    problems = []
    for name in AIRFLOW_SERVICES:
        service = compose["services"].get(name, {})
        for key in ("image", "build"):
            if service.get(key) != common.get(key):
                problems.append(f"{name}: {key} differs from the shared {AIRFLOW_COMMON}")
        if not set(common.get("volumes", [])) <= set(service.get("volumes", [])):
            problems.append(f"{name}: lacks volumes of the shared {AIRFLOW_COMMON}")
        env = env_of(service)
        if any(env.get(k) != v for k, v in env_of(common).items()):
            problems.append(f"{name}: environment differs from the shared {AIRFLOW_COMMON}")
    return problems


def check_env_contract(compose: dict, base_dir: Path) -> list[str]:
    problems = []
    for name in AIRFLOW_SERVICES:
        env = env_of(compose["services"].get(name, {}))
        problems += [
            f"{name}: env contract variable {k} is missing" for k in ENV_CONTRACT if k not in env
        ]
        problems += [
            f"{name}: {key} is {env[key]!r}, expected {value!r}"
            for key, value in FIXED_VALUES.items()
            if key in env and env[key] != value
        ]
        problems += [
            f"{name}: {key} is not a JSON connection"
            for key, value in env.items()
            if key.startswith("AIRFLOW_CONN_") and as_json(render(str(value))) is None
        ]
    return problems


def check_secrets(compose: dict, base_dir: Path) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        for key, value in env_of(service).items():
            if is_secret_name(key) and not is_required_var(str(value)):
                problems.append(f"{name}: {key} must be a required ${{VAR:?...}} interpolation")
            connection = as_json(render(str(value))) if key.startswith("AIRFLOW_CONN_") else None
            password = (connection or {}).get("password")
            if password is not None and not re.fullmatch(r"<\w+>", str(password)):
                problems.append(f"{name}: {key} holds a literal password")
        for text in strings(service):
            for match in interpolations(text):
                variable = match.group("name") or match.group("bare")
                if is_secret_name(variable) and match.group("op") != ":?":
                    problems.append(
                        f"{name}: secret {variable} must be required (`:?`), no default"
                    )
            for url in URL.finditer(render(text)):
                userinfo = url.group("netloc").rpartition("@")[0]
                password = userinfo.partition(":")[2]
                if password and not re.fullmatch(r"<\w+>", password):
                    problems.append(f"{name}: literal password in URL {url.group(0)!r}")
    return problems


def endpoint_hosts(text: str) -> Iterator[str]:
    """Hosts named by the URLs (and JSON connections) in an interpolated string."""
    connection = as_json(text)
    if connection is not None:
        if connection.get("host"):
            yield connection["host"]
        text = json.dumps(connection.get("extra", {}))
    for url in URL.finditer(text):
        if url.group("scheme") not in ("s3", "file"):
            yield url.group("netloc").rpartition("@")[2].rsplit(":", 1)[0]


def check_endpoint_hosts(compose: dict, base_dir: Path) -> list[str]:
    problems = []
    services = compose["services"]
    for name, service in services.items():
        env = {k: render(v) for k, v in env_of(service).items() if isinstance(v, str)}
        texts = [*env.values(), *(render(t) for t in strings(service.get("command", [])))]
        hosts = [host for text in texts for host in endpoint_hosts(text)]
        hosts += [v.rsplit(":", 1)[0] for k, v in env.items() if k.endswith("_GRPC_URL")]
        problems += [
            f"{name}: endpoint names unknown host '{host}'"
            for host in hosts
            if host not in services and host not in LOCAL_HOSTS and "<" not in host
        ]
    return problems


CHECKS: tuple[Check, ...] = (
    check_top_level,
    check_images,
    check_depends_on,
    check_restart_and_health,
    check_ports,
    check_volumes,
    check_environment,
    check_airflow_common,
    check_env_contract,
    check_secrets,
    check_endpoint_hosts,
)


def compose_problems(compose: dict, base_dir: Path = DOCKER_DIR) -> list[str]:
    """Everything wrong with a compose file (parsed), as readable lines; [] when it is sound."""
    if "services" not in compose:
        return ["no services"]
    return [problem for check in CHECKS for problem in check(compose, base_dir)]


# --- the compose file --------------------------------------------------------------------------
def test_compose_file_is_sound() -> None:
    assert compose_problems(COMPOSE) == []


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """A mutation that sets `a.b.c` (dots separate keys; indices allowed) in a compose dict."""

    def mutate(compose: dict) -> None:
        *parents, last = path.split(".")
        node: Any = compose
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value

    return mutate


def _delete(path: str) -> Callable[[dict], None]:
    def mutate(compose: dict) -> None:
        *parents, last = path.split(".")
        node: Any = compose
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def _append(path: str, value: Any) -> Callable[[dict], None]:
    def mutate(compose: dict) -> None:
        node: Any = compose
        for key in path.split("."):
            node = node[key]
        node.append(value)

    return mutate


BROKEN = {
    "depends on a missing service": (
        _set("services.mlflow.depends_on.nosuch", {"condition": "service_healthy"}),
        "depends on undefined service 'nosuch'",
    ),
    "invalid condition": (
        _set("services.mlflow.depends_on.postgres.condition", "service_ready"),
        "invalid condition 'service_ready'",
    ),
    "healthy wait on a service without healthcheck": (
        _delete("services.postgres.healthcheck"),
        "waits for postgres to be healthy but it has no healthcheck",
    ),
    "one-shot that restarts": (
        _set("services.minio-init.restart", "always"),
        "waits for minio-init to complete but it restarts forever",
    ),
    "unquoted no": (_set("services.redis.restart", False), "invalid restart policy False"),
    "obsolete version key": (_set("version", "3.8"), "obsolete top-level `version`"),
    "missing service": (_delete("services.redis"), "service redis is missing"),
    "missing Dockerfile": (
        _set("services.mlflow.build.dockerfile", "docker/nope.Dockerfile"),
        "nope.Dockerfile does not exist",
    ),
    "undeclared build arg": (
        _set("services.mlflow.build.args", {"TORCH_INDEX_URL": "x"}),
        "build arg TORCH_INDEX_URL is not an ARG of mlflow.Dockerfile",
    ),
    "integer port": (_set("services.mlflow.ports", [5000]), "published port 5000 is not a string"),
    "store publishing a port": (
        _set("services.postgres.ports", ["5432:5432"]),
        "postgres: publishes ports",
    ),
    "two services on one host port": (
        _set("services.mlflow.ports", ["${PUBLISH_ADDRESS:-127.0.0.1}:8080:5000"]),
        "is also published by",
    ),
    "undeclared volume": (
        _append("services.redis.volumes", "scratch:/scratch"),
        "undeclared volume 'scratch'",
    ),
    "missing bind mount": (
        _append("services.postgres.volumes", "./postgres/nope.sql:/docker-entrypoint-initdb.d/x"),
        "bind-mounted ./postgres/nope.sql does not exist",
    ),
    "no healthcheck": (_delete("services.mlflow.healthcheck"), "mlflow: a long-running"),
    "boolean env value": (
        _set("services.mlflow.environment.MLFLOW_SERVER_ENABLE_JOB_EXECUTION", False),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION is False, not a string",
    ),
    "unbraced interpolation": (
        _set("services.redis.healthcheck.test", ["CMD-SHELL", "redis-cli -a $REDIS_PASSWORD"]),
        "unbraced $REDIS_PASSWORD",
    ),
    "literal secret": (
        _set("services.postgres.environment.POSTGRES_PASSWORD", "hunter2"),
        "POSTGRES_PASSWORD must be a required",
    ),
    "defaulted secret": (
        _set("services.postgres.environment.POSTGRES_PASSWORD", "${POSTGRES_PASSWORD:-postgres}"),
        "secret POSTGRES_PASSWORD must be required",
    ),
    "literal password in a URL": (
        _set("services.mlflow.command.3", "postgresql+psycopg2://mlflow:hunter2@postgres/mlflow"),
        "literal password in URL",
    ),
    "literal password in a connection": (
        _set(
            "services.airflow-worker.environment.AIRFLOW_CONN_WAREHOUSE_POSTGRES",
            '{"conn_type": "postgres", "host": "postgres", "password": "hunter2"}',
        ),
        "AIRFLOW_CONN_WAREHOUSE_POSTGRES holds a literal password",
    ),
    "Airflow service off the shared image": (
        _set("services.airflow-worker.image", "apache/airflow:3.3.2"),
        "airflow-worker: image differs from the shared",
    ),
    "Airflow service without a contract variable": (
        _delete("services.airflow-scheduler.environment.TRITON_GRPC_URL"),
        "env contract variable TRITON_GRPC_URL is missing",
    ),
    "wrong execution API URL": (
        _set(
            "services.airflow-worker.environment.AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "http://localhost:8080/execution/",
        ),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL is 'http://localhost:8080/execution/'",
    ),
    "endpoint on a misspelt host": (
        _set("services.airflow-worker.environment.MLFLOW_TRACKING_URI", "http://mlfow:5000"),
        "unknown host 'mlfow'",
    ),
    "connection on a misspelt host": (
        _set(
            "services.airflow-worker.environment.AIRFLOW_CONN_MLFLOW_DEFAULT",
            '{"conn_type": "http", "host": "mlfow", "port": 5000}',
        ),
        "unknown host 'mlfow'",
    ),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_compose_problems_catches_a_broken_copy(case: str) -> None:
    mutate, expected = BROKEN[case]
    broken = copy.deepcopy(COMPOSE)
    mutate(broken)

    problems = compose_problems(broken)

    assert any(expected in problem for problem in problems), problems


def test_airflow_services_share_one_anchor_in_the_file() -> None:
    text = COMPOSE_PATH.read_text()
    assert re.search(rf"^{AIRFLOW_COMMON}: &airflow-common$", text, re.MULTILINE)
    services = text.split("\nservices:\n", 1)[1]
    for name in AIRFLOW_SERVICES:
        block = re.search(rf"^  {name}:(?: &[\w-]+)?\n((?:    .*\n|\n)+)", services, re.MULTILINE)
        assert block, name
        # directly, or through the general worker's anchor (the training worker)
        assert re.search(r"<<: \*airflow-(common|worker)\n", block.group(1)), name
    assert re.search(
        r"^  airflow-worker: &airflow-worker\n    <<: \*airflow-common\n", services, re.M
    )


def test_workers_listen_on_the_queues_the_dags_route_to() -> None:
    """One definition of the queues (twin.assets): the general workers take everything but
    training, the training worker (the GPU override's) takes training only."""
    from twin.assets import GENERAL_QUEUES, TRAINING_QUEUE

    def queues(service: str) -> set[str]:
        command = COMPOSE["services"][service]["command"].split()
        return set(command[command.index("--queues") + 1].split(","))

    assert queues("airflow-worker") == set(GENERAL_QUEUES)
    assert queues("airflow-worker-training") == {TRAINING_QUEUE}
    gpu = load_yaml(GPU_OVERRIDE_PATH)["services"]
    assert set(gpu) == {"airflow-worker-training"}


# --- the env contract ----------------------------------------------------------------------------
def value_kind(value: str) -> str:
    """What sort of value an endpoint variable holds, independent of hosts, ports and paths."""
    if value.startswith("{"):
        return "connection:" + json.loads(value)["conn_type"]
    if "://" in value:
        scheme = value.split("://", 1)[0]
        # The object store is a local folder embedded and a bucket in production (DESIGN.md).
        return "object-store" if scheme in ("file", "s3") else "url:" + scheme
    if value.startswith("/"):
        return "path"
    if re.fullmatch(r"[\w.-]+:\d+", value):
        return "host:port"
    return "literal:" + value


# Contract variables whose value is a secret of its own (not part of a URL or connection).
SECRET_VARIABLES = {"MLFLOW_TRACKING_PASSWORD", "TRITON_REPOSITORY_KEY"}


def test_env_contract_matches_what_the_embedded_stack_writes(tmp_path: Path) -> None:
    stack = Stack(tmp_path, ("postgres", "mongo", "triton", "mlflow"))
    keys = [key for service in stack.services.values() for key in service.ports]
    stack.ctx.ports.update({key: 20000 + i for i, key in enumerate(keys)})
    embedded = stack.endpoints()
    assert {"MONGO_URI", "WAREHOUSE_DSN", "TRITON_GRPC_URL"} <= set(embedded)

    for name in AIRFLOW_SERVICES:
        env = env_of(COMPOSE["services"][name])
        assert sorted(set(embedded) - set(env)) == [], name
        for key, value in embedded.items():
            if key in SECRET_VARIABLES:  # a generated secret here, a required variable there
                assert re.fullmatch(r"<\w+>", render(env[key])), (name, key)
                continue
            assert value_kind(render(env[key])) == value_kind(value), (name, key)


def test_airflow_init_applies_the_declared_pools_and_variables() -> None:
    from twin.stack.airflow_objects import declared_objects, load_declared

    init = COMPOSE["services"]["airflow-init"]["command"]
    script = init[-1] if isinstance(init, list) else init
    assert "python -m twin.stack.airflow_objects declared" in script
    assert script.index("airflow db migrate") < script.index("airflow_objects declared")
    declared = load_declared()
    objects = declared_objects({"OBJECT_STORE_URL": "s3://prod-bucket/twin"})
    assert objects.connections == []  # AIRFLOW_CONN_* (or a secrets backend) in production
    assert {p["name"] for p in objects.pools} == {p["pool_name"] for p in declared["pools"]}
    assert objects.variables["twin_object_store_url"] == "s3://prod-bucket/twin"
    assert declared_objects({}).variables["twin_object_store_url"] == next(
        v["variable_value"]
        for v in declared["variables"]
        if v["variable_name"] == "twin_object_store_url"
    )


def test_airflow_connections_cover_the_connection_ids_of_settings() -> None:
    wanted = {f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in CONNECTION_IDS.values()}
    wanted.add("AIRFLOW_CONN_AWS_DEFAULT")
    env = env_of(COMPOSE["services"]["airflow-worker"])
    assert wanted <= set(env)
    assert json.loads(render(env["AIRFLOW_CONN_AWS_DEFAULT"]))["conn_type"] == "aws"


# --- variables and secrets ---------------------------------------------------------------------
def used_variables(*paths: Path) -> set[str]:
    return {
        match.group("name") or match.group("bare")
        for path in paths
        for text in strings(load_yaml(path))
        for match in interpolations(text)
    }


def test_every_variable_is_in_env_example_and_every_entry_is_used() -> None:
    used = used_variables(COMPOSE_PATH, GPU_OVERRIDE_PATH)
    listed = set(env_example())
    assert sorted(used - listed) == [], "interpolated but not in docker/.env.example"
    assert sorted(listed - used) == [], "in docker/.env.example but never used"


def test_env_example_holds_placeholders_never_secrets() -> None:
    entries = env_example()
    secrets = {name for name in entries if is_secret_name(name)}
    assert {"POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY"} <= secrets
    assert {name: entries[name] for name in secrets} == dict.fromkeys(secrets, PLACEHOLDER)
    assert [name for name, value in entries.items() if value == PLACEHOLDER] == [
        name for name in entries if name in secrets
    ]


def test_make_env_fills_every_placeholder_once(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    target = tmp_path / ".env"
    script = DOCKER_DIR / "make-env.sh"
    subprocess.run(["bash", script, ENV_EXAMPLE_PATH, target], check=True, capture_output=True)

    example, written = env_example(), {}
    for line in target.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            written[name] = value
    assert set(written) == set(example)
    generated = {n: written[n] for n, v in example.items() if v == PLACEHOLDER}
    assert generated and PLACEHOLDER not in generated.values()
    assert len(set(generated.values())) == len(generated)  # every secret its own value
    assert all(written[n] == v for n, v in example.items() if v != PLACEHOLDER)
    assert all(re.fullmatch(r"[0-9a-f]{20,}", v) for n, v in generated.items() if "FERNET" not in n)
    assert len(generated["S3_ACCESS_KEY_ID"]) == 20  # MinIO's limits: 20 and 40 characters
    assert len(generated["S3_SECRET_ACCESS_KEY"]) == 40
    Fernet(generated["AIRFLOW_FERNET_KEY"].encode())  # raises on an invalid key
    assert target.stat().st_mode & 0o777 == 0o600

    before = target.read_text()
    again = subprocess.run(["bash", script, ENV_EXAMPLE_PATH, target], capture_output=True)
    assert again.returncode != 0 and b"not overwriting" in again.stderr
    assert target.read_text() == before


# --- images ------------------------------------------------------------------------------------
def test_airflow_dockerfile_extends_the_pinned_airflow_and_installs_the_project() -> None:
    dockerfile = DOCKER_DIR / "airflow.Dockerfile"
    instructions = dockerfile_instructions(dockerfile)
    pins = requirement_pins(REQUIREMENTS_PATH.read_text())

    froms = [args for instruction, args in instructions if instruction == "FROM"]
    assert froms == [f"apache/airflow:{pins['apache-airflow']}-python3.11"]
    runs = " ".join(args for instruction, args in instructions if instruction == "RUN")
    assert "requirements.txt" in " ".join(copy_sources(dockerfile))
    assert re.search(r"\brequirements\.txt\b.*pip install -r \S*requirements\S*\.txt", runs)
    assert "pip install --no-deps -e ." in runs
    assert "TORCH_INDEX_URL" in runs
    copied = {source.rstrip("/") for source in copy_sources(dockerfile)}
    assert {"include", "pyproject.toml", "dags", "plugins", "dbt", "expectations"} <= copied


def test_mlflow_dockerfile_pins_what_requirements_pin() -> None:
    dockerfile = DOCKER_DIR / "mlflow.Dockerfile"
    instructions = dockerfile_instructions(dockerfile)
    pins = requirement_pins(REQUIREMENTS_PATH.read_text())
    runs = " ".join(args for instruction, args in instructions if instruction == "RUN")
    image_pins = requirement_pins("\n".join(re.findall(r"\S+==\S+", runs)))

    assert [args for instruction, args in instructions if instruction == "FROM"] == [
        "python:3.11-slim"
    ]
    assert {"mlflow", "psycopg2-binary", "boto3"} <= set(image_pins)
    assert image_pins == {name: pins[name] for name in image_pins}
    assert image_pins["mlflow"] == pins["mlflow"]


@pytest.mark.parametrize("name", ["airflow", "mlflow"])
def test_build_context_keeps_what_the_dockerfile_copies(name: str) -> None:
    dockerfile = DOCKER_DIR / f"{name}.Dockerfile"
    ignore = [
        line.strip()
        for line in (DOCKER_DIR / f"{name}.Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] in ("*", "**"), "start from an empty context, then admit what is copied"
    admitted = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    context = build_of(
        COMPOSE["services"][f"{name}-init" if name == "airflow" else name], DOCKER_DIR
    )
    assert context is not None and context[1] == dockerfile.resolve()
    for source in copy_sources(dockerfile):
        if source.startswith("/"):
            continue
        plain = source.rstrip("*/")
        assert plain in admitted, f"{source} is copied but left out of the build context"
        if not source.endswith("*"):  # `README.md*`: optional by design
            assert (context[0] / plain).exists(), f"{source} does not exist in the context"


# --- services ----------------------------------------------------------------------------------
def test_postgres_init_creates_what_the_stack_uses() -> None:
    script = (DOCKER_DIR / "postgres" / "init.sh").read_text()
    databases = set(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", script))
    roles = set(re.findall(r"CREATE ROLE (\w+) LOGIN", script))
    assert set(PostgresService.databases) <= {db for db, _ in databases}
    assert {owner for _, owner in databases} <= roles
    assert re.search(r"--dbname twin <<'SQL'\nCREATE EXTENSION IF NOT EXISTS vector;", script)
    assert COMPOSE["services"]["postgres"]["image"] == "pgvector/pgvector:pg16"

    dsns = [
        url
        for text in strings(COMPOSE["services"])
        for url in re.findall(
            r"postgres(?:ql)?(?:\+\w+)?://(\w+):<\w+>@postgres:5432/(\w+)", render(text)
        )
    ]
    assert {db for _, db in dsns} == {"twin", "mlflow", "airflow"}
    for user, db in dsns:
        if user == PostgresService.serving_role:  # owns nothing: granted by the platform
            assert user in roles, f"{user} is not created by postgres/init.sh"
            continue
        assert (db, user) in databases, f"{user}@{db} is not created by postgres/init.sh"


def test_mongo_runs_a_replica_set_that_initiates_itself() -> None:
    mongo = COMPOSE["services"]["mongo"]
    command = mongo["command"]
    assert mongo["image"] == "mongo:7"
    assert command[command.index("--replSet") + 1] == "rs0"
    assert "--keyFile" in command
    health = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate(" in health and "_id: 'rs0'" in health
    assert "host: 'mongo:27017'" in health  # the member is reachable under the service's name
    for name in AIRFLOW_SERVICES:
        assert "replicaSet=rs0" in env_of(COMPOSE["services"][name])["MONGO_URI"]


def test_triton_serves_the_shared_model_repository_on_a_gpu() -> None:
    triton = COMPOSE["services"]["triton"]
    assert triton["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert triton["image"].endswith("-trtllm-python-py3")
    flags = dict(arg.split("=", 1) for arg in triton["command"][1:])
    assert flags["--model-control-mode"] == "explicit"
    repository = flags["--model-repository"]
    volume = next(v.split(":")[0] for v in triton["volumes"] if v.split(":")[1] == repository)

    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    published = {render(port).rsplit(":", 1)[1] for port in triton["ports"]}
    for protocol in ("http", "grpc", "metrics"):
        assert flags[f"--{protocol}-port"] in published

    for name in AIRFLOW_SERVICES:
        service = COMPOSE["services"][name]
        env = env_of(service)
        assert env["TRITON_MODEL_REPOSITORY"] == repository
        assert f"{volume}:{repository}" in service["volumes"]
        assert env["TRITON_HTTP_URL"] == f"http://triton:{flags['--http-port']}"
        assert env["TRITON_GRPC_URL"] == f"triton:{flags['--grpc-port']}"
        assert env["TRITON_METRICS_URL"] == f"http://triton:{flags['--metrics-port']}/metrics"


def test_gpu_override_only_extends_defined_services() -> None:
    override = load_yaml(GPU_OVERRIDE_PATH)
    assert "version" not in override
    for name, service in override["services"].items():
        assert name in COMPOSE["services"]
        assert not {"image", "build"} & set(service), "one Airflow image for every component"
        for device in service["deploy"]["resources"]["reservations"]["devices"]:
            assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
