"""Substack: home page, archive JSON API (paginated by the server), RSS feed and post pages.

Post bodies include the subscribe widgets Substack injects into the text; the archive also lists
one discussion thread (`type: "thread"`) that is not an article.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Sequence
from email.utils import format_datetime

from sample_author.blog import human_date
from sample_author.content import AUTHOR, SourceDocument, parse_date
from sample_author.markup import parse_blocks, render_blocks, summary
from sample_author.writer import BUILD_TIME, HTML, JSON, RSS, SiteWriter, absolute

PREFIX = "/substack"
ARCHIVE_PATH = f"{PREFIX}/api/v1/archive"
FEED_PATH = f"{PREFIX}/feed"
PUBLICATION_ID = 1843207
THREAD = {
    "slug": "open-thread-whats-in-your-stack",
    "title": "Open thread: what's in your stack?",
    "subtitle": "Tell everyone what you run, and what you would remove tomorrow",
    "date": "2024-06-28T07:00:00",
}
SUBSCRIBE_WIDGET = f"""<div class="subscription-widget-wrap-editor"
 data-attrs='{{"url":"{absolute(PREFIX)}/subscribe?","text":"Subscribe"}}'>
<div class="subscription-widget show-subscribe"><div class="preamble">
<p class="cta-caption">Thanks for reading {AUTHOR.newsletter}! Subscribe for free to receive new
posts and support my work.</p></div>
<form class="subscription-widget-subscribe">
<input type="email" class="email-input" name="email" placeholder="Type your email…" tabindex="-1">
<input type="submit" class="button primary" value="Subscribe"></form></div></div>"""


def post_path(slug: str) -> str:
    """Site path of a post: /substack/p/<slug>."""
    return f"{PREFIX}/p/{slug}"


def post_id(slug: str) -> int:
    """Stable numeric post id."""
    return 140_000_000 + int(hashlib.sha256(slug.encode()).hexdigest()[:6], 16) % 9_000_000


def _iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def body_html(doc: SourceDocument) -> str:
    """Post body as Substack renders it, with a subscribe widget after the third block."""
    blocks = parse_blocks(doc.body)
    head, tail = blocks[:3], blocks[3:]
    parts = [render_blocks(head, heading_offset=1)]
    if tail:
        parts += [SUBSCRIBE_WIDGET, render_blocks(tail, heading_offset=1)]
    return "\n".join(parts)


def _archive_entry(slug: str, title: str, subtitle: str, date, kind: str, words: int) -> dict:
    return {
        "id": post_id(slug),
        "publication_id": PUBLICATION_ID,
        "title": title,
        "social_title": title,
        "slug": slug,
        "post_date": _iso(date),
        "audience": "everyone",
        "canonical_url": absolute(post_path(slug)),
        "subtitle": subtitle,
        "description": subtitle,
        "type": kind,
        "wordcount": words,
        "reactions": {"❤": 10 + post_id(slug) % 90},
        "comment_count": post_id(slug) % 23,
        "publishedBylines": [{"id": 9_211_004, "name": AUTHOR.name, "handle": AUTHOR.handle}],
    }


def archive_entries(posts: Sequence[SourceDocument]) -> list[dict]:
    """All archive entries, newest first, including the discussion thread."""
    entries = [
        _archive_entry(d.slug, d.title, d.subtitle or "", d.date, "newsletter", d.words)
        for d in posts
    ]
    entries.append(
        _archive_entry(
            THREAD["slug"],
            THREAD["title"],
            THREAD["subtitle"],
            parse_date(THREAD["date"]),
            "thread",
            0,
        )
    )
    return sorted(entries, key=lambda e: (e["post_date"], e["slug"]), reverse=True)


def _chrome(title: str, canonical: str, main: str, description: str = "") -> str:
    esc = html.escape
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(title)}</title>
<meta name="description" content="{esc(description)}">
<meta property="og:site_name" content="{esc(AUTHOR.newsletter)}">
<link rel="canonical" href="{absolute(canonical)}">
<link rel="alternate" type="application/rss+xml" href="{absolute(FEED_PATH)}"
 title="{esc(AUTHOR.newsletter)}">
<script>window._preloads = {{"pub":{{"id":{PUBLICATION_ID},
"name":"{esc(AUTHOR.newsletter)}"}}}}</script>
</head>
<body class="pc-root">
<div class="topbar"><a class="navbar-title-link" href="{PREFIX}/">{esc(AUTHOR.newsletter)}</a>
<div class="navbar-buttons"><a class="button primary" href="{PREFIX}/subscribe">Subscribe</a>
<a class="button" href="{PREFIX}/sign-in">Sign in</a></div></div>
{main}
<div class="footer-wrap"><div class="footer"><p>© 2024 {esc(AUTHOR.name)}</p>
<p><a href="https://substack.com/privacy">Privacy</a> ∙ <a href="https://substack.com/tos">Terms</a>
∙ <a href="https://substack.com/ccpa#personal-data-collected">Collection notice</a></p>
<p><a href="https://substack.com/signup">Start writing</a>
<a href="https://substack.com/app">Get the app</a></p>
<p>Substack is the home for great culture</p></div></div>
</body>
</html>
"""


def render_post(doc: SourceDocument) -> str:
    """Post page with header, body, in-body subscribe widget, likes and share buttons."""
    esc = html.escape
    subtitle = f'<h3 class="subtitle">{esc(doc.subtitle)}</h3>' if doc.subtitle else ""
    likes, comments = 10 + post_id(doc.slug) % 90, post_id(doc.slug) % 23
    main = f"""<div class="single-post-container"><div class="container"><div class="single-post">
<article class="typography newsletter-post post">
<div class="post-header">
<h1 class="post-title published">{esc(doc.title)}</h1>
{subtitle}
<div class="post-meta"><div class="profile-hover-card-target">
<a href="{PREFIX}/">{esc(AUTHOR.name)}</a></div>
<div class="post-date" title="{doc.date.isoformat()}">{human_date(doc.date)}</div></div>
<div class="post-ufi"><a class="like-button">{likes}</a><a class="comment-button">{comments}</a>
<a class="restack-button">Restack</a><a class="share-button">Share</a></div>
</div>
<div class="available-content"><div dir="auto" class="body markup">
{body_html(doc)}
</div></div>
<div class="visibility-check"></div>
<div class="subscribe-footer">{SUBSCRIBE_WIDGET}</div>
<div class="post-footer"><a class="like-button">Like</a> <a class="comment-button">Comment</a>
<a class="restack-button">Restack</a> <a class="share-button">Share</a></div>
</article>
<div class="comments-section"><h4>Discussion about this post</h4>
<p class="comments-placeholder">Comments are visible to paid subscribers.</p></div>
</div></div></div>"""
    return _chrome(
        f"{doc.title} - by {AUTHOR.name}",
        post_path(doc.slug),
        main,
        doc.subtitle or summary(doc.body, 150),
    )


def render_thread() -> str:
    """The discussion-thread page: a prompt and a comment box, no article body."""
    main = f"""<div class="single-post-container"><div class="container"><div class="single-post">
<article class="typography thread-post post">
<div class="post-header"><h1 class="post-title published">{html.escape(THREAD["title"])}</h1>
<h3 class="subtitle">{html.escape(THREAD["subtitle"])}</h3></div>
<div class="comments-section"><h4>Discussion</h4>
<p>Join the conversation: comments are open to everyone this week.</p></div>
</article></div></div></div>"""
    return _chrome(f"{THREAD['title']} - {AUTHOR.newsletter}", post_path(THREAD["slug"]), main)


def render_home(posts: Sequence[SourceDocument]) -> str:
    """Publication home: description, subscribe form and the latest posts."""
    esc = html.escape
    rows = "\n".join(
        f'<div class="post-preview"><a class="post-preview-title" href="{post_path(d.slug)}">'
        f'{esc(d.title)}</a><div class="post-preview-description">{esc(d.subtitle or "")}</div>'
        f'<time datetime="{d.date.isoformat()}">{human_date(d.date)}</time></div>'
        for d in posts
    )
    main = f"""<div class="homepage"><div class="publication-hero">
<h1 class="publication-name">{esc(AUTHOR.newsletter)}</h1>
<p class="publication-tagline">Pipelines you can rerun on a Tuesday. By {esc(AUTHOR.name)}.</p>
{SUBSCRIBE_WIDGET}</div>
<div class="portable-archive"><div class="portable-archive-list">
{rows}
</div><a href="{PREFIX}/archive">See all</a></div></div>"""
    return _chrome(AUTHOR.newsletter, f"{PREFIX}/", main, AUTHOR.bio)


def render_feed(posts: Sequence[SourceDocument]) -> str:
    """RSS 2.0 feed with full `content:encoded` bodies, newest first (threads excluded)."""
    items = []
    for doc in posts:
        link = absolute(post_path(doc.slug))
        items.append(f"""<item><title><![CDATA[{doc.title}]]></title>
<description><![CDATA[{doc.subtitle or ""}]]></description>
<link>{link}</link><guid isPermaLink="false">{link}</guid>
<dc:creator><![CDATA[{AUTHOR.name}]]></dc:creator>
<pubDate>{format_datetime(doc.date, usegmt=True)}</pubDate>
<enclosure url="{absolute(PREFIX)}/img/{doc.slug}.png" length="0" type="image/png"/>
<content:encoded><![CDATA[{body_html(doc)}]]></content:encoded></item>""")
    mailbox = "theboringpipeline@substack.com"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:content="http://purl.org/rss/1.0/modules/content/"
 xmlns:atom="http://www.w3.org/2005/Atom" version="2.0"
 xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"
 xmlns:googleplay="http://www.google.com/schemas/play-podcasts/1.0"><channel>
<title><![CDATA[{AUTHOR.newsletter}]]></title>
<description><![CDATA[Pipelines you can rerun on a Tuesday.]]></description>
<link>{absolute(PREFIX)}</link><generator>Substack</generator>
<lastBuildDate>{format_datetime(BUILD_TIME, usegmt=True)}</lastBuildDate>
<atom:link href="{absolute(FEED_PATH)}" rel="self" type="application/rss+xml"/>
<copyright><![CDATA[{AUTHOR.name}]]></copyright><language><![CDATA[en]]></language>
<webMaster><![CDATA[{mailbox}]]></webMaster>
<itunes:owner><itunes:email><![CDATA[{mailbox}]]></itunes:email>
<itunes:name><![CDATA[{AUTHOR.name}]]></itunes:name></itunes:owner>
{chr(10).join(items)}
</channel></rss>
"""


def write_substack(writer: SiteWriter, posts: Sequence[SourceDocument]) -> None:
    """Write home, archive page, archive API data, per-post API, feed and post pages."""
    newest_first = sorted(posts, key=lambda d: (d.date, d.slug), reverse=True)
    newest = newest_first[0].date if newest_first else None
    writer.page(f"{PREFIX}/", render_home(newest_first[:5]), modified=newest)
    writer.page(f"{PREFIX}/archive", render_home(newest_first), modified=newest)
    entries = archive_entries(newest_first)
    writer.page(
        ARCHIVE_PATH,
        json.dumps(entries, indent=1, ensure_ascii=False) + "\n",
        content_type=JSON,
        modified=newest,
        paginate={"default_limit": 12, "max": 50},
    )
    writer.page(FEED_PATH, render_feed(newest_first), content_type=RSS, modified=newest)
    for doc in newest_first:
        writer.page(post_path(doc.slug), render_post(doc), content_type=HTML, modified=doc.date)
        entry = next(e for e in entries if e["slug"] == doc.slug)
        api = {**entry, "body_html": body_html(doc), "truncated_body_text": summary(doc.body)}
        writer.page(
            f"{PREFIX}/api/v1/posts/{doc.slug}",
            json.dumps(api, indent=1, ensure_ascii=False) + "\n",
            content_type=JSON,
            modified=doc.date,
        )
    writer.page(post_path(THREAD["slug"]), render_thread(), modified=parse_date(THREAD["date"]))
