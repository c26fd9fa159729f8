"""The embedding model and its precision come from the settings object passed in, never from the
environment; the fast (bf16) path embeds within a tight tolerance of fp32."""

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from twin.settings import Settings
from twin.store import embeddings
from twin.store.embeddings import DEFAULT_MODEL_NAME, Embedder, resolve_model, resolve_precision


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


def test_precision_comes_from_settings_and_unknown_ones_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWIN_EMBEDDING_PRECISION", "fp32")
    assert Settings().embedding_precision == "fp32"
    assert Embedder.from_settings(Settings(embedding_precision="bf16")).precision == "bf16"
    assert Embedder.from_settings(Settings(embedding_precision="fp32")).precision == "fp32"
    with pytest.raises(ValidationError, match="'auto', 'fp32' or 'bf16'"):
        Settings(embedding_precision="fp16")
    with pytest.raises(ValueError, match="fp16"):
        Embedder(resolve_model(), precision="fp16")


def test_auto_precision_is_bf16_only_on_a_cpu_that_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("auto", "cuda") == "fp32"
    monkeypatch.setattr(embeddings, "native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"  # emulated bf16 is slower than fp32
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32"


QUESTIONS = [
    "How do I keep an Airflow DAG idempotent when it reruns?",
    "Which chunk size works for retrieval over blog posts?",
    "Why run dbt tests before loading the marts?",
]
PASSAGES = [
    "A rerun must not duplicate rows: write with upserts keyed on the source id, and make every "
    "task of the DAG idempotent so that a retry changes nothing.",
    "For retrieval over long articles, split on headings first and keep chunks under the "
    "embedding model's window; 200 to 250 tokens with a little overlap worked best for me.",
    "dbt tests on the staging models catch broken sources before the marts are rebuilt, so a "
    "bad crawl never reaches the vector index.",
    "LoRA rank 16 was enough for a style adapter; higher ranks overfit the small dataset.",
    "Ship the boring version first: a pipeline without a rerun story is a rumour.",
]


@pytest.mark.slow
def test_bf16_vectors_stay_within_tolerance_of_fp32_and_rank_alike() -> None:
    fp32 = Embedder(resolve_model(), precision="fp32")
    bf16 = Embedder(resolve_model(), precision="bf16")
    texts = QUESTIONS + PASSAGES
    exact, fast = fp32.encode(texts), bf16.encode(texts)

    assert fast.dtype == np.float32 and fast.shape == exact.shape
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert np.einsum("ij,ij->i", fast, exact).min() > 0.9995
    # questions against passages: the same passage order either way
    q = len(QUESTIONS)
    exact_rank = np.argsort(-exact[:q] @ exact[q:].T, axis=1)
    fast_rank = np.argsort(-fast[:q] @ fast[q:].T, axis=1)
    assert (fast_rank == exact_rank).all()
    assert (exact_rank[:, 0] == [0, 1, 2]).all()  # and it is the right one
