"""HTML to markdown for the known markup of Medium and Substack posts.

A small, predictable converter (headings, paragraphs, nested lists, fenced code with its language,
quotes, tables); link targets and images are dropped, literal `*` and `_` are not escaped (the
text is read and chunked, never rendered back to HTML). `tidy_markdown` also cleans trafilatura's
output for the other sites.
"""

from __future__ import annotations

import re

from lxml import etree
from lxml import html as lxml_html

# Tags whose content is never the author's prose.
NON_CONTENT_TAGS = frozenset(
    [
        "script",
        "style",
        "noscript",
        "template",
        "button",
        "form",
        "input",
        "select",
        "textarea",
        "label",
        "svg",
        "iframe",
        "object",
        "embed",
        "canvas",
        "nav",
        "img",
        "picture",
        "video",
        "audio",
        "source",
        "track",
        "map",
        "meta",
        "link",
    ]
)
CONTAINER_TAGS = frozenset(
    [
        "div",
        "section",
        "article",
        "main",
        "header",
        "footer",
        "aside",
        "body",
        "html",
        "details",
        "summary",
        "address",
        "center",
        "dl",
        "dt",
        "dd",
        "hgroup",
    ]
)
HEADING_TAGS = {f"h{n}": n for n in range(1, 7)}
BLOCK_TAGS = frozenset(
    CONTAINER_TAGS
    | set(HEADING_TAGS)
    | {"p", "pre", "ul", "ol", "li", "blockquote", "hr", "table", "figure", "figcaption"}
)
BR = "\x00br\x00"  # a <br> survives whitespace collapsing, then becomes a newline


def html_to_markdown(node: lxml_html.HtmlElement | None) -> str:
    """Markdown for the element's content; see the module docstring for what is kept."""
    if node is None:
        return ""
    blocks: list[str] = []
    _container(node, blocks)
    return tidy_markdown("\n\n".join(blocks))


def fragment_to_markdown(html: str) -> str:
    """Markdown for an HTML fragment (a feed's `content:encoded`, an API's `body_html`)."""
    if not html or not html.strip():
        return ""
    try:
        wrapper = lxml_html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return ""
    return html_to_markdown(wrapper)


def tidy_markdown(text: str) -> str:
    """Trailing spaces gone, at most one blank line in a row, a blank line after code fences.

    Lines inside fenced code are left exactly as they are.
    """
    out: list[str] = []
    fence = ""  # the open code fence, e.g. "```"; a longer run of backticks closes it too
    after_fence = False
    for line in text.replace("\r\n", "\n").split("\n"):
        if fence:
            out.append(line)
            closing = line.strip()
            if closing.startswith(fence) and not closing.strip("`"):
                fence, after_fence = "", True
            continue
        line = line.rstrip()
        if after_fence and line:
            out.append("")  # trafilatura glues the next paragraph to a closing fence
        after_fence = False
        if opening := re.match(r"\s*(`{3,})", line):
            fence = opening.group(1)
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip()


def _tag(el: etree._Element) -> str | None:
    return el.tag.lower() if isinstance(el.tag, str) else None


def _container(el: lxml_html.HtmlElement, out: list[str]) -> None:
    """Blocks of a container element: inline runs become paragraphs, blocks are rendered."""
    run: list[str] = [el.text or ""]
    for child in el:
        tag = _tag(child)
        if tag is None or tag in NON_CONTENT_TAGS:
            run.append(child.tail or "")
            continue
        if tag in BLOCK_TAGS:
            _flush(run, out)
            _block(child, tag, out)
            run = [child.tail or ""]
        else:
            run.append(_inline(child))
            run.append(child.tail or "")
    _flush(run, out)


def _flush(run: list[str], out: list[str]) -> None:
    text = _clean_inline("".join(run))
    if text:
        out.append(text)
    run.clear()


def _clean_inline(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    lines = [line.strip() for line in text.split(BR)]
    return "\n".join(line for line in lines if line).strip()


def _block(el: lxml_html.HtmlElement, tag: str, out: list[str]) -> None:
    if tag in HEADING_TAGS:
        text = _clean_inline(_inline_children(el)).replace("\n", " ")
        if text:
            out.append("#" * HEADING_TAGS[tag] + " " + text.strip("*").strip())
    elif tag == "p" or tag == "figcaption":
        _container(el, out)
    elif tag == "pre":
        out.append(_code_block(el))
    elif tag in ("ul", "ol"):
        rendered = _list(el, ordered=tag == "ol")
        if rendered:
            out.append(rendered)
    elif tag == "blockquote":
        inner: list[str] = []
        _container(el, inner)
        if inner:
            quoted = "\n>\n".join("\n".join("> " + ln for ln in b.split("\n")) for b in inner)
            out.append(quoted)
    elif tag == "hr":
        out.append("---")
    elif tag == "table":
        rendered = _table(el)
        if rendered:
            out.append(rendered)
    else:  # containers, figures, stray list items
        _container(el, out)


def _code_block(el: lxml_html.HtmlElement) -> str:
    code = el.text_content().strip("\n")
    classes = " ".join([el.get("class", "")] + [c.get("class", "") for c in el.iter("code")])
    match = re.search(r"(?:language|lang)-([\w+#.-]+)", classes)
    fence = "```"
    while fence in code:
        fence += "`"
    return f"{fence}{match.group(1) if match else ''}\n{code}\n{fence}"


def _list(el: lxml_html.HtmlElement, *, ordered: bool) -> str:
    items: list[str] = []
    number = int(el.get("start", "1")) if (el.get("start") or "").isdigit() else 1
    for li in el:
        if _tag(li) != "li":
            continue
        marker = f"{number}. " if ordered else "- "
        number += 1
        blocks: list[str] = []
        _container(li, blocks)
        if not blocks:
            continue
        pad = " " * len(marker)
        body = "\n".join(blocks).replace("\n", "\n" + pad)
        items.append(marker + body)
    return "\n".join(items)


def _table(el: lxml_html.HtmlElement) -> str:
    rows = []
    for tr in el.iter("tr"):
        cells = [
            _clean_inline(_inline_children(c)).replace("\n", " ").replace("|", "\\|")
            for c in tr
            if _tag(c) in ("td", "th")
        ]
        if any(cells):
            rows.append(cells)
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|" + " --- |" * width)
    return "\n".join(lines)


def _inline_children(el: lxml_html.HtmlElement) -> str:
    parts = [el.text or ""]
    for child in el:
        tag = _tag(child)
        if tag is not None and tag not in NON_CONTENT_TAGS:
            parts.append(_inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _inline(el: lxml_html.HtmlElement) -> str:
    tag = _tag(el)
    if tag == "br":
        return BR
    if tag == "code" or tag == "kbd" or tag == "samp":
        text = re.sub(r"\s+", " ", el.text_content()).strip()
        return f"`{text}`" if text else ""
    inner = _inline_children(el)
    if tag in ("strong", "b"):
        return _wrap(inner, "**")
    if tag in ("em", "i"):
        return _wrap(inner, "*")
    if tag in ("s", "del", "strike"):
        return _wrap(inner, "~~")
    if tag in BLOCK_TAGS:  # a block inside inline content (broken markup): keep it apart
        return BR + inner + BR
    return inner


def _wrap(inner: str, mark: str) -> str:
    """Emphasis markers hug the text; surrounding spaces stay outside them."""
    core = inner.strip()
    if not core or BR in core:
        return inner
    lead = inner[: len(inner) - len(inner.lstrip())]
    trail = inner[len(inner.rstrip()) :]
    return f"{lead}{mark}{core}{mark}{trail}"
