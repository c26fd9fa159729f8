"""Generator calls through the generation cache (`ml.generation_cache`).

A generator's output is cached per (document `clean_hash`, generator configuration and task
digest): a rerun with nothing new calls no generator, and an edited document is the only one
whose sections go to the generator again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twin.datasets.generators import Generated, InstructionGenerator, config_digest, generator_label
from twin.domain.documents import MartDocument
from twin.settings import Settings
from twin.store import datasets as store


class GenerationTally(Protocol):
    """Where a build counts what generation cost it."""

    documents_generated: list[str]
    cache_rows_written: int


def cached_generate(
    settings: Settings,
    generator: InstructionGenerator,
    task: str,
    requests: list[tuple[MartDocument, Any]],
    call: Callable[[Sequence[Any]], list[Generated]],
    result: GenerationTally,
) -> dict[str, Generated]:
    """key → Generated for every request: from the cache, else from the generator (only the
    missing keys of new or changed documents); terminal outcomes are cached per document."""
    digest = config_digest(generator, task)
    by_doc: dict[str, list[Any]] = defaultdict(list)
    docs: dict[str, MartDocument] = {}
    for doc, request in requests:
        by_doc[doc.document_id].append(request)
        docs[doc.document_id] = doc
    cache = store.cached_generations(settings, {(d.clean_hash, digest) for d in docs.values()})
    out: dict[str, Generated] = {}
    missing: list[tuple[MartDocument, Any]] = []
    for doc_id, reqs in by_doc.items():
        entry = cache.get((docs[doc_id].clean_hash, digest), {})
        for request in reqs:
            hit = entry.get(request.key)
            if hit is None:
                missing.append((docs[doc_id], request))
            else:
                out[request.key] = Generated(request.key, hit.get("text"), hit.get("reason"))
    if not missing:
        return out
    generated = call([r for _, r in missing])
    new_entries: dict[str, dict[str, Any]] = defaultdict(dict)
    for (doc, _), item in zip(missing, generated, strict=True):
        out[item.key] = item
        if not item.transient:
            new_entries[doc.document_id][item.key] = {"text": item.text, "reason": item.reason}
    result.documents_generated = sorted(
        set(result.documents_generated) | {d.document_id for d, _ in missing}
    )
    result.cache_rows_written += store.store_generations(
        settings,
        [
            (docs[d].clean_hash, digest, d, generator_label(generator), payload)
            for d, payload in new_entries.items()
        ],
    )
    return out
