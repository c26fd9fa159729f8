"""Topic-held-out prompts per author: requests in the author's platforms' forms about topics the
author never wrote about, on which a twin's voice is judged (its topic cannot help it there).

An installed package may offer an author's own set through the entry point group
`twin.style_prompts` (each entry loads to `(author) -> list of {prompt, platform, topic} | None`);
for any other author the set is generated: topics from `TOPICS` none of whose key words occur in
the author's corpus, each put in the form of one of the corpus' platforms, in turn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

ENTRY_POINT_GROUP = "twin.style_prompts"
DEFAULT_COUNT = 24
# How each platform asks for writing (a platform not listed gets the generic form).
PLATFORM_FORMS = {
    "linkedin": "Write a LinkedIn post about {topic}.",
    "medium": "Write the opening of a Medium article about {topic}.",
    "substack": "Write a paragraph for your newsletter about {topic}.",
    "blog": "Write the first paragraphs of a blog post about {topic}.",
    "github": "Write the introduction of a README for a project about {topic}.",
}
GENERIC_FORM = "Write a short piece about {topic}."
# (topic, key words: the topic counts as covered when any of them occurs in the corpus)
TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("retiring a dashboard nobody opened in a year", ("dashboard",)),
    ("cost alerts for a cloud data warehouse", ("cost alert", "billing alert")),
    ("time zones in event timestamps", ("time zone", "timezone")),
    ("a flaky integration test that blocked every merge", ("flaky",)),
    ("planning a new colleague's first week", ("onboarding", "first week")),
    ("feature flags for a staged rollout", ("feature flag",)),
    ("what a permanent staging environment costs", ("staging environment",)),
    ("a four-day work week", ("four-day", "four day")),
    ("reading a cloud provider's invoice", ("invoice",)),
    ("daylight saving time and scheduled jobs", ("daylight",)),
    ("why commit messages matter", ("commit message",)),
    ("running an internal hackathon", ("hackathon",)),
    ("choosing a password manager for a team", ("password manager",)),
    ("a postmortem template", ("postmortem", "post-mortem")),
    ("keeping a shared release calendar", ("release calendar",)),
    ("living with a third-party API's rate limits", ("rate limit",)),
    ("importing a partner's XML product catalogue", ("xml",)),
    ("the rituals of a remote team", ("remote team", "ritual")),
    ("saying no to a feature request", ("feature request",)),
    ("a laptop setup script for new hires", ("setup script", "laptop")),
    ("why internal tools grow an export-to-Excel button", ("excel",)),
    ("moving builds from Jenkins to GitHub Actions", ("jenkins",)),
    ("naming conventions for storage buckets", ("bucket",)),
    ("writing a good bug report", ("bug report",)),
    ("a quarterly planning meeting that went well", ("quarterly planning",)),
    ("keeping a team wiki alive", ("wiki",)),
    ("accessibility in internal web tools", ("accessibility",)),
    ("the first month as a new manager", ("new manager",)),
    ("pair programming across time zones", ("pair programming",)),
    ("a conference talk rejected twice", ("rejected talk", "call for papers")),
    ("versioning a public mobile app", ("mobile app",)),
    ("a standing desk experiment", ("standing desk",)),
    ("learning a second programming language at forty", ("second language",)),
    ("cleaning up a shared email inbox", ("inbox",)),
    ("a team offsite in the mountains", ("offsite",)),
    ("reviewing a contractor's pull request", ("contractor",)),
)


class StylePrompt(BaseModel):
    """One topic-held-out prompt."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    prompt: str = Field(min_length=1)
    platform: str = "generic"
    topic: str = ""


def offered_prompts(author: str) -> list[StylePrompt] | None:
    """The author's set from an installed package (entry point group `twin.style_prompts`), or
    None when no package offers one. A broken entry point is an error naming it."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            rows = entry.load()(author)
        except Exception as exc:
            raise ValueError(f"style prompt entry point {entry.name!r} failed: {exc}") from exc
        if rows:
            return [StylePrompt.model_validate(row) for row in rows]
    return None


def covered(topic_words: Sequence[str], corpus_text: str) -> bool:
    """Whether any key word of a topic occurs in the (lower-cased) corpus text."""
    return any(re.search(rf"\b{re.escape(w)}", corpus_text) for w in topic_words)


def generated_prompts(
    corpus: Sequence[str], platforms: Sequence[str], count: int = DEFAULT_COUNT
) -> list[StylePrompt]:
    """Prompts on `TOPICS` absent from the corpus, in the forms of `platforms` in turn."""
    text = " ".join(corpus).lower()
    forms = sorted(set(platforms)) or ["generic"]
    topics = [t for t, keys in TOPICS if not covered(keys, text)]
    prompts = []
    for i, topic in enumerate(topics[:count]):
        platform = forms[i % len(forms)]
        form = PLATFORM_FORMS.get(platform, GENERIC_FORM)
        prompts.append(StylePrompt(prompt=form.format(topic=topic), platform=platform, topic=topic))
    return prompts


def author_prompts(
    author: str, corpus: Sequence[str], platforms: Sequence[str], count: int = DEFAULT_COUNT
) -> tuple[list[StylePrompt], str]:
    """(prompts, origin): the author's offered set, else a generated one."""
    offered = offered_prompts(author)
    if offered:
        return offered, "offered"
    return generated_prompts(corpus, platforms, count), "generated"
