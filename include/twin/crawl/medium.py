"""Medium: an author's stories, listed by the RSS feed and the profile page, read from each page.

Given a profile (`medium.com/@user`, `user.medium.com`), its feed (`medium.com/feed/@user`) or
one story URL, the crawler returns one ARTICLE document per story:

1. Listing. The feed (`/feed/@user`) carries the latest stories with their full HTML
   (`content:encoded`), but Medium caps it at 10; the profile page links older ones. Both are
   read. A story is identified by its id (the hex suffix of its URL), so the same story linked
   with different `?source=` tracking queries is one item. A malformed feed is a failure
   ("malformed feed: ...") and the profile still lists what it can.
2. Each story page is fetched with a conditional GET (a 304 is recorded as not modified and
   nothing is parsed). The text is the page's `<article>` as markdown, without the title
   (`h1[data-testid=storyTitle]`), subtitle, byline and clap/follow/share bar
   (`.speechify-ignore`), and without the footer, tags and "Recommended from Medium" (other
   people's stories), which sit outside the article or in its chrome.
3. When the story page cannot be fetched (Medium answers crawlers with 403 at times) or holds no
   article text, a story the feed carries is taken from the feed's `content:encoded` instead
   (metadata `text_source=feed`, the page's error in `page_error`); otherwise the page's
   failure stands.

The document URL is the story URL without its query (Medium's queries are all tracking), or the
page's `<link rel=canonical>` when that is on the same site. `listing_complete` is set only when
the feed and the profile were both read and together they plausibly list everything: the feed
is not full (fewer than 10 stories), or the profile lists more stories than the feed. Medium
renders older stories with JavaScript, so a profile page is not always the whole list, and a
listing wrongly called complete would mark live stories deleted.

Besides medium.com and its subdomains, the crawler claims any `/@user` or `/feed/@user` path
(Medium on a custom domain, or mirrored under a prefix as the bundled sample author is); a
link on such a path that is not Medium (a Mastodon profile) needs its platform named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import feedparser
from lxml import html as lxml_html

from twin.crawl.base import Crawler, CrawlOutcome, ItemFailure
from twin.crawl.dates import feed_entry_date, parse_date
from twin.crawl.fanout import archive_page, crawl_items, merge_outcome, read_page, reject
from twin.crawl.feeds import parse_feed
from twin.crawl.markdown import fragment_to_markdown, html_to_markdown
from twin.crawl.pages import (
    FEED_TYPES,
    HTML_TYPES,
    canonical_link,
    class_is,
    first,
    meta_content,
    node_text,
    parse_html,
    published_date,
    strip_title_suffix,
    without,
)
from twin.crawl.registry import register
from twin.crawl.urls import canonical_url, same_site
from twin.domain.documents import DocumentKind, Platform, RawDocument

FEED_LIMIT = 10  # Medium's feeds hold the latest 10 stories
STORY_ID = re.compile(r"(?:^|-)([0-9a-f]{8,12})$")
# Feed parse problems that still leave a well-formed feed.
BENIGN_FEED_ERRORS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
# Story chrome inside <article>: title and subtitle (kept as fields), byline, claps, buttons.
STORY_CHROME = (
    "//*[@data-testid='storyTitle']",
    "//h1[contains(@class, 'pw-post-title')]",
    "//*[contains(@class, 'pw-subtitle-paragraph')]",
    f"//*[{class_is('speechify-ignore')}]",
    "//*[@data-testid and contains(@data-testid, 'Button')]",
    "//*[@data-testid='authorName' or @data-testid='storyReadTime'"
    " or @data-testid='storyPublishDate' or @data-testid='authorPhoto']",
    "//footer",
    "//nav",
    "//aside",
    "//*[@role='toolbar']",
)


@dataclass
class Story:
    """One story found in the listing; feed fields are empty for profile-only stories."""

    url: str
    story_id: str | None
    title: str = ""
    published_at: datetime | None = None
    feed_html: str = ""
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    """Where a Medium link's listing lives: its profile page, its feed, or one story."""

    profile: str | None
    feed: str | None
    user: str | None  # "@name", when the profile is a user's
    story: str | None = None


def story_id(url: str) -> str | None:
    """The hex id at the end of a story URL (`.../slug-2a8b7a429c6d`, `/p/2a8b7a429c6d`)."""
    last = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    match = STORY_ID.search(last)
    return match.group(1) if match else None


def medium_source(url: str) -> Source:
    """The profile, feed and (for a story link) story URL that `url` stands for."""
    parts = urlsplit(canonical_url(url, keep_query=False))
    path = parts.path.rstrip("/")

    def at(p: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, p or "/", "", ""))

    if match := re.fullmatch(r"(.*)/feed(/.*)?", path):
        prefix, rest = match.group(1), match.group(2) or ""
        user = rest[1:] if rest.startswith("/@") else None
        return Source(profile=at(prefix + rest), feed=at(path), user=user)
    if match := re.fullmatch(r"(.*?)/(@[^/]+)(/[^/]+)?", path):
        prefix, user, rest = match.groups()
        profile, feed = at(f"{prefix}/{user}"), at(f"{prefix}/feed/{user}")
        if rest and story_id(rest):
            return Source(profile=profile, feed=feed, user=user, story=at(path))
        return Source(profile=profile, feed=feed, user=user)
    last = path.rsplit("/", 1)[-1]
    if story_id(path) and ("-" in last or path.endswith(f"/p/{last}")):
        return Source(profile=None, feed=None, user=None, story=at(path))
    # A publication (`medium.com/pub`) or a user subdomain (`user.medium.com`).
    return Source(profile=at(path), feed=at("/feed" + path), user=None)


@register
class MediumCrawler(Crawler):
    """Medium profiles, feeds and stories; see the module docstring."""

    platform = Platform.MEDIUM
    url_patterns = (
        r"^https?://(www\.)?medium\.com/",
        r"^https?://[^/]+\.medium\.com(/|$)",
        r"/feed/@[^/?#]+",
        r"/@[^/?#]+",
    )

    def crawl(self, url: str) -> CrawlOutcome:
        """Documents for every story the link lists; see the module docstring."""
        outcome = CrawlOutcome()
        source = medium_source(url)
        if source.story:
            stories = [Story(url=source.story, story_id=story_id(source.story))]
            complete = False
        else:
            stories, complete = self._listing(source, outcome)
        part = crawl_items(self, stories, lambda s, out: self._story(s, url, out), lambda s: s.url)
        merge_outcome(outcome, part)
        outcome.listing_complete = complete
        return outcome

    # listing -------------------------------------------------------------------------------
    def _listing(self, source: Source, outcome: CrawlOutcome) -> tuple[list[Story], bool]:
        """Stories from the feed, then those only the profile links; and whether that is all."""
        feed_stories, feed_ok = self._feed(source.feed, outcome) if source.feed else ([], False)
        profile_links, profile_ok = (
            self._profile(source, outcome) if source.profile else ([], False)
        )
        stories: dict[str, Story] = {}
        for story in feed_stories:
            stories.setdefault(story.story_id or story.url, story)
        for link in profile_links:
            stories.setdefault(story_id(link) or link, Story(url=link, story_id=story_id(link)))
        complete = (
            feed_ok
            and profile_ok
            and (len(feed_stories) < FEED_LIMIT or len(profile_links) > len(feed_stories))
        )
        return list(stories.values()), complete

    def _feed(self, feed_url: str, outcome: CrawlOutcome) -> tuple[list[Story], bool]:
        """The feed's stories, and whether the feed was read cleanly."""
        result = self.fetch(feed_url, outcome, accept=FEED_TYPES)
        if result is None:
            return [], False
        parsed = parse_feed(result.content)
        error = parsed.get("bozo_exception")
        ok = not (parsed.get("bozo") and not isinstance(error, BENIGN_FEED_ERRORS))
        if not ok:
            outcome.failures.append(ItemFailure(feed_url, f"malformed feed: {error}"))
        elif not parsed.get("version") and not parsed.entries:
            outcome.failures.append(ItemFailure(feed_url, "malformed feed: not RSS or Atom"))
            ok = False
        stories = []
        for entry in parsed.entries:
            link = entry.get("link")
            if not link:
                continue
            url = canonical_url(link, feed_url, keep_query=False)
            if self.refused(url, outcome):
                continue
            content = entry.get("content") or []
            stories.append(
                Story(
                    url=url,
                    story_id=story_id(url) or story_id(entry.get("id", "")),
                    title=(entry.get("title") or "").strip(),
                    published_at=feed_entry_date(entry),
                    feed_html=content[0].get("value", "") if content else "",
                    tags=[t.get("term", "") for t in entry.get("tags", []) if t.get("term")],
                )
            )
        return stories, ok

    def _profile(self, source: Source, outcome: CrawlOutcome) -> tuple[list[str], bool]:
        """Story links on the profile page (this author's only), and whether it was read."""
        assert source.profile is not None
        result = self.fetch(source.profile, outcome, accept=HTML_TYPES)
        if result is None:
            return [], False
        tree = parse_html(result.text())
        if tree is None:
            outcome.failures.append(ItemFailure(source.profile, "empty profile page"))
            return [], False
        links: list[str] = []
        for href in tree.xpath("//a/@href"):
            url = canonical_url(href, result.final_url, keep_query=False)
            if not same_site(url, source.profile) or not story_id(url):
                continue
            path = urlsplit(url).path
            if source.user and f"/{source.user}/" not in path:
                continue  # recommendations and other writers' stories
            if url not in links:
                links.append(url)
        return links, True

    # stories -------------------------------------------------------------------------------
    def _story(self, story: Story, source_url: str, out: CrawlOutcome) -> RawDocument | None:
        """The story's document from its page (or the feed, see the module docstring)."""
        result = self.fetch(story.url, out, conditional=True, accept=HTML_TYPES)
        if result is None:
            if story.url in out.not_modified or not story.feed_html:
                return None
            return self._from_feed(story, source_url, page_error=out.failures.pop().reason)
        page, problem = read_page(self, result, read_story_page)
        if page is None:
            problem = problem or "no article text found in the story page"
            if story.feed_html:
                out.validators.pop(story.url, None)  # try the page again next time
                return self._from_feed(story, source_url, page_error=problem)
            reject(out, story.url, problem)
            return None
        return self.document(
            DocumentKind.ARTICLE,
            url=page.url,
            title=page.title or story.title,
            text=page.body,
            published_at=page.published_at or story.published_at or page.byline_date,
            source_url=source_url,
            raw_key=archive_page(self, page.url, result.content, ".html"),
            metadata=_metadata(story, page.subtitle, story.tags or page.tags, "page"),
        )

    def _from_feed(self, story: Story, source_url: str, *, page_error: str) -> RawDocument | None:
        text = feed_text(story.feed_html, story.title)
        if not text:
            return None
        metadata = _metadata(story, "", story.tags, "feed")
        metadata["page_error"] = page_error
        return self.document(
            DocumentKind.ARTICLE,
            url=story.url,
            title=story.title,
            text=text,
            published_at=story.published_at,
            source_url=source_url,
            raw_key=archive_page(self, story.url, story.feed_html.encode(), ".html"),
            metadata=metadata,
        )


@dataclass(frozen=True)
class StoryPage:
    """What a story page says: its text as markdown and the fields around it."""

    url: str
    title: str
    body: str
    subtitle: str
    tags: list[str]
    published_at: datetime | None
    byline_date: datetime | None


def read_story_page(text: str, final_url: str) -> StoryPage | None:
    """The story in the page `text` fetched from `final_url`; None when it holds no article
    text (pure: runs in worker processes)."""
    tree = parse_html(text)
    body = medium_body(tree) if tree is not None else ""
    if tree is None or not body:
        return None
    return StoryPage(
        url=canonical_link(tree, final_url) or canonical_url(final_url, keep_query=False),
        title=story_title(tree),
        body=body,
        subtitle=node_text(first(tree.xpath("//*[contains(@class, 'pw-subtitle-paragraph')]"))),
        tags=[node_text(a) for a in tree.xpath("//a[contains(@href, '/tag/')]") if node_text(a)],
        published_at=published_date(tree),
        byline_date=page_date(tree),
    )


def _metadata(story: Story, subtitle: str, tags: list[str], text_source: str) -> dict:
    metadata: dict = {"text_source": text_source, "tags": sorted(set(tags))}
    if story.story_id:
        metadata["story_id"] = story.story_id
    if subtitle:
        metadata["subtitle"] = subtitle
    return metadata


def story_title(tree: lxml_html.HtmlElement) -> str:
    """The story's title: its `storyTitle` heading, else og:title / <title> without suffixes."""
    heading = first(
        tree.xpath("//h1[@data-testid='storyTitle']")
        or tree.xpath("//h1[contains(@class, 'pw-post-title')]")
        or tree.xpath("//article//h1")
    )
    if text := node_text(heading):
        return text
    title = meta_content(tree, "og:title", "twitter:title") or node_text(
        first(tree.xpath("//title"))
    )
    author = meta_content(tree, "author")
    return strip_title_suffix(strip_title_suffix(title, "Medium"), f"by {author}" if author else "")


def medium_body(tree: lxml_html.HtmlElement) -> str:
    """The story text as markdown: the `<article>` without its chrome (see module docstring)."""
    article = first(tree.xpath("//article"))
    if article is None:
        return ""
    return html_to_markdown(without(article, STORY_CHROME))


def page_date(tree: lxml_html.HtmlElement) -> datetime | None:
    """The date in the story's byline ("16 January 2024"), when no meta tag carries one."""
    return parse_date(node_text(first(tree.xpath("//*[@data-testid='storyPublishDate']"))))


def feed_text(html: str, title: str) -> str:
    """Markdown of a feed item's `content:encoded`, without the repeated title and the
    "was originally published in" trailer Medium appends."""
    text = fragment_to_markdown(html)
    lines = text.split("\n")
    while lines and (not lines[0].strip() or lines[0].lstrip("#").strip() == title.strip()):
        lines.pop(0)
    text = "\n".join(lines)
    text = re.sub(r"\n*(?:---\n+)?[^\n]*was originally published in[^\n]*$", "", text.strip())
    return text.strip()
