"""Language and near-duplicate detection for the deduplicated documents (between dbt layers).

Reads `intermediate.int_documents__deduplicated`, writes `intermediate.document_enrichment`:
one row per document with its language (langdetect, seeded), and, for a near-duplicate, the
canonical document it repeats with the estimated Jaccard similarity of their word 5-shingles.

Incremental: only documents that are new or whose `clean_hash` changed are read, language-
detected and MinHashed; every other document's signature comes from the table. Near-duplicate
status is then decided over all current documents (a new document can repeat an old one, and a
deleted canonical hands its role to the next copy), and only rows whose values changed are
written. A second run with nothing changed writes nothing.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import numpy as np
import psycopg
from datasketch import MinHashLSH

from twin.domain.text import (  # shared with the datasets stage; re-exported for callers
    NUM_PERM,
    detect_language,
    hashvalues_bytes,
    hashvalues_from_bytes,
    is_near_duplicate,
    minhash_of,
    shingles,  # noqa: F401
    signature_bytes,
)
from twin.parallel import CpuPool
from twin.settings import Settings
from twin.warehouse.manifest import DBT_PROJECT_DIR

log = logging.getLogger(__name__)

SOURCE = "intermediate.int_documents__deduplicated"
TABLE = "intermediate.document_enrichment"
# LSH retrieves candidates from here; the near-duplicate rules (twin.domain.text) decide.
CANDIDATE_THRESHOLD = 0.5
FETCH_BATCH = 500
ENRICHMENT_MACROS = DBT_PROJECT_DIR / "macros" / "enrichment.sql"
UPSERT = f"""insert into {TABLE} (document_id, clean_hash, language, language_confidence,
        near_duplicate_of, jaccard, shingle_count, minhash, computed_at)
    values (%s, %s, %s, %s, %s, %s, %s, %s, now())
    on conflict (document_id) do update set
        clean_hash = excluded.clean_hash, language = excluded.language,
        language_confidence = excluded.language_confidence,
        near_duplicate_of = excluded.near_duplicate_of,
        jaccard = excluded.jaccard, shingle_count = excluded.shingle_count,
        minhash = excluded.minhash, computed_at = excluded.computed_at"""


def enrichment_ddl() -> str:
    """The enrichment table's DDL, defined once: the body of dbt's `create_enrichment_table`
    macro (`dbt/macros/enrichment.sql`, run by dbt's on-run-start), which holds plain SQL."""
    text = ENRICHMENT_MACROS.read_text(encoding="utf-8")
    found = re.search(
        r"\{% macro create_enrichment_table\(\) -%\}(.*?)\{%- endmacro %\}", text, re.S
    )
    if not found or "{{" in found.group(1):
        raise RuntimeError(f"{ENRICHMENT_MACROS}: no plain-SQL create_enrichment_table macro")
    return found.group(1).strip()


@dataclass(frozen=True)
class Enrichment:
    """The enrichment of one document, as stored."""

    clean_hash: str
    language: str
    language_confidence: float
    near_duplicate_of: str | None
    jaccard: float | None
    shingle_count: int
    minhash: bytes


@dataclass(frozen=True)
class EnrichResult:
    """What one enrichment run did."""

    documents: int = 0
    analysed: int = 0
    inserted: int = 0
    updated: int = 0
    removed: int = 0
    near_duplicates: int = 0
    languages: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        """Rows written or removed."""
        return self.inserted + self.updated + self.removed

    def as_dict(self) -> dict:
        return {**self.__dict__, "languages": dict(self.languages)}


@dataclass(frozen=True)
class CurrentDocument:
    document_id: str
    clean_hash: str
    published_at: datetime | None


# text analysis ------------------------------------------------------------------------------
# near-duplicates ----------------------------------------------------------------------------
def canonical_order(docs: Iterable[CurrentDocument]) -> list[CurrentDocument]:
    """Earliest published first (undated last), ties by document id: who is canonical."""
    return sorted(
        docs,
        key=lambda d: (d.published_at is None, d.published_at or datetime.max, d.document_id),
    )


def lsh_bands(num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band) of datasketch's MinHashLSH at `CANDIDATE_THRESHOLD`."""
    lsh = MinHashLSH(threshold=CANDIDATE_THRESHOLD, num_perm=num_perm)
    return lsh.b, lsh.r


def band_candidates(matrix: np.ndarray, bands: int, rows: int) -> dict[int, set[int]]:
    """LSH candidates by row of `matrix` (one signature's hash values per row): for each row
    that agrees with another on every value of some band, the rows it agrees with on one (itself
    included), which is what a MinHashLSH query with these bands returns. Rows with no such
    partner are left out."""
    found: dict[int, set[int]] = {}
    for band in range(bands):
        part = np.ascontiguousarray(matrix[:, band * rows : (band + 1) * rows])
        keys = part.view(np.dtype((np.void, part.dtype.itemsize * rows))).ravel()
        _, bucket, counts = np.unique(keys, return_inverse=True, return_counts=True)
        bucket = bucket.ravel()
        shared = np.flatnonzero(counts[bucket] > 1)
        if not len(shared):
            continue
        shared = shared[np.argsort(bucket[shared], kind="stable")]
        for group in np.split(shared, np.flatnonzero(np.diff(bucket[shared])) + 1):
            members = set(group.tolist())
            for row in members:
                found.setdefault(row, set()).update(members)
    return found


def assign_near_duplicates(
    docs: Sequence[CurrentDocument],
    signatures: dict[str, np.ndarray],
    sizes: dict[str, int],
    num_perm: int = NUM_PERM,
) -> dict[str, tuple[str | None, float | None]]:
    """For each document: (canonical it nearly duplicates, estimated Jaccard) or (None, None).

    `signatures` holds each document's MinHash values. Documents are visited in canonical order;
    each is compared (through LSH candidates) with the canonical documents before it, so a copy
    always points at a canonical document.
    """
    ordered = canonical_order(docs)
    with_text = [d.document_id for d in ordered if sizes[d.document_id]]
    row = {doc_id: i for i, doc_id in enumerate(with_text)}  # rows follow the canonical order
    matrix = (
        np.stack([signatures[doc_id] for doc_id in with_text])
        if with_text
        else np.empty((0, num_perm), dtype=np.uint32)
    )
    candidates = band_candidates(matrix, *lsh_bands(num_perm))
    canonical: set[int] = set()
    result: dict[str, tuple[str | None, float | None]] = {}
    for d in ordered:
        doc_id = d.document_id
        best: tuple[int, float] | None = None
        i = row.get(doc_id)
        for cand in sorted(candidates.get(i, ())) if i is not None else ():
            if cand not in canonical:
                continue  # itself, a later document, or a copy of something else
            jac = float(np.count_nonzero(matrix[i] == matrix[cand])) / float(num_perm)
            if is_near_duplicate(jac, sizes[doc_id], sizes[with_text[cand]]) and (
                best is None or jac > best[1]
            ):
                best = (cand, jac)
        if best is None:
            if i is not None:
                canonical.add(i)
            result[doc_id] = (None, None)
        else:
            result[doc_id] = (with_text[best[0]], round(best[1], 4))
    return result


# the table ----------------------------------------------------------------------------------
def ensure_enrichment_table(conn: psycopg.Connection) -> None:
    """Create `intermediate.document_enrichment` if it is missing (idempotent)."""
    conn.execute(enrichment_ddl())


def current_documents(conn: psycopg.Connection) -> list[CurrentDocument]:
    """Every document of the deduplicated intermediate model."""
    try:
        rows = conn.execute(
            f"select document_id, clean_hash, published_at from {SOURCE}"
        ).fetchall()
    except psycopg.errors.UndefinedTable:
        raise RuntimeError(
            f"{SOURCE} does not exist: run the dbt staging and intermediate models first "
            "(`dbt build --select tag:staging tag:intermediate`)"
        ) from None
    return [CurrentDocument(*row) for row in rows]


def stored_enrichments(conn: psycopg.Connection) -> dict[str, Enrichment]:
    rows = conn.execute(
        f"""select document_id, clean_hash, language, language_confidence, near_duplicate_of,
                   jaccard, shingle_count, minhash
            from {TABLE}"""
    ).fetchall()
    return {row[0]: Enrichment(*row[1:7], bytes(row[7])) for row in rows}


def body_batches(conn: psycopg.Connection, ids: Sequence[str]) -> Iterator[list[tuple[str, str]]]:
    """(document_id, body) for the given documents, `FETCH_BATCH` at a time."""
    for start in range(0, len(ids), FETCH_BATCH):
        chunk = list(ids[start : start + FETCH_BATCH])
        yield conn.execute(
            f"select document_id, body from {SOURCE} where document_id = any(%s)", (chunk,)
        ).fetchall()


@dataclass(frozen=True)
class Analysis:
    """What is computed from a document's text: its signature (as stored), shingle count and
    language."""

    minhash: bytes
    shingle_count: int
    language: tuple[str, float]


def analyse(body: str, num_perm: int = NUM_PERM) -> Analysis:
    """The text analysis of one body (pure: runs in worker processes)."""
    signature, size = minhash_of(body, num_perm)
    return Analysis(signature_bytes(signature), size, detect_language(body))


def enrich_documents(conn: psycopg.Connection, *, num_perm: int = NUM_PERM) -> EnrichResult:
    """Bring `intermediate.document_enrichment` up to date with the deduplicated documents.

    Returns how many documents there are, how many were analysed (new or changed text), how many
    rows were inserted, updated and removed, how many documents are near-duplicates, and the
    language counts. Runs in one transaction; concurrent runs wait for each other.
    """
    began = time.monotonic()
    with conn.transaction():
        ensure_enrichment_table(conn)
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (TABLE,))
        docs = current_documents(conn)
        stored = stored_enrichments(conn)
        current_hash = {d.document_id: d.clean_hash for d in docs}

        signatures: dict[str, np.ndarray] = {}
        sizes: dict[str, int] = {}
        languages: dict[str, tuple[str, float]] = {}
        for doc_id, clean_hash in current_hash.items():
            known = stored.get(doc_id)
            sig = hashvalues_from_bytes(known.minhash, num_perm) if known else None
            if known and sig is not None and known.clean_hash == clean_hash:
                signatures[doc_id], sizes[doc_id] = sig, known.shingle_count
                languages[doc_id] = (known.language, known.language_confidence)
        stale = sorted(set(current_hash) - set(signatures))
        with CpuPool() as pool:
            for batch in body_batches(conn, stale):
                texts = [body for _, body in batch]
                for (doc_id, _), done in zip(
                    batch, pool.map(partial(analyse, num_perm=num_perm), texts), strict=True
                ):
                    signatures[doc_id] = hashvalues_from_bytes(done.minhash, num_perm)
                    sizes[doc_id], languages[doc_id] = done.shingle_count, done.language

        near = assign_near_duplicates(docs, signatures, sizes, num_perm)
        inserted = updated = 0
        writes = []
        for doc_id, clean_hash in current_hash.items():
            row = Enrichment(
                clean_hash,
                *languages[doc_id],
                *near[doc_id],
                sizes[doc_id],
                hashvalues_bytes(signatures[doc_id]),
            )
            before = stored.get(doc_id)
            if before == row:
                continue
            writes.append((doc_id, *row.__dict__.values()))
            if before is None:
                inserted += 1
            else:
                updated += 1
        with conn.cursor() as cursor:  # one pipelined batch, not a round trip per row
            cursor.executemany(UPSERT, writes)
        gone = sorted(set(stored) - set(current_hash))
        if gone:
            conn.execute(f"delete from {TABLE} where document_id = any(%s)", (gone,))

    result = EnrichResult(
        documents=len(docs),
        analysed=len(stale),
        inserted=inserted,
        updated=updated,
        removed=len(gone),
        near_duplicates=sum(1 for of, _ in near.values() if of),
        languages=dict(Counter(lang for lang, _ in languages.values())),
        seconds=round(time.monotonic() - began, 3),
    )
    log.info("enrichment: %s", result)
    return result


def run_enrichment(settings: Settings) -> dict:
    """Enrich with the configured warehouse (what the `twin_warehouse` DAG calls)."""
    from twin.store.warehouse import warehouse_connection

    with warehouse_connection(settings) as conn:
        return enrich_documents(conn).as_dict()
