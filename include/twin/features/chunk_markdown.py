"""Markdown structure for the chunker: sections under headings, blocks (prose, tables, fenced
code), long blocks split on sentence, row or function/class boundaries, pieces packed within the
token budget with overlap, and repositories split per file."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from twin.domain.markdown import FENCE, heading_sections, lines_with_fences, split_repository_files
from twin.features.chunk_tokens import (
    SECTION_SEP,
    ChunkBudget,
    _cap_context,
    _room,
    _starts_word,
    _token_windows,
    _Tokens,
)

# --- markdown structure -----------------------------------------------------------------------

SENTENCE_END = re.compile(r"(?:(?<=[.!?:;])|(?<=[.!?:;][\"')\]]))\s+(?=\S)")

CODE_LANGUAGES = {
    "py": "python", "python": "python", "python3": "python",
    "go": "go", "golang": "go",
    "sql": "sql", "postgresql": "sql", "postgres": "sql", "psql": "sql", "pgsql": "sql",
}  # fmt: skip
EXTENSION_LANGUAGES = {
    ".py": "python", ".go": "go", ".sql": "sql", ".sh": "bash", ".js": "javascript",
    ".ts": "typescript", ".rs": "rust", ".java": "java", ".rb": "ruby", ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml",
    ".json": "json", ".cfg": "ini", ".ini": "ini",
}  # fmt: skip
# A new top-level unit starts at these lines; comments/decorators just above travel with it.
CODE_BOUNDARY: dict[str, re.Pattern[str]] = {
    "python": re.compile(r"^(?:@|(?:async[ \t]+)?def[ \t]|class[ \t])"),
    "go": re.compile(r"^(?:func|type|var|const)[ \t(]"),
    "sql": re.compile(
        r"^(?:create|alter|drop|insert|update|delete|with|select|begin|commit|grant|revoke|"
        r"comment|truncate|refresh|vacuum|analyze|do|set)\b",
        re.IGNORECASE,
    ),
}
# Inside an oversized unit (a class), methods are the next boundary.
NESTED_BOUNDARY = {"python": re.compile(r"^[ \t]+(?:@|(?:async[ \t]+)?def[ \t])")}
COMMENT_PREFIX = {"python": ("#", "@"), "go": ("//",), "sql": ("--",)}


@dataclass
class _Section:
    heading: str | None  # heading path, " › "-joined
    text: str
    level: int = 0  # level of the heading that opened it (0: text before any heading)
    title_line: str = ""  # the heading line itself, kept when the section is merged upward


@dataclass
class _Block:
    text: str
    kind: str  # prose | code | table
    lang: str = ""


@dataclass
class _Piece:
    text: str
    tokens: int
    sep: str  # how this piece joins the one before it
    kind: str = "prose"


def _split_sections(markdown: str, title: str, prefix: str | None = None) -> list[_Section]:
    """Sections under the document's headings, each labelled with its heading path (a heading
    that repeats the document's title stays out of the path)."""
    title_key = title.strip().casefold()
    sections: list[_Section] = []
    for s in heading_sections(markdown):
        path = [p for p in s.path if p.casefold() != title_key]
        heading = SECTION_SEP.join(p for p in (prefix, *path) if p) or None
        sections.append(_Section(heading, s.text, s.level, s.heading_line))
    return sections


def _merge_small(sections: list[_Section], tokens: _Tokens, min_tokens: int) -> list[_Section]:
    """Merge sections shorter than `min_tokens` into the next one (the last into the previous)."""
    merged: list[_Section] = []
    carry: _Section | None = None
    # a heading with no text of its own: its label already prefixes its subsections' labels
    for s in (s for s in sections if s.text):
        if carry is not None:
            inner = f"{s.title_line}\n\n{s.text}".strip() if s.title_line else s.text
            s = _Section(
                carry.heading, f"{carry.text}\n\n{inner}".strip(), carry.level, carry.title_line
            )
            carry = None
        if tokens.count(s.text) < min_tokens:
            carry = s
        else:
            merged.append(s)
    if carry is not None:
        if merged:
            last = merged[-1]
            inner = f"{carry.title_line}\n\n{carry.text}" if carry.title_line else carry.text
            merged[-1] = _Section(
                last.heading, f"{last.text}\n\n{inner}", last.level, last.title_line
            )
        else:
            merged.append(carry)
    return [s for s in merged if s.text]


def _blocks(text: str) -> list[_Block]:
    """Paragraphs, fenced code blocks and tables of a section, in order."""
    blocks: list[_Block] = []
    buf: list[str] = []
    code: list[str] = []
    lang = ""

    def flush_prose() -> None:
        para = "\n".join(buf).strip()
        if para:
            lines = para.split("\n")
            is_table = all(ln.lstrip().startswith("|") for ln in lines) and len(lines) > 1
            blocks.append(_Block(para, "table" if is_table else "prose"))
        buf.clear()

    for line, fenced in lines_with_fences(text):
        if fenced:
            if not code:
                flush_prose()
                m = FENCE.match(line)
                lang = (m.group(2) if m else "").lower()
            code.append(line)
            closing = FENCE.match(line)
            if len(code) > 1 and closing and not closing.group(2):
                blocks.append(_Block("\n".join(code), "code", lang))
                code = []
        elif code:  # an unterminated fence ends at the next unfenced line (cannot happen)
            blocks.append(_Block("\n".join(code), "code", lang))
            code = []
            buf.append(line)
        elif line.strip():
            buf.append(line)
        else:
            flush_prose()
    if code:
        blocks.append(_Block("\n".join(code), "code", lang))
    flush_prose()
    return blocks


# --- splitting long blocks --------------------------------------------------------------------


def _prose_pieces(text: str, limit: int, tokens: _Tokens) -> list[_Piece]:
    """A paragraph as one piece, or split on lines, then sentences, then words to fit `limit`."""
    splitters: list[tuple[Callable[[str], list[str]], str]] = [
        (lambda t: [ln for ln in t.split("\n") if ln.strip()], "\n"),
        (lambda t: [s for s in SENTENCE_END.split(t) if s.strip()], " "),
    ]

    def split(part: str, level: int, sep: str) -> list[_Piece]:
        n = tokens.count(part)
        if n <= limit:
            return [_Piece(part, n, sep)]
        for split_fn, inner_sep in splitters[level:]:
            level += 1
            parts = split_fn(part)
            if len(parts) > 1:
                out: list[_Piece] = []
                for i, p in enumerate(parts):
                    out.extend(split(p.strip(), level, sep if i == 0 else inner_sep))
                return out
        windows = _token_windows(part, limit, tokens)
        return [_Piece(w, tokens.count(w), sep if i == 0 else " ") for i, w in enumerate(windows)]

    return split(text.strip(), 0, "\n\n")


def _table_pieces(text: str, limit: int, tokens: _Tokens) -> list[_Piece]:
    """A table whole, or its rows in groups that each repeat the header."""
    n = tokens.count(text)
    if n <= limit:
        return [_Piece(text, n, "\n\n", "table")]
    lines = text.split("\n")
    header = (
        lines[:2] if len(lines) > 2 and set(lines[1].replace("|", "").strip()) <= set("-: ") else []
    )
    rows = lines[len(header) :]
    room = max(8, limit - tokens.count("\n".join(header)))
    items: list[tuple[str, str]] = []
    for row in rows:
        if tokens.count(row) <= room:
            items.append((row, "\n"))
        else:
            items.extend((w, " ") for w in _token_windows(row, room, tokens))
    return _group(items, header, [], room, tokens, "table")


def _code_pieces(block: _Block, limit: int, tokens: _Tokens) -> list[_Piece]:
    """A fenced code block whole, or split on top-level units (functions, classes, statements)."""
    n = tokens.count(block.text)
    if n <= limit:
        return [_Piece(block.text, n, "\n\n", "code")]
    lines = block.text.split("\n")
    opener = lines[0]
    closer = lines[-1] if len(lines) > 1 and FENCE.match(lines[-1]) else "```"
    body = lines[1:-1] if len(lines) > 1 and closer == lines[-1] else lines[1:]
    lang = CODE_LANGUAGES.get(block.lang, block.lang)
    frame = tokens.count(f"{opener}\n{closer}")
    room = max(8, limit - frame)
    items: list[tuple[str, str]] = []  # (text, separator before it)
    for unit in _code_units(body, lang):
        if tokens.count(unit) <= room:
            items.append((unit, "\n\n"))
            continue
        # an oversized unit (a big class): its methods, then lines, then token windows
        nested = NESTED_BOUNDARY.get(lang)
        subunits = _code_units(unit.split("\n"), lang, nested) if nested else [unit]
        for sub in subunits:
            sep = "\n\n"
            if tokens.count(sub) <= room:
                items.append((sub, sep))
                continue
            for j, line in enumerate(sub.split("\n")):
                line_sep = sep if j == 0 else "\n"
                if tokens.count(line) <= room:
                    items.append((line, line_sep))
                else:
                    items.extend(
                        (w, line_sep if k == 0 else " ")
                        for k, w in enumerate(_token_windows(line, room, tokens))
                    )
    return _group(items, [opener], [closer], room, tokens, "code")


def _group(
    items: Sequence[tuple[str, str]],
    head: list[str],
    tail: list[str],
    room: int,
    tokens: _Tokens,
    kind: str,
) -> list[_Piece]:
    """Pack (text, separator) items into groups within `room`, each wrapped in `head`/`tail`."""
    groups: list[str] = []
    used = 0
    for text, sep in items:
        n = tokens.count(text)
        if groups and used + n <= room:
            groups[-1] += sep + text
            used += n
        else:
            groups.append(text)
            used = n
    pieces = []
    for group in groups:
        text = "\n".join([*head, group, *tail]).strip("\n")
        pieces.append(_Piece(text, tokens.count(text), "\n\n", kind))
    return pieces


def _code_units(lines: list[str], lang: str, boundary: re.Pattern[str] | None = None) -> list[str]:
    """Code units: a new one starts at a boundary line, with the comments directly above it."""
    boundary = boundary or CODE_BOUNDARY.get(lang)
    if boundary is None:
        return ["\n".join(lines)]
    attached = COMMENT_PREFIX.get(lang, ())

    def is_attached(line: str) -> bool:
        return bool(line.strip()) and line.lstrip().startswith(attached)

    units: list[list[str]] = [[]]
    for line in lines:
        if boundary.match(line) and units[-1]:
            cur = units[-1]
            k = len(cur)
            while k > 0 and is_attached(cur[k - 1]):
                k -= 1
            if k > 0:  # else the unit so far is only comments/decorators: keep extending it
                units[-1] = cur[:k]
                units.append(cur[k:])
        units[-1].append(line)
    return ["\n".join(u).strip("\n") for u in units if any(x.strip() for x in u)]


# --- packing ----------------------------------------------------------------------------------


def _overlap_tail(text: str, n: int, tokens: _Tokens) -> str | None:
    """At most the last `n` tokens of `text`, from the first sentence (else word) that starts in
    that window; None when `text` is no longer than `n` tokens."""
    if n <= 0:
        return None
    offsets = tokens.offsets(text)
    if len(offsets) <= n:
        return None
    starts = [o[0] for o in offsets[len(offsets) - n :]]
    sentences = [p for p in starts if _starts_sentence(text, p)]
    words = [p for p in starts if _starts_word(text, p)]
    start = sentences[0] if sentences else words[0] if words else None
    return text[start:].strip() if start is not None else None


def _starts_sentence(text: str, pos: int) -> bool:
    """True when `pos` starts a line, or follows sentence-ending punctuation and a space."""
    before = text[:pos].rstrip(" \t")
    return (0 < len(before) < pos and before.endswith((".", "!", "?"))) or text[:pos].endswith("\n")


def _pack(pieces: list[_Piece], room: int, overlap: int, tokens: _Tokens) -> list[str]:
    """Greedy packing of pieces into chunks within `room`, with overlap between neighbours."""
    chunks: list[str] = []
    cur: list[_Piece] = []
    used = 0
    for piece in pieces:
        if cur and used + piece.tokens > room:
            chunks.append(_join(cur))
            # code and tables are never cut for overlap: only trailing prose carries forward
            k = len(cur)
            while k > 0 and cur[k - 1].kind == "prose":
                k -= 1
            prose, cur, used = cur[k:], [], 0
            want = min(overlap, room - piece.tokens)
            if prose and piece.kind == "prose" and want >= 8:
                tail = _overlap_tail(_join(prose), want, tokens)
                if tail:
                    cur, used = [_Piece(tail, tokens.count(tail), "")], tokens.count(tail)
        cur.append(piece)
        used += piece.tokens
    if cur:
        chunks.append(_join(cur))
    return chunks


def _join(pieces: list[_Piece]) -> str:
    text = pieces[0].text
    for p in pieces[1:]:
        text += p.sep + p.text
    return text.strip()


def _section_chunks(
    section: _Section, title: str, tokens: _Tokens, budget: ChunkBudget
) -> list[tuple[str | None, str]]:
    """(section label, content) pairs for one section, packed within the budget."""
    label = _cap_context(title, section.heading, tokens, budget)
    room = _room(title, label, tokens, budget)
    pieces: list[_Piece] = []
    for block in _blocks(section.text):
        if block.kind == "code":
            pieces.extend(_code_pieces(block, room, tokens))
        elif block.kind == "table":
            pieces.extend(_table_pieces(block.text, room, tokens))
        else:
            pieces.extend(_prose_pieces(block.text, room, tokens))
    return [(label, c) for c in _pack(pieces, room, budget.overlap_tokens, tokens)]


def _article_drafts(
    title: str, body: str, tokens: _Tokens, budget: ChunkBudget, prefix: str | None = None
) -> list[tuple[str | None, str]]:
    sections = _merge_small(_split_sections(body, title, prefix), tokens, budget.min_tokens)
    return [d for s in sections for d in _section_chunks(s, title, tokens, budget)]


# --- repositories -----------------------------------------------------------------------------


def _repository_drafts(
    title: str, body: str, tokens: _Tokens, budget: ChunkBudget
) -> list[tuple[str | None, str]]:
    drafts: list[tuple[str | None, str]] = []
    for path, text in split_repository_files(body):
        if path:
            ext = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
            lang = EXTENSION_LANGUAGES.get(ext)
            if lang and not FENCE.match(text.lstrip("\n").split("\n", 1)[0]):
                text = f"```{lang}\n{text}\n```"  # an unfenced code file: fence it
        drafts.extend(_article_drafts(title, text, tokens, budget, prefix=path))
    return drafts
