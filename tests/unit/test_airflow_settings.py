"""airflow_settings.yaml declares what DESIGN.md promises, in the Astro CLI format."""

from pathlib import Path

import yaml

from twin.settings import CONNECTION_IDS

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_CONNECTIONS = {*CONNECTION_IDS.values(), "aws_default"}


def load() -> dict:
    return yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]


def test_every_connection_id_of_the_design_is_declared() -> None:
    declared = {c["conn_id"] for c in load()["connections"]}
    assert declared == EXPECTED_CONNECTIONS


def test_entries_have_the_astro_keys_and_no_secrets() -> None:
    settings = load()
    for conn in settings["connections"]:
        assert {"conn_id", "conn_type", "conn_host", "conn_port", "conn_password"} <= set(conn)
        assert not conn["conn_password"], f"{conn['conn_id']} carries a password"
    for pool in settings["pools"]:
        assert isinstance(pool["pool_slot"], int) and pool["pool_slot"] > 0
    assert all({"variable_name", "variable_value"} <= set(v) for v in settings["variables"])


# --- the embedded stack's rendering of the declaration ----------------------------------------
def embedded_endpoints() -> dict[str, str]:
    from twin.settings import endpoint_to_connection

    mongo = "mongodb://twin:m%40ss@127.0.0.1:27999/?directConnection=true&authSource=admin"
    return {
        "AIRFLOW_CONN_MONGO_DEFAULT": endpoint_to_connection(
            "mongo_uri", mongo, directConnection=True, authSource="admin"
        ),
        "AIRFLOW_CONN_WAREHOUSE_POSTGRES": endpoint_to_connection(
            "warehouse_dsn", "postgresql://postgres:pg%2Fpw@127.0.0.1:5999/twin"
        ),
        "AIRFLOW_CONN_MLFLOW_DEFAULT": endpoint_to_connection(
            "mlflow_tracking_uri", "http://127.0.0.1:5001"
        ),
        "OBJECT_STORE_URL": "file:///tmp/stack/objects",
    }


def test_the_stack_fills_hosts_and_secrets_into_every_declared_connection() -> None:
    from twin.stack.airflow_objects import render_objects

    environ = {"TRITON_HTTP_URL": "http://127.0.0.1:8999"}  # a service the stack does not run
    objects = render_objects(embedded_endpoints(), environ)
    conns = {c["conn_id"]: c for c in objects.connections}

    assert set(conns) == EXPECTED_CONNECTIONS
    mongo = conns["mongo_default"]
    assert (mongo["host"], mongo["port"], mongo["login"], mongo["password"]) == (
        "127.0.0.1",
        27999,
        "twin",
        "m@ss",
    )
    assert mongo["extra"] == {"directConnection": True, "authSource": "admin"}  # no replicaSet
    warehouse = conns["warehouse_postgres"]
    assert (warehouse["conn_type"], warehouse["password"], warehouse["schema"]) == (
        "postgres",
        "pg/pw",
        "twin",
    )
    assert (conns["triton_default"]["host"], conns["triton_default"]["port"]) == ("127.0.0.1", 8999)
    assert conns["aws_default"]["extra"] == {"region_name": "eu-north-1"}  # as declared
    assert objects.variables["twin_object_store_url"] == "file:///tmp/stack/objects"
    assert {p["name"]: p["slots"] for p in objects.pools} == {
        "crawl": 8,
        "embedding": 2,
        "training": 1,
    }
    assert "pg/pw" not in str(objects.redacted()) and "m@ss" not in str(objects.redacted())


def test_a_malformed_declaration_is_refused_naming_the_entry(tmp_path) -> None:
    import pytest

    from twin.stack.airflow_objects import AirflowObjectsError, load_declared

    bad = tmp_path / "airflow_settings.yaml"
    bad.write_text("airflow:\n  connections:\n    - conn_id: x\n  pools:\n    - pool_name: p\n")
    with pytest.raises(AirflowObjectsError, match=r"connections\[0\] needs conn_id and conn_type"):
        load_declared(bad)
    bad.write_text("airflow:\n  pools:\n    - pool_name: p\n      pool_slot: many\n")
    with pytest.raises(AirflowObjectsError, match=r"pools\[0\] needs pool_name and an integer"):
        load_declared(bad)
