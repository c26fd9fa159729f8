"""The author's clean documents from `marts.documents`, and the sections samples are cut from.

A post is one section. An article splits on its markdown headings; a section keeps its heading
path ("Title › Heading › Subheading"). A repository splits per file (a `### path` heading, how
the marts encode docs files) and then on the headings inside. A section longer than the upper
bound is cut at paragraph boundaries into parts, so no text is silently lost; code-only sections
are kept as they are and left to the filters.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from twin.domain.documents import MartDocument
from twin.domain.markdown import heading_sections, split_repository_files

MARTS_TABLE = "marts.documents"
SECTION_SEP = " › "
MAX_SECTION_CHARS = 2400


@dataclass(frozen=True)
class Section:
    """A piece of one document that can answer one instruction."""

    document_id: str
    platform: str
    document_kind: str
    title: str
    heading_path: tuple[str, ...]
    text: str
    position: int

    @property
    def path(self) -> str:
        """The heading path inside the document ("" for a post or an article's opening)."""
        return SECTION_SEP.join(self.heading_path)

    @property
    def section_id(self) -> str:
        """Stable id of the section: document, heading path and text."""
        blob = "\x1f".join([self.document_id, self.path, self.text])
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


def read_documents(conn: psycopg.Connection, author: str | None = None) -> list[MartDocument]:
    """Every document in the marts (of one author when given), ordered by id."""
    if conn.execute("select to_regclass(%s)", (MARTS_TABLE,)).fetchone()[0] is None:
        raise RuntimeError(
            f"{MARTS_TABLE} does not exist: build the warehouse marts first "
            "(the twin_warehouse DAG, or dbt build)"
        )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""select * from {MARTS_TABLE}
                where %(author)s::text is null or author = %(author)s
                order by document_id""",
            {"author": author},
        )
        return [MartDocument.model_validate(row) for row in cur.fetchall()]


def split_sections(doc: MartDocument, max_chars: int = MAX_SECTION_CHARS) -> list[Section]:
    """The document's sections in reading order (see the module docstring)."""
    pieces: list[tuple[tuple[str, ...], str]]
    if doc.document_kind == "post":
        pieces = [((), doc.body.strip())]
    else:
        pieces = list(_heading_pieces(doc.body, doc.document_kind == "repository"))
    sections: list[Section] = []
    for path, text in pieces:
        for part_no, part in enumerate(_parts(text, max_chars), start=1):
            label = path if part_no == 1 else (*path, f"part {part_no}")
            sections.append(
                Section(
                    doc.document_id,
                    doc.platform,
                    doc.document_kind,
                    doc.title,
                    label,
                    part,
                    len(sections),
                )
            )
    return sections


def _heading_pieces(body: str, repository: bool) -> Iterator[tuple[tuple[str, ...], str]]:
    """(heading path, text) per heading, ignoring `#` lines inside code fences; in a repository
    each file starts a new tree under its path."""
    files = split_repository_files(body) if repository else [(None, body)]
    for file_path, text in files:
        prefix = (file_path,) if file_path else ()
        for section in heading_sections(text):
            if section.text:
                yield (*prefix, *section.path), section.text


def _parts(text: str, max_chars: int) -> list[str]:
    """The text cut at paragraph boundaries into parts of at most `max_chars` (a single longer
    paragraph stays whole and is left to the length filter)."""
    if len(text) <= max_chars:
        return [text]
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if current and size + len(paragraph) + 2 > max_chars:
            parts.append("\n\n".join(current))
            current, size = [], 0
        current.append(paragraph)
        size += len(paragraph) + 2
    if current:
        parts.append("\n\n".join(current))
    return parts
