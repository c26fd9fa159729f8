"""An author's evaluation question set, built from their own marts: a writer who is not the
sample author (her own name, topics and platforms) gets questions generated from her sections,
each labelled with the document that answers it, versioned in `ml`, shown by `twin datasets
questions`, used by her dataset's decontamination and by the retrieval evaluation; nothing of the
sample author's set is mixed in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from typer.testing import CliRunner

from tests.integration.test_feature_pipeline import MARTS_DDL, clean_hash
from twin.cli import app
from twin.datasets.build import DatasetOptions, build_dataset
from twin.datasets.generators import build_generator
from twin.datasets.questions import build_question_set
from twin.settings import Settings
from twin.store.questions import latest_question_set, list_question_sets
from twin.store.warehouse import scratch_database

pytestmark = pytest.mark.integration

AUTHOR = "Rosa Quintero"
TEMPLATE_WORDS = {"what", "do", "you", "say", "about", "and", "does", "matter", "when", "it"}
TEMPLATE_WORDS |= {"comes", "to", "why", "how", "think"}
PARAGRAPH = (
    "I keep four hives on the roof of a print shop in Valencia, and every spring the same "
    "question comes back: how much honey can a city colony spare before winter? My rule is to "
    "leave eighteen kilos per hive and to weigh them with a luggage scale in October. "
)
DOCUMENTS = {
    "rq-blog-swarm": (
        "blog",
        "article",
        "Catching a swarm on a Tuesday",
        "## The call\n\n"
        + "The print shop owner phoned at seven: a cloud of bees hung from the fire escape. "
        "A swarm is the colony splitting, not an attack, and a cardboard box with a frame of "
        "old comb is enough to collect it if you move slowly and keep the queen inside. "
        * 2
        + "\n\n## Afterwards\n\n"
        + "I hived the swarm in an empty box and fed it sugar syrup for a week; by August it "
        "had drawn seven frames of comb and outgrew the colony it left. " * 2,
    ),
    "rq-substack-honey": (
        "substack",
        "post",
        "How much honey to leave",
        PARAGRAPH * 2,
    ),
    "rq-linkedin-varroa": (
        "linkedin",
        "post",
        "Varroa counts",
        "Every month I count varroa mites with a sugar roll: three hundred bees in a jar, a "
        "spoon of icing sugar, two minutes of shaking. More than nine mites means treatment "
        "with oxalic acid before the brood is capped. Counting takes ten minutes per hive and "
        "it has saved more colonies than any gadget I have bought.",
    ),
    "rq-medium-wax": (
        "medium",
        "article",
        "Rendering beeswax in a slow cooker",
        "## Why bother\n\n"
        + "Old comb carries wax moth eggs and pesticide residue, so I melt it down each "
        "autumn. A slow cooker at its lowest setting, a nylon stocking as a filter and a "
        "silicone mould give clean blocks without a solar melter. " * 2,
    ),
    "rq-github-hivelog": (
        "github",
        "repository",
        "hivelog",
        "hivelog records hive inspections as plain YAML files: the date, the weather, frames "
        "of brood, frames of honey, the queen seen or not, and notes. A command prints the "
        "weight curve of each hive across the season and warns when a colony is light. " * 2,
    ),
}


@pytest.fixture(scope="module")
def her_marts(stack_settings: Settings) -> Iterator[Settings]:
    """A scratch warehouse holding only her documents in `marts.documents`."""
    with scratch_database(stack_settings.require("warehouse_dsn"), "t_qs") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(MARTS_DDL)
            with conn.cursor().copy("copy marts.documents from stdin") as copy:
                for doc_id, (platform, kind, title, body) in DOCUMENTS.items():
                    copy.write_row(
                        (doc_id, AUTHOR, platform, kind, title, f"https://rq.invalid/{doc_id}",
                         datetime(2024, 5, 1, tzinfo=UTC), len(body.split()), "en", body,
                         clean_hash(title, body), datetime(2025, 1, 1, tzinfo=UTC))
                    )  # fmt: skip
        yield stack_settings.model_copy(update={"warehouse_dsn": dsn, "author": AUTHOR})


def test_her_questions_are_generated_from_her_sections_and_labelled_with_her_documents(
    her_marts: Settings,
) -> None:
    generator = build_generator("offline", her_marts)
    result, _ = build_question_set(her_marts, AUTHOR, generator)
    again, _ = build_question_set(her_marts, AUTHOR, generator)
    print("question set", json.dumps(result.as_dict(), default=str))

    assert result.created and result.author == AUTHOR
    assert result.questions == result.generated == len(DOCUMENTS)
    assert result.hand_written == 0  # the sample author's hand-written set is not hers
    assert result.documents_covered == len(DOCUMENTS)
    stored = latest_question_set(her_marts, AUTHOR)
    assert stored is not None and stored.version.version == result.version
    assert {q.document_ids for q in stored.questions} == {(d,) for d in DOCUMENTS}
    for q in stored.questions:
        body = DOCUMENTS[q.document_ids[0]][3]
        assert q.question.endswith("?") and q.source.startswith("offline")
        # the question names something the labelled document says (beyond its template)
        words = {w.strip("?,.\"'").lower() for w in q.question.split()} - TEMPLATE_WORDS
        assert words & set(body.lower().replace(",", " ").replace(".", " ").split()), q
    assert (again.version, again.created, again.rows_written) == (result.version, False, 0)
    assert again.generator_calls == 0
    assert [v.author for v in list_question_sets(her_marts)] == [AUTHOR]


def test_twin_datasets_questions_shows_her_set(her_marts: Settings, monkeypatch) -> None:
    result, _ = build_question_set(her_marts, AUTHOR, build_generator("offline", her_marts))
    monkeypatch.setenv("WAREHOUSE_DSN", her_marts.warehouse_dsn)
    monkeypatch.setenv("TWIN_AUTHOR", AUTHOR)

    shown = CliRunner().invoke(app, ["datasets", "questions", "--examples", "10"])
    as_json = CliRunner().invoke(app, ["datasets", "questions", "--json"])

    assert shown.exit_code == 0, shown.output
    assert result.version[:16] in shown.output and "rq-linkedin-varroa" in shown.output
    data = json.loads(as_json.output)
    assert data["version"]["author"] == AUTHOR and len(data["questions"]) == len(DOCUMENTS)
    assert data["version"]["counts"]["documents_covered"] == len(DOCUMENTS)


def test_her_dataset_is_decontaminated_against_her_questions_and_retrieval_scored_on_them(
    her_marts: Settings,
) -> None:
    from twin.features.embed import Embedder
    from twin.features.pipeline import sync_features
    from twin.rag.evaluate import run_retrieval_eval

    _, snapshot = build_question_set(her_marts, AUTHOR, build_generator("offline", her_marts))
    copied = max(snapshot.questions, key=lambda q: len(q.question.split())).question
    body = (
        f"A reader wrote to me this week: {copied} My reply was long, about weighing hives in "
        "October, leaving enough stores and writing every inspection down in the same notebook."
    )
    with psycopg.connect(her_marts.warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            """insert into marts.documents (document_id, author, platform, document_kind, title,
                   body, clean_hash, language)
               values ('rq-copied-question', %s, 'substack', 'post', 'Mailbag', %s, %s, 'en')""",
            (AUTHOR, body, clean_hash("Mailbag", body)),
        )

    built = build_dataset(her_marts, DatasetOptions(author=AUTHOR, test_share=0.0))
    latest = latest_question_set(her_marts, AUTHOR)

    assert built.question_set["version"] == latest.version.version
    assert built.question_set["documents_covered"] == len(DOCUMENTS) + 1
    assert built.drop_reasons.get("decontamination_eval_question", 0) >= 1

    sync = sync_features(her_marts, embedder=Embedder.get(), progress=False)
    assert sync.chunks_written > 0 and not sync.failures
    scored = run_retrieval_eval(her_marts, author=AUTHOR)
    print(scored["table"])
    assert scored["labelled_set"] == f"ml:{latest.version.version}"
    assert scored["questions"] == len(DOCUMENTS) + 1 and not scored["skipped"]
    assert next(r for r in scored["rows"] if r["name"] == "hybrid")["recall_at_10"] > 0.5


def test_a_capped_build_asks_the_generator_for_that_many_questions(her_marts: Settings) -> None:
    # last in the module: it adds capped sets of hers
    generator = build_generator("offline", her_marts)
    capped, _ = build_question_set(her_marts, AUTHOR, generator, max_generated=2)
    assert (capped.generated, capped.documents_covered) == (2, 2)
    # a different cap is a different set, the uncapped one keeps every document
    whole, _ = build_question_set(her_marts, AUTHOR, generator)
    assert whole.version != capped.version and whole.generated == whole.documents > 2
    # a capped set built after it does not replace it as the set deployments ask
    newer, _ = build_question_set(her_marts, AUTHOR, generator, max_generated=1)
    assert newer.version not in (whole.version, capped.version)
    latest = latest_question_set(her_marts, AUTHOR)
    assert latest is not None and latest.version.version == whole.version
