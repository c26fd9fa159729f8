"""The embedding model comes from the settings object passed in, never from the environment."""

from pathlib import Path

import pytest

from twin.settings import Settings
from twin.store.embeddings import DEFAULT_MODEL_NAME, Embedder, resolve_model


def test_model_comes_from_settings_not_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = resolve_model()
    monkeypatch.setenv("TWIN_EMBEDDING_MODEL", str(tmp_path / "no-such-model"))
    monkeypatch.setenv("TWIN_EMBEDDING_MODEL_NAME", "from-the-environment")

    # the environment alone changes nothing: only a settings object (read once) does
    assert resolve_model() == packaged
    assert packaged.name == DEFAULT_MODEL_NAME

    chosen = Settings(embedding_model=str(packaged.path), embedding_model_name="minilm-copy")
    embedder = Embedder.from_settings(chosen)
    assert embedder.spec.path == packaged.path
    assert embedder.model_name == "minilm-copy"
    assert embedder.dimension == 384


def test_unknown_model_in_settings_is_named_in_the_error(tmp_path: Path) -> None:
    missing = Settings(embedding_model="no_such_embedding_package")
    with pytest.raises(RuntimeError, match="no_such_embedding_package"):
        Embedder.from_settings(missing)
