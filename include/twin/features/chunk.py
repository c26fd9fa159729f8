"""Split clean documents into retrieval chunks, per document type.

- Posts stay whole when they fit the embedding window.
- Articles split on their markdown headings, then paragraphs, then sentences; the pieces are packed
  within the token budget, and consecutive chunks of one section share `overlap_tokens` of text.
  Sections shorter than `min_tokens` are merged into their neighbour; code blocks and tables are
  never split when they fit.
- Repositories split per file (a heading that names a path, e.g. `### docs/rules.md`), then like
  articles; code (fenced, or a file with a code extension) splits on function/class/statement
  boundaries for Python, Go and SQL, and on lines otherwise.

Token counts come from the embedding model's own tokenizer. Every chunk fits the model's window
together with its special tokens and its context line ("Title — Section"), which is prepended
when embedding and stored separately, so nothing is silently truncated by the model.

A chunk's id is a sha256 over the document id, the context line, the content, the strategy and
chunker version, and the embedding model name: chunking the same text again gives the same ids,
so re-runs are idempotent and the unchanged chunks of an edited document are recognised.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from twin.domain.documents import MartDocument
from twin.features.chunk_markdown import (
    _article_drafts,
    _repository_drafts,
    split_repository_files,
)
from twin.features.chunk_tokens import (
    CONTEXT_SEP,
    SECTION_SEP,
    ChunkBudget,
    Tokenizer,
    _fit,
    _room,
    _token_prefix,
    _Tokens,
    context_line,
    embedding_text,
)
from twin.features.embed import DEFAULT_MODEL_NAME

__all__ = [
    "CHUNKER_VERSION",
    "CONTEXT_SEP",
    "SECTION_SEP",
    "Chunk",
    "ChunkBudget",
    "MartDocument",
    "Tokenizer",
    "chunk_document",
    "chunk_documents",
    "context_line",
    "embedding_text",
    "split_repository_files",
]

CHUNKER_VERSION = "1"

STRATEGY_POST = "post-whole"
STRATEGY_ARTICLE = "article-sections"
STRATEGY_REPOSITORY = "repository-files"


class Chunk(BaseModel):
    """One retrieval chunk: content, where it sits in its document, and its stable id."""

    model_config = ConfigDict(frozen=True)

    chunk_id: str
    document_id: str
    chunk_index: int = Field(ge=0)
    content: str
    token_count: int = Field(ge=0, description="content tokens, without special tokens")
    content_hash: str = Field(description="sha256 of the content")
    strategy: str = Field(description="chunking strategy and chunker version, e.g. post-whole/v1")
    title: str = ""
    section: str | None = None

    @property
    def context(self) -> str:
        """The context line prepended when embedding: "Title — Section" (or the title alone)."""
        return context_line(self.title, self.section)

    @property
    def embedding_text(self) -> str:
        """What the embedding model sees: the context line, a blank line, then the content."""
        return embedding_text(self.title, self.section, self.content)


def chunk_id_of(
    document_id: str, context: str, content: str, strategy: str, model_name: str
) -> str:
    """sha256 over what determines a chunk's embedding: the same inputs give the same id."""
    blob = json.dumps([document_id, context, content, strategy, model_name], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def chunk_document(
    doc: MartDocument,
    tokenizer: Tokenizer,
    budget: ChunkBudget | None = None,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
) -> list[Chunk]:
    """The document's chunks in reading order (duplicates within the document dropped).

    Posts stay whole when they fit `budget`; articles split on headings, then paragraphs, with
    `budget.overlap_tokens` of overlap inside a section; repositories split per file and code on
    function/class boundaries. `model_name` enters each chunk id.
    """
    budget = budget or ChunkBudget()
    tokens = _Tokens(tokenizer)
    kind = doc.document_kind
    title = _token_prefix(doc.title.strip(), budget.max_context_tokens, tokens)
    drafts: list[tuple[str | None, str]]
    if kind == "repository":
        strategy, drafts = STRATEGY_REPOSITORY, _repository_drafts(title, doc.body, tokens, budget)
    else:
        whole = doc.body.strip()
        if kind == "post" and whole and tokens.count(whole) <= _room(title, None, tokens, budget):
            strategy, drafts = STRATEGY_POST, [(None, whole)]
        else:
            strategy = STRATEGY_ARTICLE
            drafts = _article_drafts(title, doc.body, tokens, budget)
    strategy = f"{strategy}/v{CHUNKER_VERSION}"

    chunks: list[Chunk] = []
    seen: set[str] = set()
    for section, content in drafts:
        for text in _fit(content, _room(title, section, tokens, budget), tokens):
            cid = chunk_id_of(
                doc.document_id, context_line(title, section), text, strategy, model_name
            )
            if cid in seen:
                continue
            seen.add(cid)
            chunks.append(
                Chunk(
                    chunk_id=cid,
                    document_id=doc.document_id,
                    chunk_index=len(chunks),
                    content=text,
                    token_count=tokens.count(text),
                    content_hash=hashlib.sha256(text.encode()).hexdigest(),
                    strategy=strategy,
                    title=title,
                    section=section,
                )
            )
    return chunks


def chunk_documents(
    docs: Iterable[MartDocument],
    tokenizer: Tokenizer,
    budget: ChunkBudget | None = None,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
) -> list[Chunk]:
    """Every document's chunks, document after document."""
    return [c for d in docs for c in chunk_document(d, tokenizer, budget, model_name=model_name)]
