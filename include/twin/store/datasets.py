"""Dataset versions, their samples and the generation cache in the warehouse's `ml` schema.

- `ml.samples`: content-addressed samples (one row per `sample_id`, written once, shared by every
  version that holds it), with their source document, section, generator and kind;
- `ml.dataset_versions`: one row per version (its identity is the content hash of its samples plus
  the generator configuration), with counts, drop reasons, source documents and the export URI;
- `ml.version_samples`: which samples a version holds, and in which split;
- `ml.generation_cache`: what a generator produced for one document, keyed by the document's
  `clean_hash` and the generator configuration digest, so only new or changed documents cost a
  generator call.

Writing a version that already exists writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from twin.domain.samples import (
    DatasetSnapshot,
    DatasetVersion,
    InstructionSample,
    PreferenceSample,
    SampleKind,
    Split,
)
from twin.settings import Settings

ML_SCHEMA_DDL = """
create schema if not exists ml;
create table if not exists ml.samples (
    sample_id      text primary key,
    kind           text not null check (kind in ('instruction', 'preference')),
    document_id    text not null,
    platform       text not null,
    document_kind  text not null,
    section        text not null default '',
    prompt         text not null,
    answer         text not null,
    rejected       text,
    generator      text not null,
    created_at     timestamptz not null default now()
);
create index if not exists samples_document_idx on ml.samples (document_id);
create table if not exists ml.dataset_versions (
    version              text primary key,
    author               text not null,
    created_at           timestamptz not null default now(),
    generator_config     jsonb not null,
    counts               jsonb not null,
    drop_reasons         jsonb not null,
    source_document_ids  text[] not null,
    export_uri           text,
    mlflow_run_id        text
);
create index if not exists dataset_versions_author_idx on ml.dataset_versions (author, created_at);
create table if not exists ml.version_samples (
    version    text not null references ml.dataset_versions (version) on delete cascade,
    sample_id  text not null references ml.samples (sample_id),
    split      text not null check (split in ('train', 'test')),
    primary key (version, sample_id)
);
create index if not exists version_samples_sample_idx on ml.version_samples (sample_id);
create table if not exists ml.generation_cache (
    clean_hash        text not null,
    generator_digest  text not null,
    document_id       text not null,
    generator         text not null,
    payload           jsonb not null,
    created_at        timestamptz not null default now(),
    primary key (clean_hash, generator_digest)
);
"""


@dataclass(frozen=True)
class WriteResult:
    """What writing a version did: `created` is False (and every count 0) when it existed."""

    version: str
    created: bool
    samples_written: int
    memberships_written: int

    @property
    def rows_written(self) -> int:
        return self.samples_written + self.memberships_written + int(self.created)


def ensure_ml_schema(dsn: str) -> None:
    """Create the `ml` schema and its tables when missing (idempotent)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        _ensure(conn)


def _ensure(conn: psycopg.Connection) -> None:
    exists = conn.execute("select to_regclass('ml.generation_cache')").fetchone()
    if exists is None or exists[0] is None:
        # One creator at a time: concurrent `create ... if not exists` can still collide.
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext('twin.ml.schema'))")
            conn.execute(ML_SCHEMA_DDL)


def _connect(settings: Settings) -> psycopg.Connection:
    conn = psycopg.connect(
        settings.require("warehouse_dsn"),
        connect_timeout=max(1, int(settings.service_timeout_s)),
        application_name="twinops-datasets",
    )
    conn.autocommit = True
    _ensure(conn)
    conn.autocommit = False
    return conn


# --- readers ----------------------------------------------------------------------------------

VERSION_COLUMNS = (
    "version, author, created_at, generator_config, counts, drop_reasons, source_document_ids, "
    "export_uri"
)


def _version(row: Sequence[Any]) -> DatasetVersion:
    return DatasetVersion(
        version=row[0],
        author=row[1],
        created_at=row[2],
        generator_config=row[3],
        counts=row[4],
        drop_reasons=row[5],
        source_document_ids=tuple(row[6]),
        export_uri=row[7],
    )


def list_dataset_versions(settings: Settings, author: str | None = None) -> list[DatasetVersion]:
    """Every dataset version, newest first (of one author when given)."""
    with _connect(settings) as conn:
        rows = conn.execute(
            f"""select {VERSION_COLUMNS} from ml.dataset_versions
                where %(author)s::text is null or author = %(author)s
                order by created_at desc, version""",
            {"author": author},
        ).fetchall()
    return [_version(r) for r in rows]


def latest_dataset_version(settings: Settings, author: str | None = None) -> DatasetVersion | None:
    """The newest dataset version (of one author when given), or None when there is none."""
    versions = list_dataset_versions(settings, author)
    return versions[0] if versions else None


def find_dataset_version(settings: Settings, version: str) -> DatasetVersion | None:
    """A version by its full id or an unambiguous prefix (at least 8 characters)."""
    with _connect(settings) as conn:
        return _find(conn, version)


def _find(conn: psycopg.Connection, version: str) -> DatasetVersion | None:
    version = version.strip()
    if len(version) < 8:
        raise LookupError(f"dataset version {version!r}: give at least 8 characters of its id")
    rows = conn.execute(
        f"select {VERSION_COLUMNS} from ml.dataset_versions where version like %s limit 2",
        (version.replace("%", "").replace("_", "") + "%",),
    ).fetchall()
    if len(rows) > 1:
        raise LookupError(f"dataset version {version!r} is ambiguous: give more characters")
    return _version(rows[0]) if rows else None


def load_dataset_snapshot(settings: Settings, version: str) -> DatasetSnapshot:
    """A version with all its samples; LookupError naming the version when there is none."""
    with _connect(settings) as conn:
        found = _find(conn, version)
        if found is None:
            raise LookupError(
                f"dataset version {version!r} does not exist in ml.dataset_versions "
                "(run the twin_datasets DAG, or `twin datasets list` to see the versions)"
            )
        rows = conn.execute(
            """select s.sample_id, s.kind, s.document_id, s.platform, s.document_kind,
                      s.section, s.prompt, s.answer, s.rejected, s.generator, v.split
               from ml.version_samples v join ml.samples s using (sample_id)
               where v.version = %s order by s.kind, v.split, s.document_id, s.sample_id""",
            (found.version,),
        ).fetchall()
    instructions: list[InstructionSample] = []
    preferences: list[PreferenceSample] = []
    for sid, kind, doc, platform, dkind, section, prompt, answer, rejected, gen, split in rows:
        common = {"sample_id": sid, "document_id": doc, "platform": platform}
        common |= {"document_kind": dkind, "split": Split(split), "generator": gen}
        if kind == SampleKind.INSTRUCTION:
            instructions.append(
                InstructionSample(**common, section=section, instruction=prompt, answer=answer)
            )
        else:
            preferences.append(
                PreferenceSample(**common, prompt=prompt, chosen=answer, rejected=rejected or "")
            )
    return DatasetSnapshot(
        version=found, instructions=tuple(instructions), preferences=tuple(preferences)
    )


def version_sample_ids(settings: Settings, version: str) -> dict[str, str]:
    """sample_id → split of one version (empty when the version does not exist)."""
    with _connect(settings) as conn:
        rows = conn.execute(
            "select sample_id, split from ml.version_samples where version = %s", (version,)
        ).fetchall()
    return dict(rows)


# --- writers ----------------------------------------------------------------------------------


def write_dataset_version(
    settings: Settings,
    version: DatasetVersion,
    instructions: Iterable[InstructionSample],
    preferences: Iterable[PreferenceSample],
) -> WriteResult:
    """Store a version and its samples in one transaction; nothing at all when it exists.

    Samples other versions already hold are not written again, only their membership."""
    instructions, preferences = list(instructions), list(preferences)
    with _connect(settings) as conn, conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (version.version,))
        if conn.execute(
            "select 1 from ml.dataset_versions where version = %s", (version.version,)
        ).fetchone():
            return WriteResult(version.version, False, 0, 0)
        conn.execute(
            """insert into ml.dataset_versions (version, author, created_at, generator_config,
                   counts, drop_reasons, source_document_ids, export_uri)
               values (%s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                version.version,
                version.author,
                version.created_at,
                Jsonb(version.generator_config),
                Jsonb(version.counts),
                Jsonb(version.drop_reasons),
                list(version.source_document_ids),
                version.export_uri,
            ),
        )
        rows = [_sample_row(s) for s in instructions] + [_sample_row(s) for s in preferences]
        written = 0
        with conn.cursor() as cur:
            for row in rows:
                cur.execute(
                    """insert into ml.samples (sample_id, kind, document_id, platform,
                           document_kind, section, prompt, answer, rejected, generator)
                       values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                       on conflict (sample_id) do nothing""",
                    row,
                )
                written += cur.rowcount
            cur.executemany(
                "insert into ml.version_samples (version, sample_id, split) values (%s, %s, %s)",
                [(version.version, s.sample_id, s.split.value) for s in instructions + preferences],
            )
    return WriteResult(version.version, True, written, len(rows))


def _sample_row(sample: InstructionSample | PreferenceSample) -> tuple:
    if isinstance(sample, InstructionSample):
        kind, section, prompt, answer, rejected = (
            SampleKind.INSTRUCTION.value,
            sample.section,
            sample.instruction,
            sample.answer,
            None,
        )
    else:
        kind, section, prompt, answer, rejected = (
            SampleKind.PREFERENCE.value,
            "",
            sample.prompt,
            sample.chosen,
            sample.rejected,
        )
    return (
        sample.sample_id,
        kind,
        sample.document_id,
        sample.platform,
        sample.document_kind,
        section,
        prompt,
        answer,
        rejected,
        sample.generator,
    )


def set_version_lineage(
    settings: Settings, version: str, *, export_uri: str | None, mlflow_run_id: str | None
) -> None:
    """Record where a version was exported and the MLflow run that logged it."""
    with _connect(settings) as conn, conn.transaction():
        conn.execute(
            """update ml.dataset_versions
               set export_uri = coalesce(%s, export_uri),
                   mlflow_run_id = coalesce(%s, mlflow_run_id)
               where version = %s""",
            (export_uri, mlflow_run_id, version),
        )


def version_mlflow_run(settings: Settings, version: str) -> str | None:
    """The MLflow run that logged a version as a dataset, if any."""
    with _connect(settings) as conn:
        row = conn.execute(
            "select mlflow_run_id from ml.dataset_versions where version = %s", (version,)
        ).fetchone()
    return row[0] if row else None


# --- generation cache -------------------------------------------------------------------------


def cached_generations(
    settings: Settings, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """(clean_hash, generator_digest) → stored payload, for the keys the cache holds."""
    keys = list(keys)
    if not keys:
        return {}
    with _connect(settings) as conn:
        rows = conn.execute(
            """select c.clean_hash, c.generator_digest, c.payload
               from ml.generation_cache c
               join unnest(%s::text[], %s::text[]) as k(clean_hash, generator_digest)
                 using (clean_hash, generator_digest)""",
            ([k[0] for k in keys], [k[1] for k in keys]),
        ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def store_generations(
    settings: Settings, entries: Iterable[tuple[str, str, str, str, dict[str, Any]]]
) -> int:
    """Cache (clean_hash, generator_digest, document_id, generator, payload) rows, merging a
    payload's keys into what the entry holds; how many rows were written."""
    entries = list(entries)
    if not entries:
        return 0
    written = 0
    with _connect(settings) as conn, conn.transaction(), conn.cursor() as cur:
        for clean_hash, digest, document_id, generator, payload in entries:
            cur.execute(
                """insert into ml.generation_cache
                       (clean_hash, generator_digest, document_id, generator, payload)
                   values (%s, %s, %s, %s, %s)
                   on conflict (clean_hash, generator_digest) do update
                   set payload = ml.generation_cache.payload || excluded.payload
                   where not ml.generation_cache.payload @> excluded.payload""",
                (clean_hash, digest, document_id, generator, Jsonb(payload)),
            )
            written += cur.rowcount
    return written


def version_summary(settings: Settings, version: str) -> dict[str, Any]:
    """Counts per kind/split/platform of a version, and its MLflow run."""
    with _connect(settings) as conn:
        rows = conn.execute(
            """select s.kind, v.split, s.platform, count(*)
               from ml.version_samples v join ml.samples s using (sample_id)
               where v.version = %s group by 1, 2, 3 order by 1, 2, 3""",
            (version,),
        ).fetchall()
        run = conn.execute(
            "select mlflow_run_id from ml.dataset_versions where version = %s", (version,)
        ).fetchone()
    return {
        "by_kind_split_platform": [
            {"kind": k, "split": s, "platform": p, "samples": n} for k, s, p, n in rows
        ],
        "mlflow_run_id": run[0] if run else None,
    }


def dumps(value: Any) -> str:
    """JSON for logs and exports (dates as ISO strings)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
