"""The dataset build on the sample author's marts with the offline generator, in a scratch
warehouse: splits, versioning, lineage, incremental generation and decontamination."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
import pytest

from sample_author.questions import QUESTIONS
from tests.integration.test_feature_pipeline import clean_hash, sample_marts
from twin.datasets.build import BuildResult, DatasetOptions, build_dataset
from twin.datasets.labelled import load_questions
from twin.datasets.preference import lengths_match
from twin.domain.samples import Split
from twin.settings import Settings
from twin.store.datasets import (
    latest_dataset_version,
    list_dataset_versions,
    load_dataset_snapshot,
    version_sample_ids,
)
from twin.store.tracking import tracking_client

pytestmark = pytest.mark.integration

AUTHOR = "Ada Lindqvist"
EDITED = "medium/lora-on-a-budget"
OPTIONS = DatasetOptions(author=AUTHOR)


@pytest.fixture(scope="module")
def marts(stack_settings: Settings) -> Iterator[Settings]:
    with sample_marts(stack_settings, "dsets") as settings:
        yield settings


@pytest.fixture(scope="module")
def first(marts: Settings) -> BuildResult:
    return build_dataset(marts, OPTIONS)


def test_first_build_makes_a_version_with_both_splits_and_kinds(first, marts) -> None:
    assert first.created and first.rows_written > 0
    counts = first.counts
    assert counts["instruction/train"] > 100 and counts["instruction/test"] > 5
    assert counts["preference/train"] > 50 and counts["preference/test"] > 0
    assert first.drop_reasons.get("pii", 0) > 0  # the sample author's raw text holds a few
    snapshot = load_dataset_snapshot(marts, first.version[:12])
    assert snapshot.version.version == first.version
    assert len(snapshot.instructions) == counts["instruction/train"] + counts["instruction/test"]
    assert all(s.answer in _bodies(marts)[s.document_id] for s in snapshot.instructions)
    assert latest_dataset_version(marts, AUTHOR).version == first.version


def test_no_document_contributes_to_two_splits(first, marts) -> None:
    with psycopg.connect(marts.require("warehouse_dsn")) as conn:
        rows = conn.execute(
            """select s.document_id, count(distinct v.split)
               from ml.version_samples v join ml.samples s using (sample_id)
               where v.version = %s group by 1""",
            (first.version,),
        ).fetchall()
    assert len(rows) > 50
    assert [doc for doc, splits in rows if splits > 1] == []
    snapshot = load_dataset_snapshot(marts, first.version)
    test_docs = {s.document_id for s in snapshot.instructions if s.split == Split.TEST}
    train_docs = {s.document_id for s in snapshot.preferences if s.split == Split.TRAIN}
    assert test_docs and not test_docs & train_docs


def test_the_version_is_exported_and_logged_to_mlflow_as_a_dataset(first, marts) -> None:
    path = unquote(urlsplit(first.export_uri).path)
    lines = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    assert len(lines) == sum(
        v for k, v in first.counts.items() if k.count("/") == 1 and "documents" not in k
    )
    run = tracking_client(marts).get_run(first.mlflow_run_id)
    [dataset_input] = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == first.version[:32]
    assert first.export_uri in dataset_input.dataset.source


def test_preference_pairs_meet_the_length_rule_and_carry_no_sign_off(first, marts) -> None:
    snapshot = load_dataset_snapshot(marts, first.version)
    assert len(snapshot.preferences) > 50
    for pair in snapshot.preferences:
        assert lengths_match(pair.chosen, pair.rejected), pair.sample_id
        for side in (pair.chosen, pair.rejected):
            last = side.strip().splitlines()[-1].strip()
            assert "— Ada" not in side
            assert not side.rstrip().endswith("Ship the boring version first.")
            assert not last.startswith("#"), last
    # the author's posts do end with those sign-offs: stripping them was needed
    bodies = _bodies(marts)
    signed = [b for b in bodies.values() if b.rstrip().endswith("Ship the boring version first.")]
    assert len(signed) >= 10


def test_rerun_edit_and_contamination_are_incremental(first, marts) -> None:
    again = build_dataset(marts, OPTIONS)
    assert (again.version, again.created, again.rows_written) == (first.version, False, 0)
    assert again.generator_calls == 0 and again.cache_rows_written == 0
    assert len(list_dataset_versions(marts, AUTHOR)) == 1

    with psycopg.connect(marts.require("warehouse_dsn"), autocommit=True) as conn:
        title, body = conn.execute(
            "select title, body from marts.documents where document_id = %s", (EDITED,)
        ).fetchone()
        edited = body.replace("\n\n", "\n\nWe measured everything twice before we believed it. ", 1)
        conn.execute(
            "update marts.documents set body = %s, clean_hash = %s where document_id = %s",
            (edited, clean_hash(title, edited), EDITED),
        )
    changed = build_dataset(marts, OPTIONS)
    assert changed.created and changed.version != first.version
    assert changed.documents_generated == [EDITED]
    before = version_sample_ids(marts, first.version)
    after = version_sample_ids(marts, changed.version)
    moved = set(before) ^ set(after)
    assert moved
    snapshot = load_dataset_snapshot(marts, changed.version)
    old = load_dataset_snapshot(marts, first.version)
    owners = {s.sample_id: s.document_id for s in [*snapshot.instructions, *snapshot.preferences]}
    owners |= {s.sample_id: s.document_id for s in [*old.instructions, *old.preferences]}
    assert {owners[sid] for sid in moved} == {EDITED}

    hand_written = [q.question for q in load_questions(QUESTIONS).questions]
    question = next(q for q in hand_written if len(q.split()) >= 12)
    with psycopg.connect(marts.require("warehouse_dsn"), autocommit=True) as conn:
        conn.execute(
            """insert into marts.documents (document_id, author, platform, document_kind, title,
                   body, clean_hash, language)
               values ('linkedin/copied-question', %s, 'linkedin', 'post', 'A question', %s,
                       'h-copied', 'en')""",
            (AUTHOR, f"Someone asked me this week: {question} My answer was a long story about "
                     "reruns, partitions and the value of writing things down for colleagues."),
        )  # fmt: skip
    guarded = build_dataset(marts, OPTIONS)
    assert guarded.documents_generated == ["linkedin/copied-question"]
    assert guarded.drop_reasons["decontamination_eval_question"] >= 1
    final = load_dataset_snapshot(marts, guarded.version)
    assert "linkedin/copied-question" not in {s.document_id for s in final.instructions}


def _bodies(settings: Settings) -> dict[str, str]:
    with psycopg.connect(settings.require("warehouse_dsn")) as conn:
        return dict(conn.execute("select document_id, body from marts.documents").fetchall())
