"""The author's personal blog: paginated index, articles with site chrome, comments by readers.

Every article page carries the boilerplate a real blog has around the text: a cookie banner,
navigation, share buttons, a newsletter box, previous/next links and a comment section written by
other people. Only the `<div class="post-content">` is the author's writing.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sample_author.content import AUTHOR, SourceDocument
from sample_author.markup import markdown_to_html, summary
from sample_author.writer import SiteWriter, absolute

POSTS_PER_PAGE = 5
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class Comment:
    """A reader's comment; never the author's words."""

    name: str
    text: str


# Readers' comments. Some echo the author's phrases, which is exactly why they must be stripped.
COMMENT_POOL: tuple[Comment, ...] = (
    Comment(
        "Jonas Berg",
        "We had almost exactly this problem last year. The fix that stuck for "
        "us was a weekly reconciliation job, which I would now add to your list.",
    ),
    Comment(
        "Priya Raman",
        "Bookmarking this for our next design review. I wish more posts "
        "included the numbers before and after.",
    ),
    Comment(
        "Mikko Virtanen",
        "Respectfully disagree on one point: for our volumes a dedicated "
        "system was worth it from day one. But we had ten times your traffic.",
    ),
    Comment(
        "Sofia Almeida",
        "Ship the boring version first — couldn't agree more! Printing "
        "this one for the office wall.",
    ),
    Comment(
        "Tom Okafor",
        "How do you handle this when the upstream team is in a different "
        "company and does not answer tickets? Asking for a friend, the friend is me.",
    ),
    Comment(
        "Linnea Holm",
        "Great read on the train this morning. The checklist format makes it "
        "easy to steal, which I intend to do.",
    ),
    Comment(
        "Daniel Kowalski",
        "Small correction: the default changed again in the latest "
        "release, so check your version before copying the settings.",
    ),
    Comment(
        "Hanna Ek",
        "We tried the opposite approach and regretted it. Wish I had read this six months ago.",
    ),
    Comment(
        "Rafael Moreno",
        "Would love a follow-up on how this works with streaming data instead of daily batches.",
    ),
    Comment(
        "Emma Sjöberg",
        "Shared with my whole team. The part about writing things down is the one we needed most.",
    ),
    Comment(
        "Kenji Watanabe",
        "Do you have the evaluation numbers per question type? Curious "
        "whether the out-of-scope questions improved the most.",
    ),
    Comment(
        "Olivia Brandt",
        "This is the most practical thing I have read about the topic "
        "this year. Thank you for not trying to sell me a tool.",
    ),
)


def human_date(moment: datetime) -> str:
    """`2 June 2023`, independent of the process locale."""
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}"


def post_path(doc: SourceDocument) -> str:
    """Site path of a blog article."""
    if doc.defect == "draft":
        return f"/blog/drafts/{doc.slug}/"
    return f"/blog/{doc.slug}/"


def comments_for(slug: str) -> list[Comment]:
    """Zero to three readers' comments, chosen deterministically from the slug."""
    digest = hashlib.sha256(slug.encode()).digest()
    count = digest[0] % 4
    picks: list[Comment] = []
    for byte in digest[1:]:
        comment = COMMENT_POOL[byte % len(COMMENT_POOL)]
        if comment not in picks:
            picks.append(comment)
        if len(picks) == count:
            break
    return picks


def _page(
    title: str,
    canonical: str,
    body: str,
    *,
    description: str = "",
    og_type: str = "website",
    extra_head: str = "",
) -> str:
    esc = html.escape
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<meta name="description" content="{esc(description)}">
<meta name="author" content="{esc(AUTHOR.name)}">
<meta property="og:type" content="{og_type}">
<meta property="og:title" content="{esc(title)}">
<meta property="og:site_name" content="{esc(AUTHOR.name)}">
<link rel="canonical" href="{absolute(canonical)}">
<link rel="stylesheet" href="/blog/assets/site.css">
{extra_head}</head>
<body>
<div id="cookie-banner" class="cookie-banner" role="dialog" aria-label="Cookie consent">
<p>This site uses cookies to count which posts people read. No ads, no tracking across sites.</p>
<button class="cookie-accept">Accept all</button>
<button class="cookie-reject">Only necessary</button>
</div>
<header class="site-header">
<a class="site-title" href="/blog/">{esc(AUTHOR.name)}</a>
<nav class="site-nav">
<a href="/blog/">Blog</a>
<a href="/substack/">Newsletter</a>
<a href="/medium/@{AUTHOR.handle}">Medium</a>
<a href="/linkedin/in/{AUTHOR.handle}">LinkedIn</a>
</nav>
</header>
<main class="site-main">
{body}
</main>
<footer class="site-footer">
<p>© 2014–2024 {esc(AUTHOR.name)}. Opinions are my own, and occasionally my employer's too.</p>
<p><a href="/sitemap.xml">Sitemap</a></p>
</footer>
<script>
  /* minimal privacy-friendly page counter */
  window.addEventListener("load", function () {{
    document.querySelectorAll(".cookie-accept, .cookie-reject").forEach(function (b) {{
      b.addEventListener("click", function () {{
        document.getElementById("cookie-banner").remove();
      }});
    }});
  }});
</script>
</body>
</html>
"""


def _share_buttons(path: str, title: str) -> str:
    url = absolute(path)
    quoted = html.escape(url)
    return f"""<div class="share-buttons" aria-label="Share this post">
<span class="share-label">Share this post:</span>
<a class="share-linkedin" href="https://www.linkedin.com/sharing/share-offsite/?url={quoted}">LinkedIn</a>
<a class="share-x" href="https://x.com/intent/post?url={quoted}&amp;text={html.escape(title)}">X</a>
<a class="share-mail" href="mailto:?subject={html.escape(title)}&amp;body={quoted}">Email</a>
<button class="share-copy" data-url="{quoted}">Copy link</button>
</div>"""


def _comments_section(slug: str, published: datetime) -> str:
    comments = comments_for(slug)
    items = []
    for n, comment in enumerate(comments, 1):
        cid = int(hashlib.sha256(f"{slug}:{n}".encode()).hexdigest()[:6], 16)
        items.append(f"""<li class="comment" id="comment-{cid}">
<article class="comment-body">
<footer class="comment-meta">
<span class="comment-author vcard"><b class="fn">{html.escape(comment.name)}</b></span>
<time class="comment-date" datetime="{published.date().isoformat()}">{n + 1} days after
publication</time></footer>
<div class="comment-content"><p>{html.escape(comment.text)}</p></div>
<a class="comment-reply-link" href="#respond">Reply</a>
</article>
</li>""")
    heading = f"{len(comments)} comment{'s' if len(comments) != 1 else ''}"
    listing = f'<ol class="comment-list">\n{chr(10).join(items)}\n</ol>\n' if items else ""
    return f"""<section id="comments" class="comments-area">
<h2 class="comments-title">{heading}</h2>
{listing}<div id="respond" class="comment-respond">
<h3>Leave a comment</h3>
<form class="comment-form" action="/blog/comments/" method="post">
<label>Name <input name="author" required></label>
<label>Email (not published) <input name="email" type="email" required></label>
<label>Comment <textarea name="comment" required></textarea></label>
<button type="submit">Post comment</button>
</form>
</div>
</section>"""


def render_article(
    doc: SourceDocument,
    *,
    previous: SourceDocument | None = None,
    following: SourceDocument | None = None,
) -> str:
    """Full HTML page for one blog article, with all the site's boilerplate around it."""
    path = post_path(doc)
    minutes = max(1, round(doc.words / 230))
    tags = " ".join(f'<a class="tag" rel="tag" href="/blog/?tag={t}">#{t}</a>' for t in doc.tags)
    nav = []
    if previous is not None:
        nav.append(
            f'<a rel="prev" href="{post_path(previous)}">← {html.escape(previous.title)}</a>'
        )
    if following is not None:
        nav.append(
            f'<a rel="next" href="{post_path(following)}">{html.escape(following.title)} →</a>'
        )
    published = doc.date.isoformat()
    body = f"""<article class="post h-entry">
<header class="post-header">
<h1 class="post-title p-name">{html.escape(doc.title)}</h1>
<p class="post-meta"><time class="dt-published" datetime="{published}">{human_date(doc.date)}</time>
· {minutes} min read · <span class="p-author">{html.escape(AUTHOR.name)}</span></p>
<p class="post-tags">{tags}</p>
</header>
<div class="post-content e-content">
{markdown_to_html(doc.body, {"pre": "highlight"})}
</div>
<footer class="post-footer">
{_share_buttons(path, doc.title)}
<nav class="post-nav">{" ".join(nav)}</nav>
</footer>
</article>
<aside class="newsletter-box">
<h2>Get {html.escape(AUTHOR.newsletter)} by email</h2>
<p>One letter about building data and ML platforms, twice a month. Unsubscribe any time.</p>
<form action="/substack/subscribe" method="post">
<input type="email" name="email" placeholder="you@example.com"><button>Subscribe</button></form>
</aside>
{_comments_section(doc.slug, doc.date)}"""
    head = f'<meta property="article:published_time" content="{published}">\n' + "".join(
        f'<meta property="article:tag" content="{t}">\n' for t in doc.tags
    )
    return _page(
        f"{doc.title} · {AUTHOR.name}",
        path,
        body,
        description=summary(doc.body, 155),
        og_type="article",
        extra_head=head,
    )


def index_path(page: int) -> str:
    """Site path of page `page` (1-based) of the blog index."""
    return "/blog/" if page == 1 else f"/blog/page/{page}/"


def render_index(posts: Sequence[SourceDocument], page: int, pages: int) -> str:
    """One page of the blog index: newest first, with summaries and pagination links."""
    cards = []
    for doc in posts:
        cards.append(f"""<article class="post-card">
<h2 class="post-card-title"><a href="{post_path(doc)}">{html.escape(doc.title)}</a></h2>
<p class="post-card-meta"><time datetime="{doc.date.isoformat()}">{human_date(doc.date)}</time></p>
<p class="post-card-summary">{html.escape(summary(doc.body))}</p>
<a class="read-more" href="{post_path(doc)}">Read more</a>
</article>""")
    links = []
    if page > 1:
        links.append(f'<a class="newer" rel="prev" href="{index_path(page - 1)}">Newer posts</a>')
    links.append(f'<span class="page-number">Page {page} of {pages}</span>')
    if page < pages:
        links.append(f'<a class="older" rel="next" href="{index_path(page + 1)}">Older posts</a>')
    body = f"""<h1 class="page-title">Notes on data platforms</h1>
<p class="page-intro">Checklists, half-finished ideas and notes from the train.</p>
<section class="post-list">
{chr(10).join(cards)}
</section>
<nav class="pagination">{" ".join(links)}</nav>"""
    title = f"Blog · {AUTHOR.name}" + (f" · page {page}" if page > 1 else "")
    return _page(title, index_path(page), body, description=AUTHOR.bio)


def render_error_page(status: int, reason: str) -> str:
    """A server error page, as a misconfigured CMS would show it."""
    return f"""<!DOCTYPE html>
<html><head><title>{status} {reason}</title></head>
<body><h1>{reason}</h1>
<p>The server encountered an internal error and was unable to complete your request.</p>
<hr><address>nginx</address></body></html>
"""


def truncate_mid_tag(page: str) -> bytes:
    """The page's UTF-8 bytes, cut inside the second heading tag of the article body."""
    data = page.encode("utf-8")
    content = data.find(b'<div class="post-content')
    heading = data.find(b"<h2>", data.find(b"<h2>", content) + 1)
    return data[: heading + 3]  # ends in "<h2": an unfinished tag


def write_blog(
    writer: SiteWriter, posts: Sequence[SourceDocument], special: Sequence[SourceDocument]
) -> list[str]:
    """Render the index, every listed post, drafts and broken-on-purpose article pages.

    `posts` are listed in the index (newest first); `special` are drafts and truncated pages,
    reachable only through the sitemap. Returns every article and index path written.
    """
    ordered = sorted(posts, key=lambda d: (d.date, d.slug), reverse=True)
    paths: list[str] = []
    pages = max(1, -(-len(ordered) // POSTS_PER_PAGE))
    for page in range(1, pages + 1):
        chunk = ordered[(page - 1) * POSTS_PER_PAGE : page * POSTS_PER_PAGE]
        modified = max((d.date for d in chunk), default=None)
        writer.page(index_path(page), render_index(chunk, page, pages), modified=modified)
        paths.append(index_path(page))
    for i, doc in enumerate(ordered):
        newer = ordered[i - 1] if i > 0 else None
        older = ordered[i + 1] if i + 1 < len(ordered) else None
        page_html = render_article(doc, previous=older, following=newer)
        behaviour: dict[str, object] = {}
        body: str | bytes = page_html
        if doc.defect == "flaky":
            behaviour["fail_first"] = {"status": 429, "retry_after": 1}
        elif doc.defect == "unstable":
            behaviour["fail_first"] = {"status": 503, "retry_after": 1}
        elif doc.defect == "wrong-charset":
            # The header will claim UTF-8; the bytes are Windows-1252.
            body = page_html.encode("cp1252", errors="xmlcharrefreplace")
        writer.page(post_path(doc), body, modified=doc.date, **behaviour)
        paths.append(post_path(doc))
    for doc in special:
        page_html = render_article(doc)
        body = truncate_mid_tag(page_html) if doc.defect == "truncated" else page_html
        writer.page(post_path(doc), body, modified=doc.date)
        paths.append(post_path(doc))
    for doc in ordered:
        for alias in doc.aliases:
            writer.redirect(alias, post_path(doc), 301)
    writer.page("/blog/broken-500/", render_error_page(500, "Internal Server Error"), status=500)
    writer.redirect("/blog/loop-a/", "/blog/loop-b/", 302)
    writer.redirect("/blog/loop-b/", "/blog/loop-a/", 302)
    writer.redirect("/blog/go-internal/", "http://169.254.169.254/latest/meta-data/", 302)
    writer.redirect("/blog/go-private/", "http://10.0.0.1/secret", 302)
    writer.generated("/blog/huge/", generate="huge")
    writer.add_file(
        "blog/assets/site.css",
        "body{font-family:Georgia,serif;max-width:42rem;"
        "margin:auto}.cookie-banner{position:fixed;bottom:0}\n",
    )
    return paths
