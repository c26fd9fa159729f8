"""Markdown structure, parsed one way for chunking and for dataset sections: code fences,
headings (never inside a fence) and the headings that start a repository file."""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([\w+#.-]*)")
# A heading whose whole text is a path: `docs/rules.md`, `File: src/x.py`, `` `sql/001.sql` ``.
PATH_HEADING = re.compile(
    r"^(?i:file:\s*)?`?((?:[\w.@+-]+/)*[\w@+-][\w.@+-]*\.[A-Za-z][\w-]*|(?:[\w.@+-]+/)+[\w.@+-]+"
    r"|Makefile|Dockerfile|LICENSE)`?$"
)


@dataclass(frozen=True)
class HeadingSection:
    """The text under one heading, with the titles of the headings it sits under."""

    path: tuple[str, ...]  # open headings' titles, outermost first (empty before any heading)
    level: int  # the level of the heading that opened it (0 before any heading)
    heading_line: str  # that heading's line ("" before any heading)
    text: str  # stripped; may be empty under a heading


def lines_with_fences(text: str) -> list[tuple[str, bool]]:
    """Each line of `text` and whether it lies inside (or opens/closes) a code fence."""
    out, fence = [], ""
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fence:
            out.append((line, True))
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2):
                fence = ""
        elif m:
            fence = m.group(1)
            out.append((line, True))
        else:
            out.append((line, False))
    return out


def heading_sections(markdown: str) -> list[HeadingSection]:
    """The sections of `markdown` in reading order: the text before the first heading (only when
    there is some), then one section per heading, empty ones included."""
    sections: list[HeadingSection] = []
    stack: list[tuple[int, str]] = []
    level, heading_line, buf = 0, "", []

    def flush() -> None:
        text = "\n".join(buf).strip()
        if text or heading_line:
            sections.append(HeadingSection(tuple(t for _, t in stack), level, heading_line, text))

    for line, fenced in lines_with_fences(markdown):
        m = None if fenced else HEADING.match(line)
        if not m:
            buf.append(line)
            continue
        flush()
        buf = []
        level, title = len(m.group(1)), m.group(2).strip()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        heading_line = line.strip()
    flush()
    return sections


def split_repository_files(body: str) -> list[tuple[str | None, str]]:
    """(path, text) per file of a repository body; the part before the first file is (None, …).

    A file starts at a heading (any level) whose whole text is a path (`PATH_HEADING`).
    """
    files: list[tuple[str | None, list[str]]] = [(None, [])]
    for line, fenced in lines_with_fences(body):
        m = None if fenced else HEADING.match(line)
        path = PATH_HEADING.match(m.group(2).strip()) if m else None
        if path:
            files.append((path.group(1), []))
            continue
        files[-1][1].append(line)
    return [(p, "\n".join(lines).strip()) for p, lines in files if "\n".join(lines).strip()]
