"""Collects the generated site in memory and writes it out: files, fixed mtimes, route table."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Absolute links in generated files use this origin; the server swaps in its own base URL.
PLACEHOLDER_ORIGIN = "http://sample-author.invalid"
ROUTES_FILE = "_routes.json"
MANIFEST_FILE = "_manifest.json"
# Files whose date is not a publication date get this modification time.
BUILD_TIME = datetime(2024, 12, 31, 12, 0, tzinfo=UTC)

HTML = "text/html; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"
XML = "application/xml; charset=utf-8"
JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
ZIP = "application/zip"

_EXTENSIONS = {HTML: ".html", RSS: ".xml", XML: ".xml", JSON: ".json", TEXT: ".txt", ZIP: ".zip"}
_KNOWN_SUFFIXES = {".html", ".xml", ".json", ".txt", ".zip", ".png", ".csv"}


def absolute(path: str) -> str:
    """Absolute URL of a site path, using the placeholder origin the server rewrites."""
    return PLACEHOLDER_ORIGIN + path


def file_for_path(url_path: str, content_type: str) -> str:
    """Where a routed URL path is stored, relative to the site directory.

    `/blog/x/` → `blog/x/index.html`; `/medium/@a` → `medium/@a.html` (so a profile URL and
    the directory of its articles can coexist); paths with a known suffix are kept as they are.
    """
    stripped = url_path.strip("/")
    if url_path.endswith("/"):
        return f"{stripped}/index.html" if stripped else "index.html"
    if Path(stripped).suffix in _KNOWN_SUFFIXES:
        return stripped
    return stripped + _EXTENSIONS.get(content_type, ".bin")


@dataclass
class SiteWriter:
    """Accumulates pages, redirects and plain files; `write()` puts them on disk."""

    out_dir: Path
    files: dict[str, tuple[bytes, datetime]] = field(default_factory=dict)
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    redirects: dict[str, dict[str, Any]] = field(default_factory=dict)

    def page(
        self,
        url_path: str,
        body: str | bytes,
        *,
        content_type: str = HTML,
        modified: datetime | None = None,
        file: str | None = None,
        **behaviour: Any,
    ) -> str:
        """Register a served URL and its body; returns the file path relative to the site."""
        if url_path in self.routes or url_path in self.redirects:
            raise ValueError(f"duplicate route {url_path}")
        rel = file or file_for_path(url_path, content_type)
        self.add_file(rel, body, modified)
        self.routes[url_path] = {"file": rel, "type": content_type, **behaviour}
        return rel

    def generated(self, url_path: str, *, content_type: str = HTML, **behaviour: Any) -> None:
        """Register a URL whose body the server produces itself (e.g. the oversize page)."""
        self.routes[url_path] = {"type": content_type, **behaviour}

    def redirect(self, url_path: str, location: str, status: int = 301) -> None:
        """Register a redirect; `location` is a site path or an absolute URL."""
        if url_path in self.routes or url_path in self.redirects:
            raise ValueError(f"duplicate route {url_path}")
        self.redirects[url_path] = {"location": location, "status": status}

    def add_file(self, rel: str, body: str | bytes, modified: datetime | None = None) -> None:
        """Add an unrouted file (served by path if the server finds it)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        if rel in self.files:
            raise ValueError(f"duplicate file {rel}")
        self.files[rel] = (data, modified or BUILD_TIME)

    def write(self) -> None:
        """Write every file with its fixed mtime, then the route table."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for rel, (data, modified) in sorted(self.files.items()):
            target = self.out_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            stamp = modified.timestamp()
            os.utime(target, (stamp, stamp))
        table = {"routes": self.routes, "redirects": self.redirects}
        routes_path = self.out_dir / ROUTES_FILE
        routes_path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", "utf-8")
        os.utime(routes_path, (BUILD_TIME.timestamp(), BUILD_TIME.timestamp()))
