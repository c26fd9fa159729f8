"""Training samples and dataset versions: the contract between the datasets and training stages.

The datasets stage writes versions and samples to the warehouse's `ml` schema (and exports each
version to the object store and MLflow); the training stage reads a version back as a
`DatasetSnapshot`. A sample's answer (or `chosen` text) is always text the author really wrote.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Split(StrEnum):
    """Which part of a dataset version a sample belongs to; splits are assigned per document."""

    TRAIN = "train"
    TEST = "test"


class SampleKind(StrEnum):
    INSTRUCTION = "instruction"
    PREFERENCE = "preference"


class InstructionSample(BaseModel):
    """An instruction and the author's own text that answers it."""

    model_config = ConfigDict(frozen=True)

    sample_id: str = Field(min_length=1, description="stable hash of document, section and prompt")
    document_id: str = Field(min_length=1)
    platform: str
    document_kind: str
    section: str = Field(default="", description="heading path or file path inside the document")
    instruction: str = Field(min_length=1)
    answer: str = Field(min_length=1, description="verbatim text by the author")
    split: Split
    generator: str = Field(description="generator name and configuration digest")

    def messages(self, system: str | None = None) -> list[dict[str, str]]:
        """The sample as a chat conversation (TRL's conversational format)."""
        turns = [{"role": "system", "content": system}] if system else []
        return [
            *turns,
            {"role": "user", "content": self.instruction},
            {"role": "assistant", "content": self.answer},
        ]


class PreferenceSample(BaseModel):
    """A prompt, the author's answer (`chosen`) and a model's answer (`rejected`)."""

    model_config = ConfigDict(frozen=True)

    sample_id: str = Field(min_length=1)
    document_id: str = Field(min_length=1)
    platform: str
    document_kind: str
    prompt: str = Field(min_length=1)
    chosen: str = Field(min_length=1, description="verbatim text by the author")
    rejected: str = Field(min_length=1, description="a model's answer to the same prompt")
    split: Split
    generator: str


class DatasetVersion(BaseModel):
    """One immutable dataset version: the content hash of its samples plus the generator config."""

    model_config = ConfigDict(frozen=True)

    version: str = Field(min_length=8, description="hex digest; the version's identity")
    author: str
    created_at: datetime
    generator_config: dict[str, object] = Field(default_factory=dict)
    counts: dict[str, int] = Field(
        default_factory=dict, description="e.g. instruction/train, preference/test"
    )
    drop_reasons: dict[str, int] = Field(default_factory=dict)
    source_document_ids: tuple[str, ...] = ()
    export_uri: str | None = Field(default=None, description="object-store URL of the export")


class DatasetSnapshot(BaseModel):
    """A dataset version with its samples, as the training stage consumes it."""

    model_config = ConfigDict(frozen=True)

    version: DatasetVersion
    instructions: tuple[InstructionSample, ...] = ()
    preferences: tuple[PreferenceSample, ...] = ()

    def instruction_split(self, split: Split) -> list[InstructionSample]:
        return [s for s in self.instructions if s.split == split]

    def preference_split(self, split: Split) -> list[PreferenceSample]:
        return [s for s in self.preferences if s.split == split]


def content_digest(payload: object) -> str:
    """sha256 of a JSON-serialisable payload in canonical form (sorted keys, no whitespace)."""
    blob = json.dumps(
        payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()
