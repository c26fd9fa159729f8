"""Evaluation questions per author: the contract between the datasets stage (which builds and
stores a versioned set from the author's marts) and its readers (the retrieval evaluation, shadow
replay, decontamination of training data, and a first deployment's own answers).

Each question is labelled with the documents that answer it: a generated question is answered by
one section of one document (the label); a hand-written one may name several.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

# the key of a set version's generator config that holds the build's cap on generated questions
# (None: every document was asked about)
MAX_GENERATED_KEY = "max_generated"


class EvalQuestion(BaseModel):
    """One evaluation question and the documents that answer it."""

    model_config = ConfigDict(frozen=True)

    question_id: str = Field(min_length=1, description="content hash of question and label")
    question: str = Field(min_length=1)
    document_ids: tuple[str, ...] = Field(min_length=1, description="the answering documents")
    section: str = Field(default="", description="heading path of the answering section")
    platform: str = ""
    source: str = Field(description="generator label, or hand-written:<set name>")
    tags: tuple[str, ...] = ()
    reference_time: datetime | None = Field(
        default=None, description="what relative dates in the question ('last year') refer to"
    )


class QuestionSetVersion(BaseModel):
    """One immutable question set of an author: the content hash of its questions and config."""

    model_config = ConfigDict(frozen=True)

    version: str = Field(min_length=8)
    author: str
    created_at: datetime
    generator_config: dict[str, object] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    source_document_ids: tuple[str, ...] = ()


class QuestionSetSnapshot(BaseModel):
    """A question set version with its questions."""

    model_config = ConfigDict(frozen=True)

    version: QuestionSetVersion
    questions: tuple[EvalQuestion, ...] = ()

    @property
    def texts(self) -> list[str]:
        return [q.question for q in self.questions]
