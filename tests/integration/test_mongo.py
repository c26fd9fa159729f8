"""The raw store's server through the project's client: unique indexes reject duplicates, `$in`
lookups split into chunks find exactly what was asked."""

import uuid

import pytest
from pymongo.errors import DuplicateKeyError

from twin.settings import Settings
from twin.store.mongo import find_in, mongo_client, twin_database

pytestmark = pytest.mark.integration


def test_unique_index_rejects_a_second_document_with_the_same_url(stack_settings) -> None:
    with mongo_client(stack_settings) as client:
        docs = twin_database(client, stack_settings)[f"probe_{uuid.uuid4().hex[:8]}"]
        docs.create_index("url", unique=True)
        docs.insert_one({"url": "https://example.org/a", "title": "first"})

        with pytest.raises(DuplicateKeyError) as err:
            docs.insert_one({"url": "https://example.org/a", "title": "second"})

        assert err.value.code == 11000
        assert docs.count_documents({}) == 1
        assert docs.find_one({"url": "https://example.org/a"})["title"] == "first"
        docs.drop()


def test_documents_survive_a_new_client(stack_settings: Settings) -> None:
    name = f"probe_{uuid.uuid4().hex[:8]}"
    with mongo_client(stack_settings) as client:
        twin_database(client, stack_settings)[name].insert_many([{"n": i} for i in range(100)])
    with mongo_client(stack_settings) as client:
        coll = twin_database(client, stack_settings)[name]
        assert coll.count_documents({"n": {"$gte": 50}}) == 50
        coll.drop()


def test_find_in_chunks_finds_every_listed_document_and_no_other(stack_settings: Settings) -> None:
    with mongo_client(stack_settings) as client:
        coll = twin_database(client, stack_settings)[f"probe_{uuid.uuid4().hex[:8]}"]
        coll.insert_many([{"_id": f"doc-{i:03d}", "n": i} for i in range(300)])
        try:
            wanted = [f"doc-{i:03d}" for i in range(0, 300, 2)] + ["doc-missing"]
            found = list(find_in(coll, "_id", iter(wanted), {"n": 1}, chunk=7))
            assert sorted(d["_id"] for d in found) == sorted(wanted[:-1])
            assert all(d["n"] == int(d["_id"][4:]) for d in found)
            assert list(find_in(coll, "_id", [])) == []
        finally:
            coll.drop()
