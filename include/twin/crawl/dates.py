"""One date parser for every crawler: ISO 8601, RFC 2822 and human dates, always UTC."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dateutil import parser as date_parser

EARLIEST_YEAR = 1990
LATEST_YEAR = 2100


def parse_date(value: object) -> datetime | None:
    """A timezone-aware UTC datetime from ISO 8601, RFC 2822 or a human date; None if unclear.

    Dates without a zone are taken as UTC; years outside 1990..2100 are treated as garbage.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed: datetime | None = value
    else:
        text = str(value).strip()
        parsed = None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                try:
                    parsed = date_parser.parse(text)
                except (ValueError, OverflowError, TypeError):
                    return None
    if parsed is None or not EARLIEST_YEAR <= parsed.year <= LATEST_YEAR:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def feed_entry_date(entry: Mapping[str, Any]) -> datetime | None:
    """A feed entry's (feedparser's) publication date: its `published` or `updated` text, else
    the time tuple feedparser parsed from it; None when it has none."""
    parsed = parse_date(entry.get("published") or entry.get("updated"))
    if parsed is not None:
        return parsed
    for key in ("published_parsed", "updated_parsed"):
        if stamp := entry.get(key):
            return datetime(*stamp[:6], tzinfo=UTC)
    return None
