"""Postgres warehouse connections (psycopg 3, pgvector types registered)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

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


@contextmanager
def scratch_database(admin_dsn: str, prefix: str = "scratch") -> Iterator[str]:
    """A throwaway database with pgvector on the server of `admin_dsn` (tests, benchmarks);
    yields its DSN and drops it afterwards, even when connections are still open."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("create extension if not exists vector")
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
