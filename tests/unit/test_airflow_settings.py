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
