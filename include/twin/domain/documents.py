"""Raw documents as crawled: one per canonical URL, whatever the platform.

Crawlers produce these; the raw store keeps them in MongoDB (`twin.documents`); the warehouse
loads them into Postgres. The content hash covers what a reader sees (title and text, and for
repositories every file), so a re-crawl of an unchanged page hashes the same.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator


class Platform(StrEnum):
    """Where a document was published."""

    LINKEDIN = "linkedin"
    MEDIUM = "medium"
    SUBSTACK = "substack"
    GITHUB = "github"
    BLOG = "blog"


class DocumentKind(StrEnum):
    """What sort of writing a document is."""

    POST = "post"
    ARTICLE = "article"
    REPOSITORY = "repository"


# The kinds of document each platform's crawler produces (Substack letters are long-form:
# articles; LinkedIn has short posts and articles). Other stages read this, never redefine it.
PLATFORM_KINDS: dict[Platform, tuple[DocumentKind, ...]] = {
    Platform.LINKEDIN: (DocumentKind.POST, DocumentKind.ARTICLE),
    Platform.MEDIUM: (DocumentKind.ARTICLE,),
    Platform.SUBSTACK: (DocumentKind.ARTICLE,),
    Platform.GITHUB: (DocumentKind.REPOSITORY,),
    Platform.BLOG: (DocumentKind.ARTICLE,),
}


class RepositoryFile(BaseModel):
    """One text file of a crawled repository."""

    model_config = ConfigDict(frozen=True)

    path: str
    language: str
    text: str
    size_bytes: int = Field(ge=0)


class RawDocument(BaseModel):
    """A crawled document, ready for the raw store."""

    model_config = ConfigDict(frozen=True)

    url: str = Field(min_length=1, description="canonical URL: the document's identity")
    platform: Platform
    kind: DocumentKind
    author: str = Field(min_length=1)
    title: str
    text: str = Field(description="the author's text as markdown (a repository: its README)")
    published_at: datetime | None = None
    files: tuple[RepositoryFile, ...] = ()
    source_url: str | None = Field(default=None, description="the feed/archive it was found in")
    raw_key: str | None = Field(default=None, description="archived raw payload in object store")
    metadata: dict[str, str | int | float | bool | list[str] | None] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, url: str) -> str:
        if "://" not in url:
            raise ValueError(f"not an absolute URL: {url!r}")
        return url

    @computed_field  # type: ignore[prop-decorator]
    @property
    def content_hash(self) -> str:
        """sha256 over title, text and files: what changes when the content changes."""
        payload = {
            "title": self.title.strip(),
            "text": self.text.strip(),
            "files": [[f.path, f.text] for f in self.files],
        }
        blob = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def word_count(self) -> int:
        return len(self.text.split()) + sum(len(f.text.split()) for f in self.files)


class MartDocument(BaseModel):
    """One row of `marts.documents`: a clean, PII-redacted, deduplicated document, as the
    features and datasets stages read it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    document_id: str = Field(min_length=1)
    author: str
    platform: str
    document_kind: str
    title: str = ""
    url: str | None = None
    published_at: datetime | None = None
    word_count: int | None = None
    language: str | None = None
    body: str
    clean_hash: str
    updated_at: datetime | None = None

    @field_validator("title", "body", mode="before")
    @classmethod
    def _text_or_empty(cls, value: object) -> object:
        return "" if value is None else value
