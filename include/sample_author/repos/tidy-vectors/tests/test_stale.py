from tidy_vectors.stale import Chunk, content_hash, orphaned_ids, stale_chunks


def test_cosmetic_whitespace_is_not_a_change():
    assert content_hash("Ship  the boring\nversion first.") == content_hash(
        "Ship the boring version first."
    )


def test_only_changed_chunks_are_stale():
    chunks = [Chunk("doc", 0, "unchanged"), Chunk("doc", 1, "edited")]
    stored = {
        "doc:0": (content_hash("unchanged"), "m@1"),
        "doc:1": (content_hash("original"), "m@1"),
    }
    assert [c.chunk_id for c in stale_chunks(chunks, stored, "m@1")] == ["doc:1"]


def test_model_upgrade_makes_everything_stale():
    chunks = [Chunk("doc", 0, "text")]
    stored = {"doc:0": (content_hash("text"), "m@1")}
    assert len(list(stale_chunks(chunks, stored, "m@2"))) == 1


def test_orphans_are_chunks_of_missing_documents():
    assert orphaned_ids({"a"}, ["a:0", "b:0", "b:1"]) == ["b:0", "b:1"]
