"""Files written whole (`twin.store.files`): the old file or the new one, never half of one."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from twin.store.files import atomic_writer, create_exclusive, write_atomic


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "rows.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_writer(target) as out:
        out.write("half of the new")
        raise RuntimeError("the writer died")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]


def test_a_private_file_is_0600_from_its_first_byte_whatever_the_umask(tmp_path):
    seen: list[int] = []
    target = tmp_path / "secret.env"
    previous = os.umask(0)
    try:
        with atomic_writer(target, private=True, sync=True) as out:
            temporary = next(p for p in tmp_path.iterdir() if p.name != "secret.env")
            seen.append(stat.S_IMODE(temporary.stat().st_mode))
            out.write("TOKEN=x\n")
        write_atomic(tmp_path / "plain.txt", b"bytes")
    finally:
        os.umask(previous)
    assert seen == [0o600]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == "TOKEN=x\n"
    assert (tmp_path / "plain.txt").read_bytes() == b"bytes"


def test_concurrent_writers_each_land_whole(tmp_path):
    target = tmp_path / "worker.json"
    texts = [str(i) * 100_000 for i in range(8)]
    threads = [threading.Thread(target=write_atomic, args=(target, t)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["worker.json"]


def test_create_exclusive_refuses_an_existing_file(tmp_path):
    target = tmp_path / "secret"
    create_exclusive(target, "first")
    with pytest.raises(FileExistsError):
        create_exclusive(target, "second")
    assert target.read_text() == "first"
