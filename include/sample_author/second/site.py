"""A second demo author, Ines Okafor, on platforms and markup of her own, for the same server.

Ines keeps a community orchard in Leeds: grafting, pruning, mason bees, codling moth, pressing
day, cider. She publishes on two platforms, neither laid out like Ada's: a hand-made notes site
(`/notes/<slug>.html`, microformats `h-entry` markup, a sitemap of its own at
`/notes/sitemap.xml`) and a Substack newsletter, *Windfall Letters* (`/letters/`: archive API,
feed, post pages). No LinkedIn, Medium or git. Her letters open "Dear orchard keepers," and sign
off "— Ines"; her notes close with "Plant the tree you will not sit under."

`build_second_site(out_dir)` writes the site, its route table, a `_description.json` the server
publishes (author, source links, URL prefix per platform) and a `SiteManifest`; `SampleServer`
serves it like the sample author's site.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Sequence
from email.utils import format_datetime
from pathlib import Path

from sample_author.content import Author, SourceDocument, load_document
from sample_author.manifest import DocumentRef, PlatformManifest, SiteManifest
from sample_author.markup import parse_blocks, render_blocks
from sample_author.site import _prepare
from sample_author.writer import BUILD_TIME, JSON, RSS, TEXT, XML, SiteWriter, absolute

CONTENT_DIR = Path(__file__).resolve().parent / "content"
# What the server publishes at its description path when a site carries this file.
DESCRIPTION_FILE = "_description.json"

SECOND_AUTHOR = Author(
    name="Ines Okafor",
    handle="ines-okafor",
    headline="Community orchard keeper · grafting, pruning, pollinators and cider",
    location="Leeds, United Kingdom",
    employer="Harehills Community Orchard",
    newsletter="Windfall Letters",
    bio=(
        "I look after a community orchard on a Leeds allotment and twelve fruit trees on our "
        "street's verge. I write about grafting, pruning old trees, mason bees, pests without "
        "sprays, and pressing day."
    ),
    signature="Plant the tree you will not sit under.",
)

NOTES = "/notes"
LETTERS = "/letters"
SOURCE_PATHS: dict[str, list[str]] = {
    "blog": [f"{NOTES}/sitemap.xml"],
    "substack": [f"{LETTERS}/"],
}
PREFIXES: dict[str, str] = {f"{NOTES}/": "blog", f"{LETTERS}/": "substack"}
PUBLICATION_ID = 2_907_311


def load_second_documents() -> list[SourceDocument]:
    """Ines's writing, oldest first per platform."""
    docs = [load_document(p) for p in sorted(CONTENT_DIR.rglob("*.md"))]
    return sorted(docs, key=lambda d: (d.platform, d.date, d.slug))


def second_links(base_url: str) -> dict[str, list[str]]:
    """Source links per platform for a server of her site at `base_url`."""
    base = base_url.rstrip("/")
    return {platform: [base + path for path in paths] for platform, paths in SOURCE_PATHS.items()}


def second_prefixes(base_url: str) -> dict[str, str]:
    """URL prefix → platform for a server of her site at `base_url`."""
    base = base_url.rstrip("/")
    return {base + prefix: platform for prefix, platform in PREFIXES.items()}


# --- the notes site: her own markup -----------------------------------------------------------


def note_path(doc: SourceDocument) -> str:
    return f"{NOTES}/{doc.slug}.html"


def _note_page(doc: SourceDocument) -> str:
    esc = html.escape
    body = render_blocks(parse_blocks(doc.body), heading_offset=0)
    tags = " ".join(f'<a class="p-category" href="{NOTES}/">{esc(t)}</a>' for t in doc.tags)
    return f"""<!doctype html>
<html lang="en-GB"><head><meta charset="utf-8">
<title>{esc(doc.title)} — Orchard notes</title>
<link rel="canonical" href="{absolute(note_path(doc))}">
<meta name="author" content="{esc(SECOND_AUTHOR.name)}">
</head>
<body class="notes">
<header class="masthead"><a href="{NOTES}/">Orchard notes</a> · <a href="{LETTERS}/">Letters</a>
<form class="search" action="{NOTES}/search"><input name="q" placeholder="Search notes"></form>
</header>
<main id="content">
<article class="h-entry">
<h1 class="p-name">{esc(doc.title)}</h1>
<p class="byline">by <span class="p-author h-card">{esc(SECOND_AUTHOR.name)}</span> on
<time class="dt-published" datetime="{doc.date.isoformat()}">{doc.date:%d %B %Y}</time></p>
<div class="e-content">
{body}
</div>
<footer class="entry-tags">Filed under {tags}</footer>
</article>
</main>
<aside class="elsewhere"><h2>Also in the orchard</h2><p>Volunteer mornings are on the first
Saturday of the month. Bring gloves.</p></aside>
<footer class="site-footer">© {esc(SECOND_AUTHOR.name)} · text CC BY-SA</footer>
</body></html>
"""


def _notes_index(notes: Sequence[SourceDocument]) -> str:
    items = "\n".join(
        f'<li><a href="{note_path(d)}">{html.escape(d.title)}</a> '
        f"<time>{d.date:%Y-%m-%d}</time></li>"
        for d in notes
    )
    return (
        "<!doctype html><html lang='en-GB'><head><meta charset='utf-8'><title>Orchard notes"
        f"</title></head><body><h1>Orchard notes</h1><ul class='h-feed'>\n{items}\n</ul>"
        "</body></html>\n"
    )


def _sitemap(notes: Sequence[SourceDocument]) -> str:
    urls = "\n".join(
        f"<url><loc>{absolute(note_path(d))}</loc><lastmod>{d.date:%Y-%m-%d}</lastmod></url>"
        for d in notes
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        f"{urls}\n</urlset>\n"
    )


# --- the newsletter: Substack's markup, her publication ----------------------------------------


def letter_path(slug: str) -> str:
    return f"{LETTERS}/p/{slug}"


def _post_id(slug: str) -> int:
    return 150_000_000 + int(hashlib.sha256(slug.encode()).hexdigest()[:6], 16) % 9_000_000


def _letter_body(doc: SourceDocument) -> str:
    return render_blocks(parse_blocks(doc.body), heading_offset=1)


def _archive(letters: Sequence[SourceDocument]) -> list[dict]:
    return [
        {
            "id": _post_id(d.slug),
            "publication_id": PUBLICATION_ID,
            "title": d.title,
            "slug": d.slug,
            "post_date": d.date.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "audience": "everyone",
            "canonical_url": absolute(letter_path(d.slug)),
            "subtitle": d.subtitle or "",
            "description": d.subtitle or "",
            "type": "newsletter",
            "wordcount": d.words,
            "publishedBylines": [{"name": SECOND_AUTHOR.name, "handle": SECOND_AUTHOR.handle}],
        }
        for d in letters
    ]


def _letter_page(doc: SourceDocument) -> str:
    esc = html.escape
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{esc(doc.title)} - by {esc(SECOND_AUTHOR.name)}</title>
<meta property="og:site_name" content="{esc(SECOND_AUTHOR.newsletter)}">
<link rel="canonical" href="{absolute(letter_path(doc.slug))}">
</head>
<body class="pc-root">
<div class="topbar"><a class="navbar-title-link" href="{LETTERS}/">
{esc(SECOND_AUTHOR.newsletter)}</a></div>
<article class="typography newsletter-post post">
<div class="post-header"><h1 class="post-title published">{esc(doc.title)}</h1>
<h3 class="subtitle">{esc(doc.subtitle or "")}</h3>
<div class="post-date" title="{doc.date.isoformat()}">{doc.date:%b %d, %Y}</div></div>
<div class="available-content"><div dir="auto" class="body markup">
{_letter_body(doc)}
</div></div>
<div class="post-footer"><a class="like-button">Like</a> <a class="share-button">Share</a></div>
</article>
<div class="footer"><p>© 2024 {esc(SECOND_AUTHOR.name)}</p></div>
</body></html>
"""


def _letters_home(letters: Sequence[SourceDocument]) -> str:
    rows = "\n".join(
        f'<div class="post-preview"><a href="{letter_path(d.slug)}">'
        f"{html.escape(d.title)}</a></div>"
        for d in letters
    )
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
        f"{html.escape(SECOND_AUTHOR.newsletter)}</title></head><body><h1>"
        f"{html.escape(SECOND_AUTHOR.newsletter)}</h1>\n{rows}\n</body></html>\n"
    )


def _letters_feed(letters: Sequence[SourceDocument]) -> str:
    items = "\n".join(
        f"<item><title><![CDATA[{d.title}]]></title><link>{absolute(letter_path(d.slug))}</link>"
        f"<pubDate>{format_datetime(d.date, usegmt=True)}</pubDate>"
        f"<content:encoded><![CDATA[{_letter_body(d)}]]></content:encoded></item>"
        for d in letters
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss xmlns:content="http://purl.org/rss/1.0/modules/content/" version="2.0"><channel>
<title>{html.escape(SECOND_AUTHOR.newsletter)}</title><link>{absolute(LETTERS)}</link>
<lastBuildDate>{format_datetime(BUILD_TIME, usegmt=True)}</lastBuildDate>
{items}
</channel></rss>
"""


def build_second_site(out_dir: Path) -> SiteManifest:
    """Render Ines's notes site and newsletter into `out_dir`; what a crawler should find."""
    out_dir = Path(out_dir).resolve()
    _prepare(out_dir)
    docs = load_second_documents()
    notes = [d for d in docs if d.platform == "blog"]
    letters = sorted(
        (d for d in docs if d.platform == "substack"), key=lambda d: d.date, reverse=True
    )
    writer = SiteWriter(out_dir)
    writer.page(
        "/",
        f"<!doctype html><html><body><h1>{html.escape(SECOND_AUTHOR.name)}</h1>"
        f"<p>{html.escape(SECOND_AUTHOR.bio)}</p></body></html>\n",
    )
    writer.page(
        "/robots.txt",
        f"User-agent: *\nDisallow: {NOTES}/search\n\nSitemap: {absolute(NOTES + '/sitemap.xml')}\n",
        content_type=TEXT,
    )
    writer.page(f"{NOTES}/", _notes_index(notes))
    writer.page(f"{NOTES}/sitemap.xml", _sitemap(notes), content_type=XML)
    for doc in notes:
        writer.page(note_path(doc), _note_page(doc), modified=doc.date)
    newest = letters[0].date if letters else None
    writer.page(f"{LETTERS}/", _letters_home(letters), modified=newest)
    writer.page(
        f"{LETTERS}/api/v1/archive",
        json.dumps(_archive(letters), indent=1, ensure_ascii=False) + "\n",
        content_type=JSON,
        modified=newest,
        paginate={"default_limit": 12, "max": 50},
    )
    writer.page(f"{LETTERS}/feed", _letters_feed(letters), content_type=RSS, modified=newest)
    for doc in letters:
        writer.page(letter_path(doc.slug), _letter_page(doc), modified=doc.date)
    writer.add_file(
        DESCRIPTION_FILE,
        json.dumps(
            {
                "author": SECOND_AUTHOR.name,
                "source_paths": SOURCE_PATHS,
                "prefixes": PREFIXES,
            },
            indent=1,
        )
        + "\n",
    )
    writer.write()

    def refs(platform: str, items: Sequence[SourceDocument], path) -> PlatformManifest:
        return PlatformManifest(
            platform=platform,
            entry_paths=SOURCE_PATHS[platform],
            expected_documents=len(items),
            documents=[
                DocumentRef(
                    key=d.key,
                    platform=d.platform,
                    kind=d.kind,
                    title=d.title,
                    slug=d.slug,
                    date=d.date,
                    url=path(d),
                    words=d.words,
                    tags=list(d.tags),
                )
                for d in items
            ],
        )

    manifest = SiteManifest(
        author=SECOND_AUTHOR.name,
        handle=SECOND_AUTHOR.handle,
        site_dir=out_dir,
        platforms={
            "blog": refs("blog", notes, note_path),
            "substack": refs("substack", letters, lambda d: letter_path(d.slug)),
        },
        repos=[],
        defects=[],
        disallowed_paths=[f"{NOTES}/search"],
        near_duplicates=[],
    )
    manifest.save()
    return manifest
