"""Token arithmetic for the chunker: the budget a chunk must fit (`ChunkBudget`), the tokenizer
interface, counts with the embedding model's own tokenizer, token prefixes and windows, and the
room a chunk has once its context line is accounted for. `twin.features.chunk` re-exports the
budget and the interface."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

SECTION_SEP = " › "
CONTEXT_SEP = " — "


def context_line(title: str, section: str | None) -> str:
    """ "Title — Section", the title alone, or the section alone."""
    parts = [p for p in (title.strip(), (section or "").strip()) if p]
    return CONTEXT_SEP.join(parts)


def embedding_text(title: str, section: str | None, content: str) -> str:
    """The text to embed for a chunk: context line, blank line, content."""
    context = context_line(title, section)
    return f"{context}\n\n{content}" if context else content


class Tokenizer(Protocol):
    """A Hugging Face (fast) tokenizer, e.g. `SentenceTransformer.tokenizer`."""

    def __call__(self, text: str, **kwargs: Any) -> Any: ...


class ChunkBudget(BaseModel):
    """Token limits of one chunk, in the embedding model's tokens.

    `max_tokens` is the model's window: special tokens, the context line and the content together
    stay within it. `min_tokens` is the size below which a section is merged into a neighbour.
    """

    model_config = ConfigDict(frozen=True)

    max_tokens: int = Field(default=256, ge=32)
    min_tokens: int = Field(default=32, ge=0)
    overlap_tokens: int = Field(default=32, ge=0)
    special_tokens: int = Field(default=2, ge=0)
    max_context_tokens: int = Field(default=48, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ChunkBudget:
        room = self.max_tokens - self.special_tokens - self.max_context_tokens
        if room < 16:
            raise ValueError(f"max_tokens={self.max_tokens} leaves {room} tokens for content")
        if self.overlap_tokens * 2 > room:
            raise ValueError(f"overlap_tokens={self.overlap_tokens} exceeds half of {room}")
        if self.min_tokens > room:
            raise ValueError(f"min_tokens={self.min_tokens} exceeds the {room} content tokens")
        return self


# --- tokens -----------------------------------------------------------------------------------


class _Tokens:
    """Token counts and offsets from the model's tokenizer, without special tokens."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._counts: dict[str, int] = {}

    def count(self, text: str) -> int:
        if text not in self._counts:
            ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
            self._counts[text] = len(ids)
        return self._counts[text]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        enc = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return [tuple(o) for o in enc["offset_mapping"]]


def _room(title: str, section: str | None, tokens: _Tokens, budget: ChunkBudget) -> int:
    """Content tokens left in the window after special tokens and the context line."""
    context = context_line(title, section)
    used = tokens.count(context + "\n\n") if context else 0
    return budget.max_tokens - budget.special_tokens - used


def _cap_context(
    title: str, section: str | None, tokens: _Tokens, budget: ChunkBudget
) -> str | None:
    """The section label, shortened so the context line stays within `max_context_tokens`."""
    if not section:
        return section
    while section and tokens.count(context_line(title, section)) > budget.max_context_tokens:
        if SECTION_SEP in section:  # drop the outermost heading first
            section = section.split(SECTION_SEP, 1)[1]
        else:
            cut = _token_prefix(section, max(1, budget.max_context_tokens // 2), tokens)
            section = cut if cut != section else None
    return section or None


def _token_prefix(text: str, n: int, tokens: _Tokens) -> str:
    """The first `n` tokens of `text` (all of it when shorter)."""
    if n <= 0:
        return ""
    if tokens.count(text) <= n:
        return text
    offsets = tokens.offsets(text)
    return text if len(offsets) <= n else text[: offsets[n - 1][1]].rstrip()


def _token_windows(text: str, limit: int, tokens: _Tokens) -> list[str]:
    """`text` cut into pieces of at most `limit` tokens, at word starts where possible."""
    offsets = tokens.offsets(text)
    pieces, start_tok = [], 0
    while start_tok < len(offsets):
        end_tok = min(start_tok + limit, len(offsets))
        if end_tok < len(offsets):
            # back off to a token that starts a word, so words are not torn apart
            cut = end_tok
            while cut > start_tok + 1 and not _starts_word(text, offsets[cut][0]):
                cut -= 1
            end_tok = cut if cut > start_tok + 1 else end_tok
        start = offsets[start_tok][0] if start_tok else 0
        end = offsets[end_tok][0] if end_tok < len(offsets) else len(text)
        piece = text[start:end].strip()
        if piece:
            pieces.append(piece)
        start_tok = end_tok
    return pieces


def _starts_word(text: str, pos: int) -> bool:
    return pos == 0 or text[pos - 1].isspace()


def _fit(content: str, room: int, tokens: _Tokens) -> list[str]:
    """`content` as is when it fits `room` tokens, else cut into windows (a last-resort guard)."""
    content = content.strip()
    if not content:
        return []
    if tokens.count(content) <= room:
        return [content]
    return [p for p in _token_windows(content, room, tokens) if p]
