"""The sample author's source texts: markdown files with front matter under `content/`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CONTENT_DIR = PACKAGE_DIR / "content"
REPOS_DIR = PACKAGE_DIR / "repos"

PLATFORMS: tuple[str, ...] = ("linkedin", "medium", "substack", "blog")
# Defects whose page is not a finished document a crawler should keep.
UNPUBLISHED_DEFECTS = frozenset({"draft", "truncated"})

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE_RE = re.compile(r"\+\d{2}(?:[ ]?\d{2,3}){3,4}")
API_KEY_RE = re.compile(r"\bsk-test-[A-Za-z0-9]{8,}")


@dataclass(frozen=True)
class Author:
    """Who the sample author is, as her profiles describe her."""

    name: str
    handle: str
    headline: str
    location: str
    employer: str
    newsletter: str
    bio: str
    signature: str


AUTHOR = Author(
    name="Ada Lindqvist",
    handle="ada-lindqvist",
    headline="Data platform lead · pipelines, data quality, retrieval and small models",
    location="Stockholm, Sweden",
    employer="Nordlane Logistics",
    newsletter="The Boring Pipeline",
    bio=(
        "I lead the data platform team at a Swedish logistics company. I write about pipelines "
        "you can rerun on a Tuesday, data quality as something you build in, retrieval and "
        "embeddings, fine-tuning small models, and Postgres, which I will defend at length."
    ),
    signature="Ship the boring version first.",
)


@dataclass(frozen=True)
class SourceDocument:
    """One piece of writing by the author, as stored under `content/<platform>/`."""

    platform: str
    kind: str
    slug: str
    title: str
    date: datetime
    body: str
    tags: tuple[str, ...] = ()
    subtitle: str | None = None
    defect: str | None = None
    aliases: tuple[str, ...] = ()
    crosspost_of: str | None = None
    source_path: Path | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """`platform/slug`, unique across all content."""
        return f"{self.platform}/{self.slug}"

    @property
    def words(self) -> int:
        """Whitespace-separated words in the body."""
        return word_count(self.body)

    @property
    def published(self) -> bool:
        """False for drafts and pages that are served broken on purpose."""
        return self.defect not in UNPUBLISHED_DEFECTS

    @property
    def pii(self) -> tuple[str, ...]:
        """Kinds of personal data seeded in the body: email, phone, api_key."""
        return find_pii(self.body)


def word_count(text: str) -> int:
    """Number of whitespace-separated words in `text`."""
    return len(text.split())


def find_pii(text: str) -> tuple[str, ...]:
    """Which kinds of seeded personal data (email, phone, api_key) occur in `text`."""
    kinds = []
    if EMAIL_RE.search(text):
        kinds.append("email")
    if PHONE_RE.search(text):
        kinds.append("phone")
    if API_KEY_RE.search(text):
        kinds.append("api_key")
    return tuple(kinds)


def _scalar(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_front_matter(text: str) -> tuple[dict[str, str | list[str]], str]:
    """Split `---` front matter (`key: value`, `key: [a, b]`) from the body that follows it."""
    if not text.startswith("---\n"):
        raise ValueError("missing front matter")
    head, sep, body = text[4:].partition("\n---\n")
    if not sep:
        raise ValueError("unterminated front matter")
    meta: dict[str, str | list[str]] = {}
    for line in head.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"front matter line without a colon: {line!r}")
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            meta[key.strip()] = [_scalar(v) for v in value[1:-1].split(",") if v.strip()]
        else:
            meta[key.strip()] = _scalar(value)
    return meta, body.strip() + "\n"


def parse_date(value: str) -> datetime:
    """ISO date or datetime, read as UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def load_document(path: Path) -> SourceDocument:
    """Parse one content file; raises ValueError naming the file when a field is missing."""
    meta, body = parse_front_matter(path.read_text(encoding="utf-8"))

    def text(key: str, default: str | None = None) -> str | None:
        value = meta.get(key, default)
        if isinstance(value, list):
            raise ValueError(f"{path}: {key} must be a single value")
        return value

    def items(key: str) -> tuple[str, ...]:
        value = meta.get(key, [])
        return tuple(value) if isinstance(value, list) else (value,)

    missing = [k for k in ("title", "slug", "date", "platform", "kind") if k not in meta]
    if missing:
        raise ValueError(f"{path}: front matter lacks {', '.join(missing)}")
    return SourceDocument(
        platform=str(text("platform")),
        kind=str(text("kind")),
        slug=str(text("slug")),
        title=str(text("title")),
        date=parse_date(str(text("date"))),
        body=body,
        tags=items("tags"),
        subtitle=text("subtitle"),
        defect=text("defect"),
        aliases=items("aliases"),
        crosspost_of=text("crosspost_of"),
        source_path=path,
    )


@cache
def _all_documents() -> tuple[SourceDocument, ...]:
    docs = [load_document(p) for p in sorted(CONTENT_DIR.rglob("*.md"))]
    return tuple(sorted(docs, key=lambda d: (d.platform, d.date, d.slug)))


def load_documents(
    platform: str | None = None, *, include_unpublished: bool = False
) -> list[SourceDocument]:
    """The author's documents, oldest first per platform; drafts/broken pages only if asked."""
    return [
        d
        for d in _all_documents()
        if (platform is None or d.platform == platform) and (include_unpublished or d.published)
    ]
