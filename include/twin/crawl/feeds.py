"""Fetched feed bodies to parsed feeds (RSS, Atom), read as content and nothing else."""

from __future__ import annotations

import io

import feedparser


def parse_feed(body: bytes) -> feedparser.FeedParserDict:
    """The feed in `body`, parsed as a document.

    `feedparser.parse` takes a str or bytes argument for a URL or a file name first and opens
    it, so a fetched body reading `/etc/hostname` would parse that host file, and `/dev/zero` or
    a FIFO would never return. A stream is only ever read, so the body is handed over as one.
    """
    return feedparser.parse(io.BytesIO(body))
