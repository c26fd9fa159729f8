"""The sample author's topic-held-out style prompts (`style_prompts.yaml`), offered to the
platform through the `twin.style_prompts` entry point: prompts in her platforms' forms on topics
none of her documents covers, on which the twin's voice is judged."""

from __future__ import annotations

from pathlib import Path

import yaml

from sample_author.content import AUTHOR

PROMPTS_FILE = Path(__file__).with_name("style_prompts.yaml")


def prompts(author: str) -> list[dict[str, str]] | None:
    """The prompt set for `author` when it is the sample author (else None)."""
    if author not in (AUTHOR.name, AUTHOR.handle):
        return None
    return yaml.safe_load(PROMPTS_FILE.read_text())
