"""Pick the crawler for a URL. Platforms register themselves (`twin.crawl.registry`); adding one
touches no other."""

from __future__ import annotations

from twin.crawl.base import Crawler
from twin.crawl.registry import CRAWLERS
from twin.domain.documents import Platform


def crawler_for(
    url: str, platform: Platform | str | None = None, prefixes: dict[str, str] | None = None
) -> type[Crawler]:
    """The crawler for `url`: the named platform, else a configured URL prefix, else the first
    crawler whose URL patterns match, else the custom-article (blog) crawler."""
    load_crawlers()
    if platform:
        try:
            return CRAWLERS[Platform(platform)]
        except ValueError:
            known = ", ".join(p.value for p in Platform)
            raise ValueError(f"unknown platform {platform!r} for {url}; known: {known}") from None
    for prefix, name in sorted((prefixes or {}).items(), key=lambda kv: -len(kv[0])):
        if url.startswith(prefix):
            return crawler_for(url, name)
    for crawler in CRAWLERS.values():
        if crawler.platform is not Platform.BLOG and crawler.handles(url):
            return crawler
    return CRAWLERS[Platform.BLOG]


def load_crawlers() -> None:
    """Import the platform modules (each registers its crawler on import)."""
    from twin.crawl import blog, github, linkedin, medium, substack  # noqa: F401


# A small article: reading it loads what extraction loads on first use.
WARM_UP_PAGE = (
    "<html><head><title>Warm-up</title></head><body><article><h1>Warm-up</h1>"
    f"<p>{'A sentence that reads like an article. ' * 12}</p></article></body></html>"
)


def warm_up() -> None:
    """`load_crawlers`, then read one small page as the blog crawler does, so an extraction
    worker loads what trafilatura loads on its first page (its table of domain suffixes: about
    0.15 s of CPU) before the crawl's first page arrives."""
    load_crawlers()
    from twin.crawl.blog import read_article

    read_article(WARM_UP_PAGE, "https://example.com/warm-up/")
