"""Hand-written labelled question sets (YAML or JSON), and how their labels find documents.

A hand-written set names the documents that answer each question by a stable key,
`platform/slug`, because a document's id is derived from the canonical URL the crawl found
(`document_id = sha256(canonical url)[:32]`), which depends on the server's address. Each key is
resolved against `marts.documents`:

- the row's `platform` must equal the key's platform, and
- one segment of the row's URL path must name the slug: the slug itself (`/blog/<slug>/`,
  `/substack/p/<slug>`), `<slug>.git` (a repository), `<slug>-<12 hex>` (a Medium story id) or
  `<slug>-<author handle>` (a LinkedIn article, when the set names the author's `handle`); a
  LinkedIn post has no slug in its URL, so the set's `url_aliases` name a string its URL contains
  instead (the post's share id).

Installed packages offer such sets through the entry point group `twin.questions` (each loads to
a callable returning the set's path or its parsed mapping); the datasets stage adds the sets of
the author it builds to that author's generated question set. None is ever required.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "twin.questions"


class LabelledQuestion(BaseModel):
    """One evaluation question and the documents that answer it."""

    id: str
    question: str
    relevant: list[str] = Field(description="platform/slug keys of the answering documents")
    tags: list[str] = Field(default_factory=list)
    relevant_ids: list[str] = Field(default_factory=list, description="resolved document ids")
    now: datetime | None = Field(default=None, description="overrides the set's `now`")


class QuestionSet(BaseModel):
    """A labelled set: whose writing, the reference time for relative dates, the questions."""

    author: str
    now: datetime = Field(description="'last year' and similar phrases are relative to this")
    questions: list[LabelledQuestion]
    handle: str = Field(default="", description="the author's handle in article URLs")
    url_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="platform/slug -> a string the document's URL contains, for documents whose "
        "URL does not name their slug (LinkedIn posts: the share id)",
    )


def parse_questions(data: Any, origin: str) -> QuestionSet:
    """A labelled set from its parsed mapping, validated (`origin` names it in errors)."""
    qs = QuestionSet.model_validate(data)
    if qs.now.tzinfo is None:
        qs.now = qs.now.replace(tzinfo=UTC)
    ids = [q.id for q in qs.questions]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{origin}: question ids are not unique")
    return qs


def load_questions(path: Path) -> QuestionSet:
    """The labelled set at `path` (YAML or JSON), validated."""
    return parse_questions(yaml.safe_load(Path(path).read_text(encoding="utf-8")), str(path))


def hand_written_sets(author: str | None = None) -> dict[str, QuestionSet]:
    """The labelled sets installed packages offer (entry point name → set), of one author when
    given. A set that fails to load is logged with its cause and left out."""
    from importlib.metadata import entry_points

    found: dict[str, QuestionSet] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            offered = entry.load()()
            qs = (
                parse_questions(offered, entry.name)
                if isinstance(offered, Mapping)
                else load_questions(Path(offered))
            )
        except Exception as exc:  # one broken package never hides the others
            log.warning("question set %s (%s) not loaded: %s", entry.name, entry.value, exc)
            continue
        if author is None or qs.author == author:
            found[entry.name] = qs
    return found


def url_names_key(
    platform: str, slug: str, url: str, *, handle: str = "", alias: str | None = None
) -> bool:
    """Whether `url` is the address of the document `platform/slug` (see the module docstring)."""
    path = unquote(urlsplit(url).path or url)
    escaped = re.escape(slug)
    suffixes = [r"\.git", "-[0-9a-f]{12}"] + ([f"-{re.escape(handle)}"] if handle else [])
    pattern = re.compile(rf"{escaped}(?:{'|'.join(suffixes)})?")
    if any(pattern.fullmatch(segment) for segment in path.split("/") if segment):
        return True
    return bool(alias) and alias in unquote(url)


def resolve_keys(
    conn: psycopg.Connection,
    keys: Iterable[str],
    *,
    author: str | None = None,
    aliases: dict[str, str] | None = None,
    handle: str = "",
) -> dict[str, str]:
    """`platform/slug` -> `marts.documents.document_id` for every key that names one document.

    Raises ValueError when a key matches more than one document (an ambiguous label).
    """
    query = "select document_id, platform, url from marts.documents"
    params: tuple[Any, ...] = ()
    if author:
        query += " where author = %s"
        params = (author,)
    rows = conn.execute(query, params).fetchall()
    resolved: dict[str, str] = {}
    for key in sorted(set(keys)):
        platform, _, slug = key.partition("/")
        matches = sorted(
            doc_id
            for doc_id, p, url in rows
            if p == platform
            and url_names_key(
                platform, slug, url or "", handle=handle, alias=(aliases or {}).get(key)
            )
        )
        if len(matches) > 1:
            raise ValueError(f"label {key} matches {len(matches)} documents: {matches}")
        if matches:
            resolved[key] = matches[0]
    return resolved


def resolve_questions(
    questions: Sequence[LabelledQuestion], resolved: dict[str, str]
) -> tuple[list[LabelledQuestion], list[str]]:
    """Questions with `relevant_ids` filled (those left with none dropped), and unresolved keys."""
    unresolved = sorted({key for q in questions for key in q.relevant if key not in resolved})
    ready = []
    for q in questions:
        ids = [resolved[key] for key in q.relevant if key in resolved]
        if ids:
            ready.append(q.model_copy(update={"relevant_ids": list(dict.fromkeys(ids))}))
    return ready, unresolved


def resolve_set(conn: psycopg.Connection, question_set: QuestionSet) -> tuple[list, list[str]]:
    """The set's questions with their labels resolved against the author's marts, and the keys
    that named no document."""
    keys = [key for q in question_set.questions for key in q.relevant]
    resolved = resolve_keys(
        conn,
        keys,
        author=question_set.author,
        aliases=question_set.url_aliases,
        handle=question_set.handle,
    )
    return resolve_questions(question_set.questions, resolved)
