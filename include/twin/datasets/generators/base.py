"""One interface for every instruction generator, and what each call returns.

A generator turns sections of the author's writing into instructions (what a user would ask for
that text to be the answer) and into evaluation questions (what a reader would ask that the section
answers), and answers prompts with its own words (the `rejected` side of a
preference pair). Each result carries either text or the reason there is none; `transient`
marks a failure worth retrying on the next run (such results are never cached).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from twin.domain.samples import content_digest

GENERATOR_NAMES = ("offline", "smollm2", "endpoint")


@dataclass(frozen=True)
class SectionPrompt:
    """What a generator sees of one section."""

    key: str
    platform: str
    document_kind: str
    title: str
    heading_path: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class AnswerPrompt:
    """A prompt to answer in the generator's own words, and the length to aim for."""

    key: str
    prompt: str
    platform: str
    target_chars: int


@dataclass(frozen=True)
class Generated:
    """A generator's text for one request, or why there is none."""

    key: str
    text: str | None = None
    reason: str | None = None
    transient: bool = False


@dataclass
class Usage:
    """Calls made and tokens used (as the generator reports them)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.retries += other.retries
        for reason, n in other.failures.items():
            self.failures[reason] = self.failures.get(reason, 0) + n

    def as_dict(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "retries": self.retries,
            "failures": dict(sorted(self.failures.items())),
        }


class InstructionGenerator(Protocol):
    """What the dataset builder needs from a generator."""

    name: str
    usage: Usage

    @property
    def config(self) -> dict[str, object]:
        """Everything that changes the output; its digest keys the generation cache."""
        ...

    def instructions(self, sections: Sequence[SectionPrompt]) -> list[Generated]:
        """One instruction per section, in order."""
        ...

    def answers(self, prompts: Sequence[AnswerPrompt]) -> list[Generated]:
        """The generator's own answer to each prompt, in order."""
        ...

    def questions(self, sections: Sequence[SectionPrompt]) -> list[Generated]:
        """One evaluation question per section (answered by that section), in order."""
        ...


def config_digest(generator: InstructionGenerator, task: str) -> str:
    """The cache key part for one generator task ('instruction', 'rejected' or 'question')."""
    return content_digest({"generator": generator.name, "task": task, **generator.config})[:32]


def generator_label(generator: InstructionGenerator) -> str:
    """The name recorded on every sample: generator name and configuration digest."""
    return f"{generator.name}@{content_digest(generator.config)[:12]}"
