"""The marts gate's PII check: every text cell scanned by the independent detector.

Named in a checkpoint as `"pii_scan": {"key": "document_id", "columns": ["title", "body"]}`, or
as a list of such scans; a scan of another table than the gate's names it (`"table"`, optionally
`"schema"`) and may key its rows by several columns (`"key": ["document_id", "path"]`). A column
fails when any row holds personal data or a secret by `twin.quality.pii_detect`; the failure names
the kinds, how many rows and which keys, never the values. A column of another table is reported
as `table.column`. A table that cannot be read is an error (RuntimeError naming it), not a pass.

The scan is incremental: the digest of every cell the detector found clean is kept in
`quality.pii_clean_cells` (created with the quality schema, `results.ensure_quality_schema`,
before a gate runs) under the detector's fingerprint (`pii_detect.fingerprint`), and a run
reads only the rows with a cell whose digest is not there, so a run after a 1 % change scans 1 %
of the rows. Cells that hold PII are never kept, so they fail every run until they are fixed; a
new detector (its code or a library's version) rescans everything; digests no longer in the
table are dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from twin.parallel import CpuPool
from twin.quality.pii_detect import find_pii, fingerprint, kinds

EXPECTATION = "independent_pii_detector"
KEYS_SHOWN = 10
INSERT_BATCH = 1000
SCAN_BATCH = 2000  # rows read and scanned at a time (on every core: `twin.parallel.CpuPool`)

log = logging.getLogger("twin.quality")


@dataclass(frozen=True)
class PiiColumnFailure:
    """Rows of one column in which the detector found personal data."""

    column: str
    rows: int
    kinds: dict[str, int]
    keys: list[str]

    @property
    def detail(self) -> str:
        found = ", ".join(f"{kind} {n}" for kind, n in self.kinds.items())
        shown = ", ".join(self.keys[:KEYS_SHOWN]) + (" ..." if len(self.keys) > KEYS_SHOWN else "")
        return (
            f"personal data survived redaction by the independent detector (phonenumbers, "
            f"detect-secrets, python-stdnum, email-validator): {found}; rows {shown}"
        )


def pii_scans(spec: dict | list | None) -> list[dict[str, Any]]:
    """The scans a checkpoint's `pii_scan` names (one dict or a list of them)."""
    if not spec:
        return []
    return [spec] if isinstance(spec, dict) else list(spec)


def scanned_columns(spec: dict | list | None) -> int:
    """How many columns the scans check (each counts as one evaluated expectation)."""
    return sum(len(scan["columns"]) for scan in pii_scans(spec))


def scan_for_pii(
    conn: psycopg.Connection, schema: str, table: str, spec: dict | list | None
) -> list[PiiColumnFailure]:
    """One failure per scanned column that holds PII (none when `spec` is None)."""
    failures: list[PiiColumnFailure] = []
    for scan in pii_scans(spec):
        target = (scan.get("schema", schema), scan.get("table", table))
        prefix = "" if target == (schema, table) else f"{target[1]}."
        failures += [
            PiiColumnFailure(prefix + f.column, f.rows, f.kinds, f.keys)
            for f in _scan_table(conn, *target, scan)
        ]
    return failures


def _scan_table(
    conn: psycopg.Connection, schema: str, table: str, scan: dict[str, Any]
) -> list[PiiColumnFailure]:
    keys = [scan["key"]] if isinstance(scan["key"], str) else list(scan["key"])
    columns = list(scan["columns"])
    detector = fingerprint()
    scopes = [f"{schema}.{table}.{column}" for column in columns]
    digests = [_digest(column) for column in columns]
    unscanned = sql.SQL(" or ").join(
        sql.SQL(
            "not exists (select 1 from quality.pii_clean_cells c where c.scope = {scope}"
            " and c.detector = {detector} and c.digest = {digest})"
        ).format(scope=sql.Literal(scope), detector=sql.Literal(detector), digest=digest)
        for scope, digest in zip(scopes, digests, strict=True)
    )
    query = sql.SQL(
        "select {keys}, {columns}, {digests} from {schema}.{table} t where {unscanned}"
        " order by {keys}"
    ).format(
        keys=sql.SQL(", ").join(sql.Identifier(k) for k in keys),
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        digests=sql.SQL(", ").join(digests),
        schema=sql.Identifier(schema),
        table=sql.Identifier(table),
        unscanned=unscanned,
    )
    found: dict[str, tuple[dict[str, int], list[str]]] = {c: ({}, []) for c in columns}
    clean: set[tuple[str, str]] = set()
    rows_read = 0
    try:
        with conn.cursor(name="pii_scan") as cursor, CpuPool() as pool:
            cursor.execute(query)
            width = len(keys) + len(columns)
            while batch := cursor.fetchmany(SCAN_BATCH):
                rows_read += len(batch)
                texts = [text or "" for row in batch for text in row[len(keys) : width]]
                findings = iter(pool.map(find_pii, texts))
                for row in batch:
                    key = ":".join(str(value) for value in row[: len(keys)])
                    for column, scope, digest in zip(columns, scopes, row[width:], strict=True):
                        cell = next(findings)
                        if not cell:
                            clean.add((scope, digest))
                            continue
                        counts, rows = found[column]
                        for kind, n in kinds(cell).items():
                            counts[kind] = counts.get(kind, 0) + n
                        rows.append(key)
    except psycopg.errors.UndefinedTable as exc:
        conn.rollback()
        raise RuntimeError(
            f"PII scan cannot read {schema}.{table}: {str(exc).splitlines()[0]}"
        ) from None
    _remember_clean(conn, detector, sorted(clean))
    for scope, column in zip(scopes, columns, strict=True):
        _forget_gone(conn, scope, detector, schema, table, column)
    conn.commit()
    log.info(
        "PII scan of %s.%s: %d rows new or changed since the last scan", schema, table, rows_read
    )
    return [
        PiiColumnFailure(column, len(rows), dict(sorted(counts.items())), rows)
        for column, (counts, rows) in found.items()
        if rows
    ]


def _digest(column: str) -> sql.Composable:
    return sql.SQL("md5(coalesce(t.{column}, ''))").format(column=sql.Identifier(column))


def _remember_clean(conn: psycopg.Connection, detector: str, cells: list[tuple[str, str]]) -> None:
    with conn.cursor() as cursor:
        for start in range(0, len(cells), INSERT_BATCH):
            cursor.executemany(
                """insert into quality.pii_clean_cells (scope, detector, digest)
                   values (%s, %s, %s) on conflict do nothing""",
                [
                    (scope, detector, digest)
                    for scope, digest in cells[start : start + INSERT_BATCH]
                ],
            )


def _forget_gone(
    conn: psycopg.Connection, scope: str, detector: str, schema: str, table: str, column: str
) -> None:
    """Drop the scope's digests of an older detector or of text no longer in the column."""
    conn.execute(
        sql.SQL(
            "delete from quality.pii_clean_cells where scope = {scope} and (detector <> {detector}"
            " or digest not in (select {digest} from {schema}.{table} t))"
        ).format(
            scope=sql.Literal(scope),
            detector=sql.Literal(detector),
            digest=_digest(column),
            schema=sql.Identifier(schema),
            table=sql.Identifier(table),
        )
    )
