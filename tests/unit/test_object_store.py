from pathlib import Path

import pytest

from twin.settings import Settings
from twin.store.object_store import LocalObjectStore, object_store


def test_local_store_round_trips_lists_and_deletes(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    url = store.put("raw/medium/a.html", b"<html>a</html>", "text/html")
    store.put("raw/medium/b.html", b"b")
    store.put("reports/x.json", b"{}")

    assert url.startswith("file://") and url.endswith("raw/medium/a.html")
    assert store.get("raw/medium/a.html") == b"<html>a</html>"
    assert store.list("raw/") == ["raw/medium/a.html", "raw/medium/b.html"]
    store.delete("raw/medium/a.html")
    assert not store.exists("raw/medium/a.html")
    with pytest.raises(KeyError):
        store.get("raw/medium/a.html")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../outside", "a/../../b", "a//b"])
def test_keys_cannot_escape_the_store(tmp_path: Path, key: str) -> None:
    store = LocalObjectStore(tmp_path)
    with pytest.raises(ValueError, match="invalid object key"):
        store.put(key, b"x")


def test_store_is_chosen_by_url(tmp_path: Path) -> None:
    local = object_store(Settings(TWIN_HOME=tmp_path, object_store_url=(tmp_path / "o").as_uri()))
    assert isinstance(local, LocalObjectStore) and local.root == tmp_path / "o"
    with pytest.raises(ValueError, match="file:// or s3://"):
        object_store(Settings(TWIN_HOME=tmp_path, object_store_url="ftp://example/x"))
