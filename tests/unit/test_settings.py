from pathlib import Path

import pytest

from twin.settings import connection_to_endpoint, endpoint_to_connection, load_settings


def test_settings_come_from_stack_env_and_env_overrides(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MONGO_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "stack.env").write_text(
        "MONGO_URI='mongodb://127.0.0.1:1234/'\nMLFLOW_TRACKING_URI=http://127.0.0.1:5000\n"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")

    settings = load_settings(tmp_path)

    assert settings.home == tmp_path
    assert settings.mongo_uri == "mongodb://127.0.0.1:1234/"
    assert settings.mlflow_tracking_uri == "http://mlflow.internal:5000"


def test_missing_endpoint_names_variable_and_connection(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WAREHOUSE_DSN", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE_POSTGRES", raising=False)
    with pytest.raises(RuntimeError, match=r"WAREHOUSE_DSN .*warehouse_postgres"):
        load_settings(tmp_path).require("warehouse_dsn")


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("warehouse_dsn", "postgresql://postgres:s3cr%2Ft@db.internal:5432/twin"),
        ("mlflow_tracking_uri", "http://mlflow.internal:5000"),
        ("triton_http_url", "http://triton.internal:8000"),
    ],
)
def test_airflow_connection_round_trips_to_the_same_endpoint(field: str, url: str) -> None:
    import json

    conn = json.loads(endpoint_to_connection(field, url))
    back = connection_to_endpoint(
        field,
        conn["conn_type"],
        conn["host"],
        conn["port"],
        conn.get("login"),
        conn.get("password"),
        conn.get("schema"),
        conn.get("extra", {}),
    )
    assert back == url
