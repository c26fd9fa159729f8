"""Postgres warehouse connections (psycopg 3, pgvector types registered)."""

from __future__ import annotations

import psycopg
from pgvector.psycopg import register_vector

from twin.settings import Settings


def warehouse_connection(settings: Settings, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to `WAREHOUSE_DSN` (or `warehouse_postgres`), with the vector type usable."""
    conn = psycopg.connect(
        settings.require("warehouse_dsn"),
        autocommit=autocommit,
        connect_timeout=max(1, int(settings.service_timeout_s)),
        application_name="twinops",
    )
    try:
        register_vector(conn)
    except psycopg.ProgrammingError:
        conn.close()
        raise RuntimeError(
            "the warehouse has no `vector` extension: run `twin stack up`, or "
            "`CREATE EXTENSION vector` as a superuser"
        ) from None
    return conn
