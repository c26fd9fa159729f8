"""Keep a pgvector chunk table consistent with its sources."""

from tidy_vectors.stale import Chunk, content_hash, stale_chunks

__all__ = ["Chunk", "content_hash", "stale_chunks"]
__version__ = "0.3.1"
