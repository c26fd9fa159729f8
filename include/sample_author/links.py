"""The sample author's crawl sources and URL prefixes, for a server at a given base URL.

One source link per thing a crawler reads (a feed, an archive, a sitemap, an export, a
repository), as a user would configure a real author; and the URL prefix of each platform on the
single sample server, so the dispatcher can tell them apart (production platforms have their own
hosts and need no prefixes).
"""

from __future__ import annotations

SOURCE_PATHS: dict[str, list[str]] = {
    "linkedin": ["/linkedin/export/Basic_LinkedInDataExport.zip"],
    "medium": ["/medium/feed/@ada-lindqvist"],
    "substack": ["/substack/"],
    "github": ["/git/tidy-vectors.git", "/git/dagcheck.git"],
    "blog": ["/sitemap.xml"],
}
PREFIXES: dict[str, str] = {
    "/linkedin/": "linkedin",
    "/medium/": "medium",
    "/substack/": "substack",
    "/git/": "github",
    "/blog/": "blog",
    "/sitemap.xml": "blog",
}


def sample_links(base_url: str) -> dict[str, list[str]]:
    """Source links per platform for the sample server at `base_url`."""
    base = base_url.rstrip("/")
    return {platform: [base + path for path in paths] for platform, paths in SOURCE_PATHS.items()}


def sample_prefixes(base_url: str) -> dict[str, str]:
    """URL prefix → platform for the sample server at `base_url`."""
    base = base_url.rstrip("/")
    return {base + prefix: platform for prefix, platform in PREFIXES.items()}
