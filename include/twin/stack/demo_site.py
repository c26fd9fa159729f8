"""A demo author's site, as it describes itself: the author, their source links and the URL prefix
of each platform. The platform never imports the demo; it reads what the running site publishes."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, Field

DESCRIPTION_PATH = "/.well-known/twin-demo-author.json"


class DemoSite(BaseModel):
    """What a demo site publishes at `DESCRIPTION_PATH`."""

    author: str = Field(min_length=1)
    links: dict[str, list[str]]
    platform_prefixes: dict[str, str] = Field(default_factory=dict)


def describe_demo_site(base_url: str, timeout_s: float = 5.0) -> DemoSite:
    """The description published by the demo site at `base_url` (raises on any failure)."""
    resp = httpx.get(base_url.rstrip("/") + DESCRIPTION_PATH, timeout=timeout_s)
    resp.raise_for_status()
    return DemoSite.model_validate_json(resp.content)
