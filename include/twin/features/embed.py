"""The feature pipeline's embedder: `twin.store.embeddings`, shared with retrieval (questions and
chunks must be embedded by the same model)."""

from twin.store.embeddings import (
    DEFAULT_MODEL_NAME,
    DEFAULT_MODEL_PACKAGE,
    MODEL_ENV,
    MODEL_NAME_ENV,
    PACKAGED_MODEL_NAMES,
    Embedder,
    EmbeddingModelSpec,
    TextEmbedder,
    resolve_model,
)

__all__ = [
    "DEFAULT_MODEL_NAME",
    "DEFAULT_MODEL_PACKAGE",
    "MODEL_ENV",
    "MODEL_NAME_ENV",
    "PACKAGED_MODEL_NAMES",
    "Embedder",
    "EmbeddingModelSpec",
    "TextEmbedder",
    "resolve_model",
]
