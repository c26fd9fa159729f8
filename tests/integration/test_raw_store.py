"""The raw document store on the real MongoDB-protocol server."""

import uuid
from datetime import UTC, datetime

import pytest

from twin.domain.documents import DocumentKind, Platform, RawDocument
from twin.settings import Settings
from twin.store.mongo import mongo_client, twin_database
from twin.store.raw_documents import RawDocumentStore, document_id

pytestmark = pytest.mark.integration


@pytest.fixture
def store(stack_settings: Settings):
    settings = stack_settings.model_copy(update={"mongo_database": f"t_{uuid.uuid4().hex[:10]}"})
    with mongo_client(settings) as client:
        store = RawDocumentStore(twin_database(client, settings))
        store.ensure_indexes()
        yield store
        client.drop_database(settings.mongo_database)


def post(n: int, text: str = "Ship the boring version first.") -> RawDocument:
    return RawDocument(
        url=f"https://example.org/posts/{n}",
        platform=Platform.LINKEDIN,
        kind=DocumentKind.POST,
        author="Ada Lindqvist",
        title=f"Post {n}",
        text=f"{text} ({n})",
        published_at=datetime(2024, 5, n % 28 + 1, tzinfo=UTC),
        source_url="https://example.org/feed",
    )


def test_second_upsert_of_the_same_documents_writes_nothing(store: RawDocumentStore) -> None:
    docs = [post(n) for n in range(40)]
    first = store.upsert(docs)
    before = {d["url"]: d for d in store.documents.find()}
    second = store.upsert(docs)
    after = {d["url"]: d for d in store.documents.find()}

    assert (first.new, first.changed, first.unchanged) == (40, 0, 0)
    assert (second.new, second.changed, second.unchanged) == (0, 0, 40)
    assert before == after


def test_an_edited_document_is_updated_once_and_keeps_first_seen(store: RawDocumentStore) -> None:
    store.upsert([post(n) for n in range(5)])
    original = store.documents.find_one({"url": post(3).url})

    counts = store.upsert([post(n) for n in range(5) if n != 3] + [post(3, "Edited text.")])
    edited = store.documents.find_one({"url": post(3).url})

    assert (counts.new, counts.changed, counts.unchanged) == (0, 1, 4)
    assert edited["version"] == 2 and edited["text"] == "Edited text. (3)"
    assert edited["first_seen"] == original["first_seen"]
    assert edited["last_changed"] > original["last_changed"]
    assert edited["_id"] == document_id(post(3).url)


def test_documents_gone_from_a_complete_listing_are_marked_not_dropped(store) -> None:
    store.upsert([post(n) for n in range(4)])
    marked = store.mark_missing("https://example.org/feed", {post(0).url, post(1).url})

    assert marked == 2
    assert store.count() == 4
    assert store.count(deleted_at=None) == 2
    # the same listing again marks nothing more; a document that comes back is revived
    assert store.mark_missing("https://example.org/feed", {post(0).url, post(1).url}) == 0
    assert store.upsert([post(2)]).changed == 1
    assert store.count(deleted_at=None) == 3


def test_validators_are_written_only_when_they_change(store: RawDocumentStore) -> None:
    validators = {f"https://example.org/p/{n}": (f'"etag-{n}"', None) for n in range(3)}
    assert store.remember_validators(validators) == 3
    assert store.remember_validators(validators) == 0
    assert store.known_validators(validators) == validators


def test_an_author_is_recorded_once_and_links_replaced_only_when_they_change(store) -> None:
    links = {"blog": ["https://example.org/sitemap.xml"], "medium": []}
    assert store.author_links("Ada Lindqvist") == {}

    assert store.ensure_author("Ada Lindqvist", links) is True
    first = store.authors.find_one({"name": "Ada Lindqvist"})
    assert store.ensure_author("Ada Lindqvist", links) is False
    moved = {"blog": ["https://example.net/sitemap.xml"]}
    assert store.ensure_author("Ada Lindqvist", moved) is True

    assert store.author_links("Ada Lindqvist") == moved
    assert store.authors.count_documents({}) == 1
    assert store.authors.find_one({"name": "Ada Lindqvist"})["created_at"] == first["created_at"]
    assert first["links"] == {"blog": ["https://example.org/sitemap.xml"]}  # empty lists dropped
    assert store.author_links("Somebody Else") == {}
