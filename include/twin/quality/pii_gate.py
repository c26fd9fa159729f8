"""The marts gate's PII check: every text cell scanned by the independent detector.

Named in a checkpoint as `"pii_scan": {"key": "document_id", "columns": ["title", "body"]}`, or
as a list of such scans; a scan of another table than the gate's names it (`"table"`, optionally
`"schema"`) and may key its rows by several columns (`"key": ["document_id", "path"]`). A column
fails when any row holds personal data or a secret by `twin.quality.pii_detect`; the failure names
the kinds, how many rows and which keys, never the values. A column of another table is reported
as `table.column`. A table that cannot be read is an error (RuntimeError naming it), not a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from twin.quality.pii_detect import find_pii, kinds

EXPECTATION = "independent_pii_detector"
KEYS_SHOWN = 10


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
    query = sql.SQL("select {keys}, {columns} from {schema}.{table} order by {keys}").format(
        keys=sql.SQL(", ").join(sql.Identifier(k) for k in keys),
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        schema=sql.Identifier(schema),
        table=sql.Identifier(table),
    )
    found: dict[str, tuple[dict[str, int], list[str]]] = {c: ({}, []) for c in columns}
    try:
        with conn.cursor(name="pii_scan") as cursor:
            cursor.execute(query)
            for row in cursor:
                key = ":".join(str(value) for value in row[: len(keys)])
                for column, text in zip(columns, row[len(keys) :], strict=True):
                    findings = find_pii(text or "")
                    if findings:
                        counts, rows = found[column]
                        for kind, n in kinds(findings).items():
                            counts[kind] = counts.get(kind, 0) + n
                        rows.append(key)
    except psycopg.errors.UndefinedTable as exc:
        conn.rollback()
        raise RuntimeError(
            f"PII scan cannot read {schema}.{table}: {str(exc).splitlines()[0]}"
        ) from None
    conn.commit()
    return [
        PiiColumnFailure(column, len(rows), dict(sorted(counts.items())), rows)
        for column, (counts, rows) in found.items()
        if rows
    ]
