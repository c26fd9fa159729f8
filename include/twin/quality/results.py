"""Where gate runs are kept: `quality.validation_results` rows and Data Docs in the object store."""

from __future__ import annotations

import json
import logging
import mimetypes
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from twin.quality.verdict import GateResult
from twin.settings import Settings
from twin.store.object_store import object_store

if TYPE_CHECKING:
    from great_expectations.data_context import EphemeralDataContext

log = logging.getLogger("twin.quality")

DATA_DOCS_PREFIX = "quality/data_docs"
DATA_DOCS_SITE = "twin_quality"

QUALITY_DDL = """
create schema if not exists quality;
create table if not exists quality.validation_results (
    id            bigint generated always as identity primary key,
    gate          text not null,
    run_id        text not null unique,
    validated_at  timestamptz not null,
    success       boolean not null,
    evaluated     integer not null,
    failed_count  integer not null,
    row_count     bigint not null,
    failures      jsonb not null,
    result        jsonb not null,
    data_docs_key text
);
create index if not exists validation_results_gate_time
    on quality.validation_results (gate, validated_at desc);
-- texts the PII detector found clean, by md5 (twin.quality.pii_gate: the incremental scan)
create table if not exists quality.pii_clean_cells (
    scope    text not null,  -- schema.table.column
    detector text not null,  -- twin.quality.pii_detect.fingerprint()
    digest   text not null,  -- md5 of the cell's text
    primary key (scope, detector, digest)
);
"""


def publish_data_docs(
    context: EphemeralDataContext,
    docs_dir: Path,
    settings: Settings,
    gate: str,
    run_id: str,
) -> str | None:
    """Render this run's Data Docs and upload them; the key of their index.html.

    Returns None (and logs why) when rendering or uploading fails: the validation verdict and its
    warehouse row stand without the HTML.
    """
    prefix = f"{DATA_DOCS_PREFIX}/{gate}/{run_id}"
    try:
        # The context is this run's alone, so a full build renders exactly this result, the
        # suite page and an index.
        context.build_data_docs(site_names=[DATA_DOCS_SITE])
        store = object_store(settings)
        for path in site_files(docs_dir):
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            key = f"{prefix}/{path.relative_to(docs_dir).as_posix()}"
            store.put(key, path.read_bytes(), content_type)
    except Exception:  # rendering or the object store: keep the verdict, say what was lost
        log.warning("quality gate %s run %s: Data Docs not published", gate, run_id, exc_info=True)
        return None
    return f"{prefix}/index.html"


def site_files(docs_dir: Path) -> list[Path]:
    """The site's HTML pages and the static files they link to.

    GX copies about 4 MB of fonts and animations into every site; the pages reference only a
    few of them (the rest load from CDNs), so only those are kept per run.
    """
    pages = sorted(docs_dir.rglob("*.html"))
    linked: set[Path] = set()
    for page in pages:
        for ref in re.findall(r"""(?:\.\./)*static/[^"'()\s>]+""", page.read_text("utf-8")):
            target = docs_dir / re.sub(r"^(\.\./)+", "", ref)
            if target.is_file():
                linked.add(target)
    return pages + sorted(linked)


def connect(dsn: str) -> psycopg.Connection:
    # A plain connection: the gates need no pgvector types, and scratch warehouses lack them.
    return psycopg.connect(dsn, connect_timeout=10, application_name="twinops-quality")


def ensure_quality_schema(conn: psycopg.Connection) -> None:
    """Create `quality.validation_results` and `quality.pii_clean_cells` if missing
    (idempotent)."""
    try:
        conn.execute(QUALITY_DDL)
    except psycopg.errors.UniqueViolation:
        # Two first runs raced on `create ... if not exists`; the other one created it.
        conn.rollback()
        conn.execute(QUALITY_DDL)
    conn.commit()


def previous_row_count(conn: psycopg.Connection, gate: str) -> int | None:
    """The row count of the gate's last successful run; None when it never passed."""
    row = conn.execute(
        """select row_count from quality.validation_results
           where gate = %s and success order by validated_at desc, id desc limit 1""",
        (gate,),
    ).fetchone()
    return None if row is None else int(row[0])


def record_result(conn: psycopg.Connection, result: GateResult, raw: dict[str, Any]) -> None:
    """Insert one run's row into `quality.validation_results`."""
    conn.execute(
        """insert into quality.validation_results
           (gate, run_id, validated_at, success, evaluated, failed_count, row_count, failures,
            result, data_docs_key)
           values (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s)""",
        (
            result.gate,
            result.run_id,
            result.validated_at,
            result.success,
            result.evaluated,
            len(result.failed),
            result.row_count,
            json.dumps([asdict(f) for f in result.failed]),
            json.dumps(raw, default=str),
            result.data_docs_key,
        ),
    )
    conn.commit()
