"""The sample author's hand-written retrieval questions, offered to the platform through the
`twin.questions` entry point (the datasets stage adds them to her per-author question set)."""

from __future__ import annotations

from pathlib import Path

QUESTIONS = Path(__file__).resolve().parent / "questions.yaml"


def question_set() -> Path:
    """Where the labelled set lives (YAML; see `twin.datasets.labelled` for its format)."""
    return QUESTIONS


PARAPHRASES = Path(__file__).resolve().parent / "paraphrase_questions.yaml"


def paraphrase_set() -> Path:
    """The paraphrase set (facts deep in a body, reworded; `dev` / `test` split tags)."""
    return PARAPHRASES
