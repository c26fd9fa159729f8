"""The raw document store in MongoDB: `authors`, `documents`, `crawl_runs`, `http_validators`.

Writes are bulk upserts keyed on the canonical URL: a re-crawl of unchanged content writes
nothing, a changed document is updated once (its version bumped), a new one inserted. Plain
pymongo, so it runs unchanged on real MongoDB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.database import Database

from twin.domain.documents import RawDocument
from twin.store.mongo import find_in

# Set by the MongoDB server on every document write (`$currentDate`): the extract-load orders
# on it, never on a writer's clock, which may be skewed or taken long before the write commits.
STORED_AT = "stored_at"


def document_id(url: str) -> str:
    """A stable id derived from the canonical URL (the same in every store)."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class UpsertCounts:
    """What a bulk upsert did."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0


class RawDocumentStore:
    """Raw documents, authors, HTTP validators and crawl runs in the `twin` database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.documents = db["documents"]
        self.authors = db["authors"]
        self.crawl_runs = db["crawl_runs"]
        self.validators = db["http_validators"]

    def ensure_indexes(self) -> None:
        """Create the indexes the store relies on (idempotent)."""
        self.documents.create_index([("url", ASCENDING)], unique=True, name="url_unique")
        self.documents.create_index([("author", ASCENDING), ("platform", ASCENDING)])
        self.documents.create_index([("last_changed", ASCENDING)], name="last_changed")
        self.documents.create_index([(STORED_AT, ASCENDING), ("_id", ASCENDING)], name=STORED_AT)
        self.authors.create_index([("name", ASCENDING)], unique=True, name="name_unique")
        self.crawl_runs.create_index([("started_at", DESCENDING)])
        self.validators.create_index([("url", ASCENDING)], unique=True, name="url_unique")

    # documents -----------------------------------------------------------------------------
    def upsert(self, docs: Iterable[RawDocument], *, now: datetime | None = None) -> UpsertCounts:
        """Insert new documents, update changed ones, leave unchanged ones untouched."""
        latest = {doc.url: doc for doc in docs}  # a URL twice in one batch: the last one wins
        if not latest:
            return UpsertCounts()
        now = now or datetime.now(UTC)
        known = {
            d["url"]: d
            for d in find_in(
                self.documents, "url", latest, {"url": 1, "content_hash": 1, "deleted_at": 1}
            )
        }
        ops: list[UpdateOne] = []
        unchanged = 0
        for url, doc in latest.items():
            body = document_body(doc)
            before = known.get(url)
            if before is None:
                ops.append(
                    UpdateOne(
                        {"url": url},
                        {
                            "$setOnInsert": {
                                **body,
                                "_id": document_id(url),
                                "version": 1,
                                "first_seen": now,
                                "last_changed": now,
                                "fetched_at": now,
                                "deleted_at": None,
                            },
                            "$currentDate": {STORED_AT: True},
                        },
                        upsert=True,
                    )
                )
            elif before["content_hash"] != doc.content_hash or before.get("deleted_at"):
                # Guarded on the hash we read: a concurrent writer's newer change is not undone.
                ops.append(
                    UpdateOne(
                        {"url": url, "content_hash": before["content_hash"]},
                        {
                            "$set": {
                                **body,
                                "last_changed": now,
                                "fetched_at": now,
                                "deleted_at": None,
                            },
                            "$inc": {"version": 1},
                            "$currentDate": {STORED_AT: True},
                        },
                    )
                )
            else:
                unchanged += 1
        if not ops:
            return UpsertCounts(unchanged=unchanged)
        result = self.documents.bulk_write(ops, ordered=False)
        return UpsertCounts(result.upserted_count, result.modified_count, unchanged)

    def mark_missing(self, source_url: str, seen: set[str], *, now: datetime | None = None) -> int:
        """Mark documents a complete listing of `source_url` no longer shows; return how many."""
        now = now or datetime.now(UTC)
        result = self.documents.update_many(
            {"source_url": source_url, "url": {"$nin": sorted(seen)}, "deleted_at": None},
            {
                "$set": {"deleted_at": now, "last_changed": now},
                "$inc": {"version": 1},
                "$currentDate": {STORED_AT: True},
            },
        )
        return result.modified_count

    def count(self, **filters: object) -> int:
        return self.documents.count_documents(dict(filters))

    # authors -------------------------------------------------------------------------------
    def ensure_author(
        self, name: str, links: dict[str, list[str]], *, now: datetime | None = None
    ) -> bool:
        """Record an author and the links a crawl without links of its own reads (per platform).

        Idempotent: recording the same links again writes nothing. Returns whether the stored
        links changed.
        """
        if not name or not name.strip():
            raise ValueError("author must be a non-empty name")
        now = now or datetime.now(UTC)
        result = self.authors.update_one(
            {"name": name},
            {
                "$set": {"links": {p: list(urls) for p, urls in links.items() if urls}},
                "$setOnInsert": {"name": name, "created_at": now},
            },
            upsert=True,
        )
        return bool(result.upserted_id is not None or result.modified_count)

    def author_links(self, name: str) -> dict[str, list[str]]:
        """The links recorded for `name` by `ensure_author` (empty when none are)."""
        stored = self.authors.find_one({"name": name}, {"links": 1})
        return dict(stored.get("links") or {}) if stored else {}

    # conditional GET -----------------------------------------------------------------------
    def known_validators(self, urls: Iterable[str]) -> dict[str, tuple[str | None, str | None]]:
        """ETag and Last-Modified last seen for each URL that has them."""
        found = find_in(self.validators, "url", urls)
        return {v["url"]: (v.get("etag"), v.get("last_modified")) for v in found}

    def remember_validators(self, validators: dict[str, tuple[str | None, str | None]]) -> int:
        """Store validators that changed (a 304 or the same ETag writes nothing)."""
        if not validators:
            return 0
        known = self.known_validators(validators)
        ops = [
            UpdateOne(
                {"url": url},
                {"$set": {"url": url, "etag": etag, "last_modified": modified}},
                upsert=True,
            )
            for url, (etag, modified) in validators.items()
            if (etag or modified) and known.get(url) != (etag, modified)
        ]
        if not ops:
            return 0
        result = self.validators.bulk_write(ops, ordered=False)
        return result.upserted_count + result.modified_count

    # crawl runs ----------------------------------------------------------------------------
    def record_run(self, run: dict) -> str:
        """Store one crawl run's summary; return its id."""
        return str(self.crawl_runs.insert_one(dict(run)).inserted_id)

    def latest_run(self) -> dict | None:
        return self.crawl_runs.find_one(sort=[("started_at", DESCENDING)])


def document_body(doc: RawDocument) -> dict:
    """The stored fields of a raw document (everything but the store's bookkeeping)."""
    body = doc.model_dump(mode="python")
    body["platform"] = doc.platform.value
    body["kind"] = doc.kind.value
    body["files"] = [f.model_dump() for f in doc.files]
    return body
