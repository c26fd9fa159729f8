"""The registry of platform crawlers: each platform module registers its crawler class here on
import, and the dispatcher (`twin.crawl.dispatch`) picks from it."""

from __future__ import annotations

from twin.crawl.base import Crawler
from twin.domain.documents import Platform

CRAWLERS: dict[Platform, type[Crawler]] = {}


def register(crawler: type[Crawler]) -> type[Crawler]:
    """Class decorator: make a crawler available to the dispatcher."""
    CRAWLERS[crawler.platform] = crawler
    return crawler
