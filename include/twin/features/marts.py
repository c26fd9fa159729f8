"""What the feature pipeline reads from the warehouse: `marts.documents`, and for repositories
their source files (`marts.document_files`), with the hashes that decide what to sync again."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from pydantic import ValidationError

from twin.features.chunk import MartDocument

MARTS_TABLE = "marts.documents"
FILES_TABLE = "marts.document_files"  # source files of repositories (dbt)


@dataclass(frozen=True)
class MartEntry:
    document_id: str
    clean_hash: str
    meta_hash: str
    author: str = ""
    platform: str = ""

    @property
    def write_order(self) -> tuple[str, str, str]:
        """Where the document's chunks go in a chunk table written in one pass: by author and
        platform, the columns of the searches' filters (see `twin.features.pipeline`)."""
        return (self.author, self.platform, self.document_id)


def require_marts(conn: psycopg.Connection) -> None:
    if conn.execute("select to_regclass(%s)", (MARTS_TABLE,)).fetchone()[0] is None:
        raise RuntimeError(
            f"{MARTS_TABLE} does not exist: build the warehouse marts first "
            "(the twin_warehouse DAG, or dbt build)"
        )


def meta_hash(
    author: str,
    platform: str,
    kind: str,
    title: str | None,
    url: str | None,
    published_at: datetime | None,
) -> str:
    """sha256 over the document metadata stored beside each chunk."""
    stamp = published_at.timestamp() if published_at else None
    blob = json.dumps([author, platform, kind, title, url, stamp], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def has_files(conn: psycopg.Connection) -> bool:
    return conn.execute("select to_regclass(%s)", (FILES_TABLE,)).fetchone()[0] is not None


def mart_entries(
    conn: psycopg.Connection, document_ids: Sequence[str] | None = None
) -> dict[str, MartEntry]:
    """Each mart document's content hash (its body and, for a repository, its files) and
    metadata hash: what decides whether it is synced again. `document_ids`: only those."""
    only = document_ids is not None
    files = (
        f"""(select document_id, md5(string_agg(path || ':' || content_hash, ',' order by path))
               from {FILES_TABLE} {"where document_id = any(%(ids)s)" if only else ""}
               group by document_id)"""
        if has_files(conn)
        else "(select null::text as document_id, null::text as md5 where false)"
    )
    rows = conn.execute(
        f"""select d.document_id, d.clean_hash, d.author, d.platform, d.document_kind, d.title,
                   d.url, d.published_at, f.md5
            from {MARTS_TABLE} d left join {files} f on f.document_id = d.document_id
            {"where d.document_id = any(%(ids)s)" if only else ""}""",
        {"ids": list(document_ids or [])},
    ).fetchall()
    return {
        r[0]: MartEntry(
            r[0],
            r[1] if r[8] is None else hashlib.sha256(f"{r[1]}:{r[8]}".encode()).hexdigest(),
            meta_hash(r[2], r[3], r[4], r[5], r[6], r[7]),
            r[2],
            r[3],
        )
        for r in rows
    }


def with_files(conn: psycopg.Connection, docs: list[MartDocument]) -> list[MartDocument]:
    """Repositories with their source files appended under `### path` headings, each fenced
    with its language, so the chunker splits code per function and class."""
    repos = [d.document_id for d in docs if d.document_kind == "repository"]
    if not repos or not has_files(conn):
        return docs
    files: dict[str, list[str]] = {}
    for document_id, path, language, content in conn.execute(
        f"select document_id, path, language, content from {FILES_TABLE}"
        " where document_id = any(%s) order by document_id, path",
        (repos,),
    ):
        runs = [len(m) for m in re.findall(r"`{3,}", content)]
        fence = "`" * max(3, max(runs, default=0) + 1)
        files.setdefault(document_id, []).append(
            f"### {path}\n\n{fence}{language}\n{content}\n{fence}"
        )
    return [
        d.model_copy(update={"body": "\n\n".join([d.body, *files[d.document_id]])})
        if d.document_id in files
        else d
        for d in docs
    ]


def mart_documents(
    conn: psycopg.Connection, document_ids: Sequence[str], failures: list[str]
) -> list[MartDocument]:
    """The valid mart rows among `document_ids`; each invalid one is named in `failures`."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"select * from {MARTS_TABLE} where document_id = any(%s) order by document_id",
            (list(document_ids),),
        )
        rows = cur.fetchall()
    docs: list[MartDocument] = []
    for row in rows:
        try:
            docs.append(MartDocument.model_validate(row))
        except ValidationError as exc:  # one bad row must not stop the others
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            failures.append(f"invalid mart row {row.get('document_id')!r}: {problems}")
    return with_files(conn, docs)
