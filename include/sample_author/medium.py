"""Medium: a profile page, an RSS feed of the latest ten stories, and story pages.

Story URLs end in a 12-hex-digit id, as Medium's do; links from the feed and the profile carry
tracking query strings (`?source=...`) that a crawler should strip when canonicalising.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Sequence
from email.utils import format_datetime

from sample_author.blog import human_date
from sample_author.content import AUTHOR, SourceDocument
from sample_author.markup import markdown_to_html, summary
from sample_author.writer import BUILD_TIME, HTML, RSS, SiteWriter, absolute

FEED_LIMIT = 10
PREFIX = "/medium"
PROFILE_PATH = f"{PREFIX}/@{AUTHOR.handle}"
FEED_PATH = f"{PREFIX}/feed/@{AUTHOR.handle}"
BROKEN_FEED_PATH = f"{PREFIX}/feed/@broken-author"

_CLASSES = {
    "p": "pw-post-body-paragraph oc od gu oe b of og oh oi oj ok ol om on oo op",
    "h2": "pw-post-body-heading pq pr gu bf ps pt pu pv pw px py pz qa",
    "h3": "pw-post-body-heading qb qc gu bf qd qe qf",
    "ul": "",
    "ol": "",
    "li": "pw-post-body-paragraph oc od gu oe b of qg qh qi",
    "pre": "rf rg rh ri rj rk rl bp rm",
}


def story_id(slug: str) -> str:
    """Medium-style 12-hex-digit story id, stable per slug."""
    return hashlib.sha1(f"medium:{slug}".encode()).hexdigest()[:12]


def story_path(doc: SourceDocument) -> str:
    """Canonical site path of a story: /medium/@handle/<slug>-<id>."""
    return f"{PROFILE_PATH}/{doc.slug}-{story_id(doc.slug)}"


def _claps(slug: str) -> int:
    return 40 + int(hashlib.sha256(slug.encode()).hexdigest()[:4], 16) % 900


def render_story(doc: SourceDocument) -> str:
    """A story page with Medium's chrome: app banner, clap bar, footer and recommendations."""
    esc = html.escape
    path = story_path(doc)
    minutes = max(1, round(doc.words / 265))
    subtitle = (
        (
            f'<h2 id="{story_id(doc.slug)[:4]}" class="pw-subtitle-paragraph kq kr gu bf b '
            f'ks kt ku kv">{esc(doc.subtitle)}</h2>'
        )
        if doc.subtitle
        else ""
    )
    body = markdown_to_html(doc.body, _CLASSES)
    sid = story_id(doc.slug)
    ld_json = json.dumps(
        {
            "@context": "http://schema.org",
            "@type": "NewsArticle",
            "headline": doc.title,
            "datePublished": doc.date.isoformat(),
            "author": {"@type": "Person", "name": AUTHOR.name, "url": absolute(PROFILE_PATH)},
            "publisher": {"@type": "Organization", "name": "Medium"},
        },
        ensure_ascii=False,
    )
    tags = "".join(f'<a href="/medium/tag/{t}?source=post_page-----">{t}</a>' for t in doc.tags)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(doc.title)} | by {esc(AUTHOR.name)} | Medium</title>
<meta name="viewport" content="width=device-width,minimum-scale=1,initial-scale=1">
<meta name="description" content="{esc(doc.subtitle or summary(doc.body, 150))}">
<meta property="og:type" content="article">
<meta property="og:title" content="{esc(doc.title)}">
<meta property="og:url" content="{absolute(path)}">
<meta property="article:published_time" content="{doc.date.isoformat()}">
<meta name="author" content="{esc(AUTHOR.name)}">
<link rel="canonical" href="{absolute(path)}">
<link rel="author" href="{absolute(PROFILE_PATH)}">
<script type="application/ld+json">{ld_json}</script>
</head>
<body>
<div id="root">
<div class="a b c">
<div class="d e f g h i j k">
<div class="l m n o"><a href="/medium/" aria-label="Homepage">Medium</a>
<div class="ab"><a href="/medium/m/signin">Open in app</a> <a href="/medium/m/signin">Sign up</a>
<a href="/medium/m/signin">Sign in</a> <a href="/medium/new-story">Write</a></div></div>
</div>
<article>
<div class="l">
<section>
<div class="gn go gp gq gr">
<div class="ab ca"><div class="ch bg fw fx fy fz">
<div>
<h1 id="{story_id(doc.slug)[4:8]}" class="pw-post-title jt ju gu bf jv jw jx jy jz ka kb kc"
 data-testid="storyTitle" data-selectable-paragraph="">{esc(doc.title)}</h1>
</div>
{subtitle}
<div class="speechify-ignore ab cp">
<div class="ab q"><a data-testid="authorName"
 href="{PROFILE_PATH}?source=post_page-----{sid}--------------------------------"
 >{esc(AUTHOR.name)}</a>
<span> · </span><button class="follow-button">Follow</button></div>
<div class="ab q"><span data-testid="storyReadTime">{minutes} min read</span><span> · </span>
<span data-testid="storyPublishDate">{human_date(doc.date)}</span></div>
<div class="ab q"><button data-testid="headerClapButton" aria-label="clap">👏</button>
<p class="bf b"><button>{_claps(doc.slug)}</button></p>
<button aria-label="responses">{_claps(doc.slug) % 17}</button>
<button aria-label="Add to list">Save</button><button aria-label="Listen">Listen</button>
<button aria-label="Share">Share</button></div>
</div>
{body}
</div></div>
</div>
</section>
</div>
</article>
<footer class="ab cb">
<div class="post-footer">
<div><button data-testid="footerClapButton">👏 {_claps(doc.slug)}</button></div>
<div class="tags">{tags}</div>
<h2>Written by {esc(AUTHOR.name)}</h2>
<p>{esc(AUTHOR.headline)}</p>
<button>Follow</button>
<h2>Recommended from Medium</h2>
<ul class="recommended">
<li><a href="/medium/@someone-else/ten-vector-databases-compared-1a2b3c4d5e6f">Ten vector
databases compared (so you don't have to)</a> by Lars Nyberg</li>
<li><a href="/medium/@another-writer/why-your-rag-app-hallucinates-6f5e4d3c2b1a">Why your RAG
app hallucinates, and three fixes</a> by Maya Chen</li>
</ul>
<p><a href="/medium/about">About</a> <a href="/medium/help">Help</a>
<a href="/medium/terms">Terms</a> <a href="/medium/privacy">Privacy</a></p>
<p>Text to speech</p>
</div>
</footer>
</div>
</div>
</body>
</html>
"""


def render_profile(stories: Sequence[SourceDocument]) -> str:
    """The author's Medium profile: bio and every story, newest first."""
    esc = html.escape
    cards = []
    for n, doc in enumerate(stories):
        tracking = f"user_profile_page---------{n}-------------{story_id(doc.slug)}---------------"
        link = f"{story_path(doc)}?source={tracking}"
        cards.append(f"""<article data-testid="post-preview">
<a href="{link}"><h2>{esc(doc.title)}</h2><h3>{esc(doc.subtitle or "")}</h3></a>
<p>{esc(summary(doc.body, 140))}</p>
<span>{human_date(doc.date)}</span> · <span>{_claps(doc.slug)} claps</span>
</article>""")
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{esc(AUTHOR.name)} – Medium</title>
<link rel="canonical" href="{absolute(PROFILE_PATH)}">
<link rel="alternate" type="application/rss+xml" title="RSS" href="{absolute(FEED_PATH)}">
</head>
<body>
<div id="root">
<nav><a href="/medium/">Medium</a> <a href="/medium/m/signin">Sign in</a></nav>
<main>
<h1 class="pw-author-name">{esc(AUTHOR.name)}</h1>
<p class="pw-author-bio">{esc(AUTHOR.bio)}</p>
<p><span>1.2K Followers</span> · <button>Follow</button></p>
<div class="ab" role="tablist"><a href="{PROFILE_PATH}">Home</a>
<a href="{PROFILE_PATH}/about">About</a></div>
<section class="stories">
{chr(10).join(cards)}
</section>
</main>
</div>
</body>
</html>
"""


def render_feed(stories: Sequence[SourceDocument]) -> str:
    """RSS 2.0 like medium.com/feed/@user: the latest ten stories with full HTML bodies."""
    latest = sorted(stories, key=lambda d: d.date, reverse=True)[:FEED_LIMIT]
    items = []
    for doc in latest:
        sid = story_id(doc.slug)
        link = absolute(f"{story_path(doc)}?source=rss-{sid[:6]}------2")
        content = f"<h3>{html.escape(doc.title)}</h3>" + markdown_to_html(doc.body)
        cats = "".join(f"<category><![CDATA[{t}]]></category>" for t in doc.tags)
        items.append(f"""<item>
<title><![CDATA[{doc.title}]]></title>
<link>{html.escape(link)}</link>
<guid isPermaLink="false">{absolute(f"{PREFIX}/p/{sid}")}</guid>
{cats}
<dc:creator><![CDATA[{AUTHOR.name}]]></dc:creator>
<pubDate>{format_datetime(doc.date, usegmt=True)}</pubDate>
<atom:updated>{doc.date.isoformat().replace("+00:00", ".000Z")}</atom:updated>
<content:encoded><![CDATA[{content}]]></content:encoded>
</item>""")
    build = format_datetime(BUILD_TIME, usegmt=True)
    return f"""<?xml version="1.0" encoding="UTF-8"?><rss xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:content="http://purl.org/rss/1.0/modules/content/"
 xmlns:atom="http://www.w3.org/2005/Atom" version="2.0"
 xmlns:cc="http://cyber.law.harvard.edu/rss/creativeCommonsRssModule.html">
<channel>
<title><![CDATA[Stories by {AUTHOR.name} on Medium]]></title>
<description><![CDATA[Stories by {AUTHOR.name} on Medium]]></description>
<link>{absolute(PROFILE_PATH)}?source=rss-{story_id("profile")[:12]}------2</link>
<generator>Medium</generator>
<lastBuildDate>{build}</lastBuildDate>
<atom:link href="{absolute(FEED_PATH)}" rel="self" type="application/rss+xml"/>
<webMaster><![CDATA[yourfriends@medium.com]]></webMaster>
<atom:link href="http://medium.superfeedr.com" rel="hub"/>
{chr(10).join(items)}
</channel>
</rss>
"""


BROKEN_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
<title>Stories by Broken Author on Medium</title>
<item>
<title>Fish & chips & <unclosed tags</title>
<link>http://sample-author.invalid/medium/@broken-author/fish-and-chips-000000000000
<content:encoded><p>This feed was cut off by a misbehaving proxy
"""


def write_medium(writer: SiteWriter, stories: Sequence[SourceDocument]) -> None:
    """Write the profile, the feed, every story page, the broken feed and the redirects."""
    newest_first = sorted(stories, key=lambda d: (d.date, d.slug), reverse=True)
    newest = newest_first[0].date if newest_first else None
    writer.page(PROFILE_PATH, render_profile(newest_first), modified=newest)
    writer.redirect(PROFILE_PATH + "/", PROFILE_PATH, 301)
    writer.page(FEED_PATH, render_feed(newest_first), content_type=RSS, modified=newest)
    writer.page(BROKEN_FEED_PATH, BROKEN_FEED, content_type=RSS)
    for doc in newest_first:
        writer.page(story_path(doc), render_story(doc), content_type=HTML, modified=doc.date)
        # Medium resolves a story by slug alone and by /p/<id>, redirecting to the full URL.
        writer.redirect(f"{PROFILE_PATH}/{doc.slug}", story_path(doc), 301)
        writer.redirect(f"{PREFIX}/p/{story_id(doc.slug)}", story_path(doc), 301)
