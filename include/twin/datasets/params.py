"""What a dataset build may be asked for, validated, and the twin_datasets Params derived from it.

Each field the trigger form shows is declared here once, with its title, description and bounds;
`param_schemas()` turns them into the DAG's Params, so the form refuses what `DatasetOptions`
refuses. Light to import: the DAG file calls it at parse time.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from twin.datasets.generators.base import GENERATOR_NAMES
from twin.form import param_schemas as form_schemas


class DatasetOptions(BaseModel):
    """What a build may be asked for (the DAG's Params, the CLI's options), validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    author: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"\S",
        title="Author",
        description="Whose clean marts to build from. Empty: the platform's author (the "
        "TWIN_AUTHOR setting).",
    )
    generator: str = Field(
        default="offline",
        title="Instruction generator",
        description="What writes each section's instruction. offline: templates, no model; "
        "smollm2: the packaged small model (slow, so Max instructions must be 1-200); "
        "endpoint: the OpenAI-compatible chat API at TWIN_GENERATOR_URL.",
        json_schema_extra={"enum": list(GENERATOR_NAMES)},
    )
    max_instructions: int = Field(
        default=0,
        ge=0,
        title="Max instructions",
        description="Sections given an instruction in this version, and documents given a "
        "generated evaluation question; 0: every one (smollm2 needs 1-200).",
    )
    max_preferences: int = Field(
        default=0,
        ge=0,
        title="Max preference pairs",
        description="Cap on preference pairs in this version; 0: one pair per instruction.",
    )
    preference: bool = Field(
        default=True,
        title="Build preference pairs",
        description="Pair the author's answer (chosen) with the generator's answer (rejected) "
        "for DPO; off: instruction data only, and twin_training needs DPO off.",
    )
    test_share: float = Field(
        default=0.1,
        ge=0.0,
        le=0.5,
        title="Test share",
        description="Fraction of documents (0-0.5) held out as the test split; a document keeps "
        "its split as others are added.",
    )
    min_answer_chars: int = Field(default=120, ge=1)
    max_answer_chars: int = Field(default=4000, ge=100)
    languages: tuple[str, ...] = ("en",)

    @field_validator("generator")
    @classmethod
    def _known_generator(cls, value: str) -> str:
        if value not in GENERATOR_NAMES:
            raise ValueError(f"generator must be one of {', '.join(GENERATOR_NAMES)}")
        return value


# The trigger form's fields, in form order (the others keep their defaults).
FORM_FIELDS = (
    "author",
    "generator",
    "max_instructions",
    "max_preferences",
    "preference",
    "test_share",
)


def param_schemas() -> dict[str, dict[str, Any]]:
    """The twin_datasets Params: each one's default and JSON schema, in form order. The author
    may be left empty (None): the task takes the platform's author (`Settings.author`)."""
    return form_schemas(DatasetOptions, FORM_FIELDS, configured_when_empty=("author",))
