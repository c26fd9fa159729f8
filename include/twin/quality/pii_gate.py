"""The marts gate's PII check: every text cell scanned by the independent detector.

Named in a checkpoint as `"pii_scan": {"key": "document_id", "columns": ["title", "body"]}`.
A column fails when any row holds personal data or a secret by `twin.quality.pii_detect`; the
failure names the kinds, how many rows and which keys, never the values.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def scan_for_pii(
    conn: psycopg.Connection, schema: str, table: str, spec: dict | None
) -> list[PiiColumnFailure]:
    """One failure per scanned column that holds PII (none when `spec` is None)."""
    if not spec:
        return []
    key, columns = spec["key"], list(spec["columns"])
    query = sql.SQL("select {key}, {columns} from {schema}.{table} order by {key}").format(
        key=sql.Identifier(key),
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        schema=sql.Identifier(schema),
        table=sql.Identifier(table),
    )
    found: dict[str, tuple[dict[str, int], list[str]]] = {c: ({}, []) for c in columns}
    with conn.cursor(name="pii_scan") as cursor:
        cursor.execute(query)
        for row in cursor:
            for column, text in zip(columns, row[1:], strict=True):
                findings = find_pii(text or "")
                if findings:
                    counts, keys = found[column]
                    for kind, n in kinds(findings).items():
                        counts[kind] = counts.get(kind, 0) + n
                    keys.append(str(row[0]))
    conn.commit()
    return [
        PiiColumnFailure(column, len(keys), dict(sorted(counts.items())), keys)
        for column, (counts, keys) in found.items()
        if keys
    ]
