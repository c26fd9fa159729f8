"""One DSN parser (libpq's, through psycopg) for every place that reads WAREHOUSE_DSN."""

from __future__ import annotations

import pytest

from twin.quality.gates import sqlalchemy_url
from twin.settings import Settings
from twin.store.warehouse import dsn_url, parse_dsn
from twin.warehouse.dbt import dbt_env


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "postgresql://postgres@/twin?host=/tmp/pg",
            {"user": "postgres", "dbname": "twin", "host": "/tmp/pg"},
        ),
        (
            "postgresql+psycopg2://u:p%40ss%2Fw@db.internal:6543/twin?sslmode=require",
            {
                "user": "u",
                "password": "p@ss/w",
                "host": "db.internal",
                "port": "6543",
                "dbname": "twin",
                "sslmode": "require",
            },
        ),
        (
            "host=/run/pg port=5433 user=ada dbname=warehouse",
            {"host": "/run/pg", "port": "5433", "user": "ada", "dbname": "warehouse"},
        ),
    ],
)
def test_every_dsn_form_parses_and_round_trips(dsn: str, expected: dict[str, str]) -> None:
    params = parse_dsn(dsn)

    assert params == expected
    assert parse_dsn(dsn_url(params)) == expected


def test_a_bad_dsn_is_named_without_its_password() -> None:
    with pytest.raises(ValueError, match="mysql"):
        parse_dsn("mysql://u:hunter2@h/db")
    for broken in ("postgresql://u:hunter2@h/db?bogus=1", "postgresql://u:hunter2@[h/db"):
        with pytest.raises(ValueError, match="not a valid Postgres DSN") as caught:
            parse_dsn(broken)
        assert "hunter2" not in str(caught.value)


def test_gx_and_dbt_read_the_same_parts() -> None:
    dsn = "postgresql://ada:s%20cret@/twin?host=/tmp/sock&sslmode=disable"

    assert sqlalchemy_url(dsn) == (
        "postgresql+psycopg2://ada:s%20cret@localhost/twin?host=/tmp/sock&sslmode=disable"
    )
    env = dbt_env(Settings(warehouse_dsn=dsn))
    assert (env["TWIN_DBT_HOST"], env["TWIN_DBT_USER"], env["TWIN_DBT_PASSWORD"]) == (
        "/tmp/sock",
        "ada",
        "s cret",
    )
    assert (env["TWIN_DBT_DBNAME"], env["TWIN_DBT_PORT"], env["TWIN_DBT_SSLMODE"]) == (
        "twin",
        "5432",
        "disable",
    )
