"""What a built sample site contains: entry points and expected documents per platform."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from sample_author.writer import MANIFEST_FILE


class DocumentRef(BaseModel):
    """One document a correct crawler should end up storing."""

    key: str = Field(description="platform/slug, unique")
    platform: str
    kind: str = Field(description="post, article or repository")
    title: str
    slug: str
    date: datetime
    url: str = Field(description="site path it is served at, or the LinkedIn share link")
    words: int
    tags: list[str] = []
    pii: list[str] = Field(default=[], description="seeded personal data: email/phone/api_key")
    defect: str | None = Field(default=None, description="flaky, unstable or wrong-charset")
    crosspost_of: str | None = None
    synthetic: bool = False


class DefectPage(BaseModel):
    """A page that misbehaves on purpose, and what a robust crawler does with it."""

    path: str
    behaviour: str
    expect: str


class PlatformManifest(BaseModel):
    """Entry points for one platform and the documents reachable from them."""

    platform: str
    entry_paths: list[str]
    expected_documents: int
    documents: list[DocumentRef]
    notes: str = ""


class RepoRef(BaseModel):
    """A git repository built on disk (and exposed read-only over dumb HTTP)."""

    name: str
    description: str
    path: str = Field(description="working copy, relative to the site directory")
    bare_path: str = Field(description="bare clone served over HTTP, relative to the site")
    http_path: str = Field(description="clone URL path, e.g. /git/<name>.git")
    head: str
    commits: int
    languages: list[str]
    text_files: list[str] = Field(description="tracked files a crawler should keep")
    skip_paths: list[str] = Field(description="tracked paths a crawler should skip")


class SiteManifest(BaseModel):
    """Everything tests and benchmarks need to know about one built site."""

    author: str
    handle: str
    site_dir: Path = Field(exclude=True)
    extra_pages: int = 0
    platforms: dict[str, PlatformManifest]
    repos: list[RepoRef]
    defects: list[DefectPage]
    disallowed_paths: list[str]
    near_duplicates: list[tuple[str, str]]

    @property
    def documents(self) -> list[DocumentRef]:
        """Every expected document across platforms."""
        return [doc for p in self.platforms.values() for doc in p.documents]

    @property
    def total_documents(self) -> int:
        """Number of expected documents across platforms."""
        return sum(p.expected_documents for p in self.platforms.values())

    @property
    def total_words(self) -> int:
        """Words in all expected documents."""
        return sum(d.words for d in self.documents)

    def document(self, key: str) -> DocumentRef:
        """The document with `key` (platform/slug); KeyError if absent."""
        for doc in self.documents:
            if doc.key == key:
                return doc
        raise KeyError(key)

    def entry_urls(self, base_url: str) -> dict[str, list[str]]:
        """Absolute entry URLs per platform for a server at `base_url`."""
        base = base_url.rstrip("/")
        return {name: [base + p for p in m.entry_paths] for name, m in self.platforms.items()}

    def links(self, base_url: str, platform: str | None = None) -> list[str]:
        """Flat list of entry URLs (all platforms, or one) for a server at `base_url`."""
        urls = self.entry_urls(base_url)
        return [u for name in sorted(urls) if platform in (None, name) for u in urls[name]]

    def repo_dirs(self) -> dict[str, Path]:
        """Working-copy directory of each git repository on disk."""
        return {r.name: self.site_dir / r.path for r in self.repos}

    def save(self) -> Path:
        """Write the manifest as JSON into the site directory; returns its path."""
        path = self.site_dir / MANIFEST_FILE
        path.write_text(self.model_dump_json(indent=1) + "\n", encoding="utf-8")
        return path


def load_manifest(site_dir: Path) -> SiteManifest:
    """Read the manifest a previous `build_site(site_dir)` wrote."""
    raw = json.loads((site_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    return SiteManifest.model_validate({**raw, "site_dir": site_dir})
