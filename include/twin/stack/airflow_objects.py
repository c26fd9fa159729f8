"""Connections, variables and pools of `airflow_settings.yaml`, applied to Airflow's metadata DB.

`airflow_settings.yaml` (the Astro CLI format) declares them with production hosts and no secrets.
The embedded stack renders each declared connection with its own endpoints and generated
passwords, then writes them through Airflow's models (as `airflow connections import` does), so
the scheduler, the API server, `airflow dags test` and the Connections page read the same rows.
Applying is idempotent: an object already as declared is left alone.

The writing runs in a child interpreter with the stack's `AIRFLOW_HOME`, because Airflow reads its
configuration once, when first imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from twin.settings import CONNECTION_IDS, PROJECT_ROOT, endpoint_to_connection

SETTINGS_FILE = PROJECT_ROOT / "airflow_settings.yaml"
# The stack.env entry (a settings field's environment variable) that backs each variable.
EMBEDDED_VARIABLES = {"twin_object_store_url": "OBJECT_STORE_URL"}
CONNECTION_FIELDS = ("conn_type", "host", "port", "login", "password", "schema")


class AirflowObjectsError(RuntimeError):
    """airflow_settings.yaml is malformed, or applying it to the metadata DB failed."""


@dataclass(frozen=True)
class AirflowObjects:
    """Everything to write to the metadata DB (connections carry their secrets)."""

    connections: list[dict[str, Any]] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    pools: list[dict[str, Any]] = field(default_factory=list)

    def redacted(self) -> dict[str, Any]:
        """The objects without passwords, for logs and messages."""
        data = asdict(self)
        for conn in data["connections"]:
            if conn.get("password"):
                conn["password"] = "***"
        return data


def load_declared(path: Path = SETTINGS_FILE) -> dict[str, Any]:
    """The `airflow:` block of the settings file, checked for the keys the stack relies on."""
    try:
        block = (yaml.safe_load(path.read_text()) or {})["airflow"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise AirflowObjectsError(f"{path}: cannot read its `airflow:` block ({err})") from err
    for index, conn in enumerate(block.get("connections") or []):
        if not isinstance(conn, dict) or not conn.get("conn_id") or not conn.get("conn_type"):
            raise AirflowObjectsError(
                f"{path}: connections[{index}] needs conn_id and conn_type, got {conn!r}"
            )
    for index, pool in enumerate(block.get("pools") or []):
        slots = pool.get("pool_slot") if isinstance(pool, dict) else None
        if not isinstance(pool, dict) or not pool.get("pool_name") or not isinstance(slots, int):
            raise AirflowObjectsError(
                f"{path}: pools[{index}] needs pool_name and an integer pool_slot, got {pool!r}"
            )
    return block


def embedded_connection(
    conn_id: str, endpoints: Mapping[str, str], environ: Mapping[str, str]
) -> dict[str, Any] | None:
    """The stack's value of a connection (parsed `AIRFLOW_CONN_*` JSON), or None."""
    key = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = endpoints.get(key)
    if raw is None:
        # A service the stack does not run but the environment names (tests, shared servers).
        field_name = next((f for f, c in CONNECTION_IDS.items() if c == conn_id), None)
        url = environ.get(field_name.upper()) if field_name else None
        raw = endpoint_to_connection(field_name, url) if field_name and url else None
    return json.loads(raw) if raw else None


def render_objects(
    endpoints: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
    declared: dict[str, Any] | None = None,
) -> AirflowObjects:
    """The declared objects with the embedded stack's hosts, ports and secrets filled in."""
    environ = os.environ if environ is None else environ
    declared = load_declared() if declared is None else declared
    connections = []
    for conn in declared.get("connections") or []:
        row: dict[str, Any] = {
            "conn_id": conn["conn_id"],
            "conn_type": conn["conn_type"],
            "host": conn.get("conn_host") or None,
            "port": conn.get("conn_port") or None,
            "login": conn.get("conn_login") or None,
            "password": conn.get("conn_password") or None,
            "schema": conn.get("conn_schema") or None,
            "extra": conn.get("conn_extra") or None,
            "description": conn.get("conn_description") or None,
        }
        embedded = embedded_connection(conn["conn_id"], endpoints, environ)
        if embedded is not None:
            row.update({k: embedded.get(k) for k in CONNECTION_FIELDS if k != "conn_type"})
            row["conn_type"] = embedded.get("conn_type") or row["conn_type"]
            row["extra"] = embedded.get("extra") or row["extra"]
        connections.append(row)
    variables = {}
    for var in declared.get("variables") or []:
        source = EMBEDDED_VARIABLES.get(var["variable_name"])
        value = endpoints.get(source) if source else None
        variables[var["variable_name"]] = str(value or var["variable_value"])
    pools = [
        {
            "name": pool["pool_name"],
            "slots": pool["pool_slot"],
            "description": pool.get("pool_description") or "",
        }
        for pool in declared.get("pools") or []
    ]
    return AirflowObjects(connections, variables, pools)


def declared_objects(environ: Mapping[str, str] | None = None) -> AirflowObjects:
    """Production's share of the file: its pools and variables (a variable backed by a settings
    variable takes that variable's value when the environment sets it). Connections are left out:
    production gives them as `AIRFLOW_CONN_*` or through a secrets backend, which Airflow reads
    before its metadata DB."""
    environ = os.environ if environ is None else environ
    backing = {k: environ[k] for k in EMBEDDED_VARIABLES.values() if environ.get(k)}
    rendered = render_objects(backing, environ={})
    return AirflowObjects([], rendered.variables, rendered.pools)


def _run_child(args: list[str], payload: dict, env: dict[str, str], timeout_s: float) -> dict:
    """Run this module in a child interpreter with Airflow's environment; return its JSON."""
    result = subprocess.run(
        [sys.executable, "-m", "twin.stack.airflow_objects", *args],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise AirflowObjectsError(f"airflow {args[0]} failed (exit {result.returncode}):\n{tail}")
    return json.loads(lines[-1])


def apply_objects(objects: AirflowObjects, env: dict[str, str]) -> dict[str, list[str]]:
    """Write `objects` to the metadata DB of `env`'s AIRFLOW_HOME; what was created/updated."""
    return _run_child(["apply"], asdict(objects), env, timeout_s=300)


def unpause_dags(dag_ids: list[str], env: dict[str, str], wait_s: float) -> dict[str, list[str]]:
    """Unpause the DAGs once the DAG processor has stored them (waiting up to `wait_s`)."""
    payload = {"dag_ids": dag_ids, "wait_s": wait_s}
    return _run_child(["unpause"], payload, env, timeout_s=wait_s + 120)


# --- the child side: runs with Airflow configured for the stack --------------------------------
def _apply(payload: dict) -> dict[str, list[str]]:
    from airflow.models import Connection, Pool, Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    done: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
    with create_session() as session:
        for spec in payload["connections"]:
            wanted = Connection(
                conn_id=spec["conn_id"],
                conn_type=spec["conn_type"],
                description=spec.get("description"),
                host=spec.get("host"),
                login=spec.get("login"),
                password=spec.get("password"),
                schema=spec.get("schema"),
                port=spec.get("port"),
                extra=json.dumps(spec["extra"]) if spec.get("extra") else None,
            )
            current = session.scalar(select(Connection).where(Connection.conn_id == wanted.conn_id))
            key = f"connection {wanted.conn_id}"
            if current is None:
                session.add(wanted)
                done["created"].append(key)
                continue
            fields = (*CONNECTION_FIELDS, "extra_dejson", "description")
            if all(getattr(current, f) == getattr(wanted, f) for f in fields):
                done["unchanged"].append(key)
                continue
            wanted.id = current.id
            session.merge(wanted)
            done["updated"].append(key)
        session.flush()
        for name, value in payload["variables"].items():
            key = f"variable {name}"
            current = session.scalar(select(Variable).where(Variable.key == name))
            if current is not None and current.val == value:
                done["unchanged"].append(key)
                continue
            Variable.set(name, value, session=session)
            done["updated" if current is not None else "created"].append(key)
        for spec in payload["pools"]:
            key = f"pool {spec['name']}"
            current = session.scalar(select(Pool).where(Pool.pool == spec["name"]))
            same = current is not None and (current.slots, current.description or "") == (
                spec["slots"],
                spec["description"],
            )
            if same:
                done["unchanged"].append(key)
                continue
            Pool.create_or_update_pool(
                spec["name"], spec["slots"], spec["description"], False, session=session
            )
            done["updated" if current is not None else "created"].append(key)
    return done


def _unpause(payload: dict) -> dict[str, list[str]]:
    from airflow.models import DagModel
    from airflow.utils.session import create_session

    wanted = list(payload["dag_ids"])
    deadline = time.monotonic() + float(payload["wait_s"])
    unpaused: list[str] = []
    while True:
        with create_session() as session:
            for dag_id in [d for d in wanted if d not in unpaused]:
                model = session.get(DagModel, dag_id)
                if model is not None:
                    model.is_paused = False
                    unpaused.append(dag_id)
        if len(unpaused) == len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(2)
    missing = [d for d in wanted if d not in unpaused]
    return {"unpaused": unpaused, "missing": missing, "import_errors": _import_errors(missing)}


def _import_errors(dag_ids: list[str]) -> dict[str, str]:
    """The last line of the import error of each DAG file named like a missing DAG."""
    from airflow.models.errors import ParseImportError
    from airflow.utils.session import create_session
    from sqlalchemy import select

    if not dag_ids:
        return {}
    with create_session() as session:
        rows = session.execute(select(ParseImportError.filename, ParseImportError.stacktrace))
        return {
            str(name): (trace or "").strip().splitlines()[-1][:300] if trace else "?"
            for name, trace in rows
            if any(Path(str(name)).stem == dag_id for dag_id in dag_ids)
        }


def main(argv: list[str]) -> int:
    """`apply` / `unpause` read their JSON payload on stdin (the embedded stack's child);
    `declared` applies the file's pools and variables to this Airflow (production's init)."""
    actions = {"apply": _apply, "unpause": _unpause, "declared": None}
    if len(argv) != 1 or argv[0] not in actions:
        print(f"usage: python -m twin.stack.airflow_objects {{{'|'.join(actions)}}} [< JSON]")
        return 2
    if argv[0] == "declared":
        result = _apply(asdict(declared_objects()))
    else:
        result = actions[argv[0]](json.loads(sys.stdin.read()))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
