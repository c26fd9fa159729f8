"""How politely the crawler fetches: `CrawlPolicy`, the one set of knobs every crawler shares
through `PoliteClient`. (What a failed fetch raises is in `twin.crawl.errors`.)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from twin.crawl.ssrf import parse_allow

DEFAULT_USER_AGENT = (
    "TwinOpsBot/0.1 (+https://github.com/twinops/twinops; crawler for the author's own LLM twin)"
)
DEFAULT_CONTENT_TYPES: tuple[str, ...] = (
    "text/html",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/xml",
    "text/xml",
    "application/json",
    "application/zip",
    "text/plain",
    "text/markdown",
)


class CrawlPolicy(BaseModel):
    """Limits and manners of the shared HTTP client; immutable, so threads can share one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_agent: str = Field(default=DEFAULT_USER_AGENT, min_length=1)
    per_host_concurrency: int = Field(default=4, ge=1)
    """Most requests in flight at once to one host:port."""
    per_host_rate: float = Field(default=10.0, gt=0)
    """Most requests per second to one host:port (token bucket, burst = per_host_concurrency)."""
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=15.0, gt=0)
    max_body_bytes: int = Field(default=5_000_000, ge=1)
    """Bodies larger than this, raw or decoded, are aborted while streaming (decoding included)."""
    max_redirects: int = Field(default=5, ge=0)
    retries: int = Field(default=4, ge=0)
    """Extra attempts on 429, 502, 503, 504 and connect/read errors (attempts = retries + 1)."""
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    """Cap on any single wait between attempts, `Retry-After` included."""
    respect_robots: bool = True
    allowed_content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES
    """Media types a fetch may return; `type/*` matches a whole family."""
    allow_private_hosts: tuple[str, ...] = ()
    """`host:port` pairs the SSRF guard lets through ("127.0.0.1:8000"), for local test sites."""
    dns_server: str | None = None
    """A DNS server ("address[:port]") asked directly instead of the system resolver."""

    @field_validator("allow_private_hosts")
    @classmethod
    def _host_port_pairs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_allow(tuple(value))  # a ValueError names the entry that is not host:port
        return tuple(value)
