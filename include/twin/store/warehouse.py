"""Postgres warehouse connections (psycopg 3, pgvector types registered) and the one DSN parser."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlencode

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

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
    dsn = dsn_url({**parse_dsn(admin_dsn), "dbname": name})
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("create extension if not exists vector")
        yield dsn
    finally:
        _drop_database(admin_dsn, name)


@retry(
    retry=retry_if_exception_type(psycopg.errors.InsufficientPrivilege),
    wait=wait_fixed(1),
    stop=stop_after_delay(60),
    reraise=True,
)
def _drop_database(admin_dsn: str, name: str) -> None:
    """Drop `name`, closing its connections. A role that is no superuser may not close another
    role's backend (an autovacuum worker visiting a freshly loaded database runs as the bootstrap
    superuser): Postgres refuses the drop while one is connected, so it is tried again a second
    later, for up to a minute."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


# --- DSNs -------------------------------------------------------------------------------------

POSTGRES_SCHEMES = ("postgresql", "postgres")


def parse_dsn(dsn: str) -> dict[str, str]:
    """libpq's reading of a Postgres DSN (URL, also `postgresql+driver://`, or `key=value`):
    `host`, `port`, `user`, `password`, `dbname` and any other parameter, as given.

    A Unix-socket DSN (`postgresql://user@/db?host=/socket/dir`) gives the directory as `host`.
    ValueError names what is wrong (never the password).
    """
    scheme, sep, rest = dsn.partition("://")
    if sep:
        base = scheme.split("+", 1)[0]
        if base not in POSTGRES_SCHEMES:
            raise ValueError(f"warehouse DSN must be a postgresql:// URL, got scheme {scheme!r}")
        dsn = f"{base}://{rest}"
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        # libpq may quote the DSN back: never its credentials
        reason = re.sub(r"//[^@\s\"]*@", "//…@", str(exc).strip().replace(dsn, "<the DSN>"))
        raise ValueError(f"warehouse DSN is not a valid Postgres DSN: {reason}") from None
    return {k: str(v) for k, v in params.items() if v is not None}


def dsn_url(params: dict[str, str], *, driver: str | None = None, socket_host: str = "") -> str:
    """The `postgresql[+driver]://` URL of `parse_dsn` parameters. A socket directory goes into
    the query (`?host=/dir`); `socket_host` is then put in the URL's host for tools that insist
    on one (GX: `localhost`), while libpq still connects through the socket."""
    rest = dict(params)
    host, port = rest.pop("host", ""), rest.pop("port", "")
    user, password = rest.pop("user", ""), rest.pop("password", "")
    dbname = rest.pop("dbname", "")
    query: dict[str, str] = {}
    if host.startswith("/"):
        query["host"], host = host, socket_host
    query.update(rest)
    auth = ""
    if user:
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "") + "@"
    netloc = f"{auth}{host}" + (f":{port}" if port else "")
    scheme = "postgresql" + (f"+{driver}" if driver else "")
    tail = f"?{urlencode(query, safe='/')}" if query else ""
    return f"{scheme}://{netloc}/{quote(dbname, safe='')}{tail}"


def require_author_documents(conn: psycopg.Connection, author: str, stage: str) -> int:
    """How many documents of `author` `marts.documents` holds; `NoAuthorDocuments` naming the
    stage and the author when none (or no marts yet)."""
    from twin.errors import NoAuthorDocuments

    if conn.execute("select to_regclass('marts.documents')").fetchone()[0] is None:
        raise NoAuthorDocuments(stage, author, "documents: the warehouse has no marts yet")
    count = conn.execute(
        "select count(*) from marts.documents where author = %s", (author,)
    ).fetchone()[0]
    if not count:
        raise NoAuthorDocuments(stage, author, "documents in marts.documents")
    return int(count)
