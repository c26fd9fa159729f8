"""Deterministic filler articles for benchmarks (`build_site(..., extra_pages=N)`).

They follow the author's structure (anecdote, "The short version", "What I'd do again",
numbered takeaways, signature line) with sentences drawn from fixed pools by a seeded generator,
so page N is the same on every build.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sample_author.content import AUTHOR, SourceDocument

# Synthetic notes are dated before the first real blog post, so they page in after it.
START = datetime(2022, 12, 31, 8, 0, tzinfo=UTC)

TOPICS = (
    ("backfills", "pipelines"),
    ("row-count checks", "data-quality"),
    ("content hashes", "incremental"),
    ("Airflow pools", "airflow"),
    ("HNSW settings", "vector-search"),
    ("chunk budgets", "rag"),
    ("rerankers", "retrieval"),
    ("LoRA adapters", "fine-tuning"),
    ("freshness promises", "data-quality"),
    ("schema migrations", "postgres"),
    ("evaluation sets", "evaluation"),
    ("near-duplicate detection", "deduplication"),
    ("idempotent loaders", "pipelines"),
    ("data contracts", "data-contracts"),
    ("on-call runbooks", "operations"),
    ("embedding model upgrades", "embeddings"),
)
OPENERS = (
    "On the train home last {day}, I reread an old design note about {topic} and winced.",
    "A colleague asked me on {day} why our {topic} look the way they do.",
    "Someone in a review on {day} called our {topic} over-engineered, and they were half right.",
    "I spent most of {day} untangling {topic} that had grown without a plan.",
    "A reader wrote in on {day} asking how we test {topic}.",
)
SHORT = (
    "Keep {topic} small, explicit and rerunnable, and write down why they exist.",
    "Measure {topic} before tuning them, and change one thing at a time.",
    "Treat {topic} as part of the platform's contract, with an owner and a test.",
    "Make {topic} boring: one obvious way to do it, documented next to the code.",
)
BODY = (
    "The first version we built tried to handle every case, and the result was a system only "
    "its author could change. The second version handled the three cases we actually had.",
    "What made the difference was a number we could watch every morning. Once it was on a "
    "dashboard, people started asking good questions about it.",
    "Rerunning the job twice in staging found two bugs that a week of code review had missed. "
    "The Tuesday test is cheap and it keeps paying.",
    "The hard part was not the code. It was agreeing with the owning team on what correct "
    "looks like, and writing that sentence down where the next person will find it.",
    "We kept the old path alive for a release cycle so every reader had time to move. Nobody "
    "learned about the change from a broken dashboard.",
    "Most of the improvement came from deleting things: an unused option, a second code path, "
    "a check that never failed for a real reason.",
    "We logged one line per run with the counts that matter. A quiet run that reports zero "
    "changes is the most reassuring line in our logs.",
)
TAKEAWAYS = (
    "Write the rule down before writing the code.",
    "Make a second run with unchanged inputs a no-op, and assert it.",
    "Put the number you care about on a dashboard someone reads.",
    "Prefer one obvious path over a configurable one.",
    "Test the failure path once a month, on purpose.",
    "Delete what nobody uses, with a deprecation date.",
    "Ask the owner of the business process what the data means.",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


def synthetic_article(n: int) -> SourceDocument:
    """Filler blog article number `n` (1-based): same text for the same `n`, always."""
    rng = random.Random(f"field-note-{n}")
    topic, tag = TOPICS[(n - 1) % len(TOPICS)]
    day = rng.choice(DAYS)
    opener = rng.choice(OPENERS).format(topic=topic, day=day)
    short = rng.choice(SHORT).format(topic=topic)
    body_paragraphs = rng.sample(BODY, 3)
    takeaways = rng.sample(TAKEAWAYS, 3)
    lines = [
        opener + " This note is the short version of what we changed.",
        "",
        "## The short version",
        "",
        short,
        "",
        f"## What happened with {topic}",
        "",
        *[p for para in body_paragraphs for p in (para, "")],
        "## What I'd do again",
        "",
        *[f"{i}. {t}" for i, t in enumerate(takeaways, 1)],
        "",
        AUTHOR.signature,
    ]
    slug_topic = topic.lower().replace(" ", "-")
    return SourceDocument(
        platform="blog",
        kind="article",
        slug=f"field-note-{n:04d}-{slug_topic}",
        title=f"Field note {n}: {topic[0].upper() + topic[1:]}",
        date=START - timedelta(days=n - 1),
        body="\n".join(lines) + "\n",
        tags=(tag, "field-notes"),
    )


def synthetic_articles(count: int) -> list[SourceDocument]:
    """Filler articles 1..count."""
    return [synthetic_article(n) for n in range(1, count + 1)]
