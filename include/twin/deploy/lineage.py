"""Whose twin a registered version is, from its lineage, and the style anchor of that author.

A version's author is its dataset's: the version's `dataset_version` tag names a dataset version,
whose row in `ml.dataset_versions` names the author (a snapshot a package offers is not in `ml`;
then the training run's `author` tag, written from the same snapshot). The style anchor is the
embedded passages of that author in `vectors.chunks`. When either cannot be found, the reason
is returned instead, and the checks that need it fail with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.domain.models import VersionTag
from twin.settings import Settings

log = logging.getLogger(__name__)
ANCHOR_PASSAGES = 500


@dataclass(frozen=True)
class VersionAuthor:
    """The author a version was trained for, or why it is unknown."""

    author: str | None
    problem: str | None = None
    dataset_version: str | None = None


@dataclass(frozen=True)
class StyleAnchor:
    """The author's own passages, embedded (the style check's anchor), or why there are none."""

    author: str | None
    vectors: np.ndarray | None
    problem: str | None = None


def version_author(settings: Settings, client: Any, name: str, version: int | str) -> VersionAuthor:
    """The author of `name`/`version` from its dataset lineage (see the module docstring)."""
    from twin.store.datasets import find_dataset_version

    mv = client.get_model_version(name, str(version))
    dataset = (mv.tags or {}).get(VersionTag.DATASET_VERSION.value)
    if not dataset:
        return VersionAuthor(
            None, f"version {name}/{version} carries no {VersionTag.DATASET_VERSION.value} tag"
        )
    try:
        found = find_dataset_version(settings, dataset)
    except LookupError as err:
        found, lookup_problem = None, str(err)
    else:
        lookup_problem = None
    if found is not None:
        return VersionAuthor(found.author, None, found.version)
    run_author = None
    if mv.run_id:
        run_author = (client.get_run(mv.run_id).data.tags or {}).get("author")
    if run_author:
        return VersionAuthor(run_author, None, dataset)
    return VersionAuthor(
        None,
        f"dataset version {dataset[:16]} of version {name}/{version} is not in "
        f"ml.dataset_versions and its training run names no author"
        + (f" ({lookup_problem})" if lookup_problem else ""),
        dataset,
    )


def style_anchor(conn: Any, who: VersionAuthor, limit: int = ANCHOR_PASSAGES) -> StyleAnchor:
    """Embeddings of the author's own passages, or the reason there are none."""
    if who.author is None:
        return StyleAnchor(None, None, f"no author to anchor the style on: {who.problem}")
    try:
        rows = conn.execute(
            "select embedding from vectors.chunks where author = %s order by chunk_id limit %s",
            (who.author, limit),
        ).fetchall()
    except Exception as err:  # no index yet: the style check fails with the reason
        return StyleAnchor(who.author, None, f"the author's passages cannot be read: {err}")
    vectors = [r[0].to_numpy() if hasattr(r[0], "to_numpy") else r[0] for r in rows]
    if not vectors:
        return StyleAnchor(
            who.author, None, f"vectors.chunks holds no passage of author {who.author!r}"
        )
    return StyleAnchor(who.author, np.asarray(vectors, dtype=np.float32))
