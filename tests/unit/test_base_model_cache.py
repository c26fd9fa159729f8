"""The packaged base models' cache is shared by processes (training ranks, test workers)."""

from __future__ import annotations

from pathlib import Path

from twin.store import base_models


def test_a_build_that_finishes_second_keeps_the_copy_already_in_use(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-abc"

    def another_process_finishes_first(out: Path) -> None:
        (out / "weights").write_text("second")
        folder.mkdir()
        (folder / "weights").write_text("first")
        (folder / base_models.MARKER).write_text("{}")

    result = base_models._cached("tiny", "abc", tmp_path, another_process_finishes_first)

    assert result.path == folder
    assert (folder / "weights").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-abc"]


def test_a_folder_without_its_marker_is_rebuilt(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-abc"
    folder.mkdir()
    (folder / "weights").write_text("half written")

    result = base_models._cached(
        "tiny", "abc", tmp_path, lambda out: (out / "weights").write_text("whole")
    )

    assert (result.path / "weights").read_text() == "whole"
    assert (result.path / base_models.MARKER).exists()
