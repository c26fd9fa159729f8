"""A small markdown-to-HTML converter for the subset the sample content uses.

Headings, paragraphs, ordered and unordered lists, fenced code, inline code, links, bold and
italic. Each platform renders the same blocks with its own CSS classes, as real sites do.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

_INLINE_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")
_ORDERED = re.compile(r"^(\d+)\.\s+(.*)$")
_UNORDERED = re.compile(r"^[-*]\s+(.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


@dataclass(frozen=True)
class Block:
    """One block-level element: heading, paragraph, ul, ol or code."""

    kind: str
    text: str = ""
    level: int = 0
    items: tuple[str, ...] = ()
    language: str = ""


def parse_blocks(markdown: str) -> list[Block]:
    """Block structure of `markdown`, in document order."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(Block("paragraph", " ".join(s.strip() for s in paragraph)))
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            language = stripped[3:].strip()
            code: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            blocks.append(Block("code", "\n".join(code), language=language))
            i += 1
            continue
        if not stripped:
            flush()
            i += 1
            continue
        heading = _HEADING.match(stripped)
        if heading:
            flush()
            blocks.append(Block("heading", heading.group(2), level=len(heading.group(1))))
            i += 1
            continue
        for kind, pattern in (("ol", _ORDERED), ("ul", _UNORDERED)):
            if pattern.match(stripped):
                flush()
                items: list[str] = []
                while i < len(lines) and (m := pattern.match(lines[i].strip())):
                    items.append(m.group(m.lastindex or 1))
                    i += 1
                blocks.append(Block(kind, items=tuple(items)))
                break
        else:
            paragraph.append(line)
            i += 1
    flush()
    return blocks


def inline_html(text: str) -> str:
    """Escape `text` and render inline code, links, bold and italic."""
    parts = _INLINE_CODE.split(text)
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(f"<code>{html.escape(part, quote=False)}</code>")
            continue
        escaped = html.escape(part, quote=False)
        escaped = _LINK.sub(
            lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>', escaped
        )
        escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)
        escaped = _ITALIC.sub(r"<em>\1</em>", escaped)
        out.append(escaped)
    return "".join(out)


def inline_text(text: str) -> str:
    """`text` with inline markup removed (for plain-text exports and summaries)."""
    text = _LINK.sub(r"\1", text)
    text = _BOLD.sub(r"\1", text)
    text = _ITALIC.sub(r"\1", text)
    return _INLINE_CODE.sub(r"\1", text)


def _attr(classes: Mapping[str, str], key: str) -> str:
    value = classes.get(key)
    return f' class="{value}"' if value else ""


def render_blocks(
    blocks: list[Block], classes: Mapping[str, str] | None = None, *, heading_offset: int = 0
) -> str:
    """HTML for `blocks`; `classes` maps p/h2/h3/ul/ol/li/pre/code to class attributes."""
    classes = classes or {}
    out: list[str] = []
    for block in blocks:
        if block.kind == "paragraph":
            out.append(f"<p{_attr(classes, 'p')}>{inline_html(block.text)}</p>")
        elif block.kind == "heading":
            level = min(6, block.level + heading_offset)
            tag = f"h{level}"
            out.append(f"<{tag}{_attr(classes, tag)}>{inline_html(block.text)}</{tag}>")
        elif block.kind in ("ul", "ol"):
            li = _attr(classes, "li")
            items = "".join(f"<li{li}>{inline_html(item)}</li>" for item in block.items)
            out.append(f"<{block.kind}{_attr(classes, block.kind)}>{items}</{block.kind}>")
        elif block.kind == "code":
            lang = f' class="language-{block.language}"' if block.language else ""
            code = html.escape(block.text, quote=False)
            out.append(f"<pre{_attr(classes, 'pre')}><code{lang}>{code}</code></pre>")
    return "\n".join(out)


def markdown_to_html(markdown: str, classes: Mapping[str, str] | None = None) -> str:
    """HTML for a markdown text, with optional per-element classes."""
    return render_blocks(parse_blocks(markdown), classes)


def markdown_to_text(markdown: str) -> str:
    """Plain text of a markdown document: blocks separated by blank lines, markup removed."""
    out: list[str] = []
    for block in parse_blocks(markdown):
        if block.kind in ("paragraph", "heading"):
            out.append(inline_text(block.text))
        elif block.kind == "ul":
            out.append("\n".join(f"- {inline_text(item)}" for item in block.items))
        elif block.kind == "ol":
            out.append("\n".join(f"{n}. {inline_text(i)}" for n, i in enumerate(block.items, 1)))
        elif block.kind == "code":
            out.append(block.text)
    return "\n\n".join(out)


def summary(markdown: str, limit: int = 200) -> str:
    """First paragraph of `markdown` as plain text, cut at a word boundary near `limit` chars."""
    for block in parse_blocks(markdown):
        if block.kind == "paragraph":
            text = inline_text(block.text)
            if len(text) <= limit:
                return text
            return text[:limit].rsplit(" ", 1)[0] + "…"
    return ""
