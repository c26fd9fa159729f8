"""The dbt warehouse on the sample author: staging → intermediate → enrichment → marts.

A scratch Postgres database and Mongo database are loaded the way the platform loads them (raw
store upsert, then the incremental extract-load), and the pipeline runs in the DAG's order:
`dbt build` of the staging and intermediate groups, the enrichment step, `dbt build` of the marts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from pymongo import MongoClient

from twin.domain.documents import DocumentKind, Platform, RawDocument
from twin.settings import Settings
from twin.store.extract_load import extract_load
from twin.store.raw_documents import RawDocumentStore, document_id
from twin.store.warehouse import scratch_database
from twin.warehouse.dbt import DbtFailed, DbtRunResult, dbt_env, run_dbt
from twin.warehouse.enrich import (
    EnrichResult,
    detect_language,
    enrich_documents,
    hashvalues_from_bytes,
    is_near_duplicate,
    minhash_of,
    shingles,
    signature_bytes,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AUTHOR = "Ada Lindqvist"
ORIGIN = "http://sample-author.invalid"
REPOSITORY_DATE = datetime(2024, 5, 1, tzinfo=UTC)

# Personal data seeded in the sample author's writing (include/sample_author/README.md).
SEEDED_PII = (
    "ada@lindqvist.example",
    "+46 70 123 45 67",
    "sk-test-51Hq8Ada7LindqvistF4keK3y0000",
    "sk-test-9c1fAdaLindqvistExampleKey42",
)
CROSS_POSTS = (
    ("linkedin/ship-the-boring-version-first", "blog/ship-the-boring-version-first"),
    ("linkedin/reranking-is-cheap-insurance", "blog/reranking-is-cheap-insurance"),
)

# A page as a careless HTML-to-markdown conversion leaves it: every kind of PII the redaction
# knows, platform chrome, an image, HTML remnants and a zero-width space.
CONTACT_PAGE = """Working with me

I take on a few advisory projects a year. Write to ada.work@example.org, or call \
+46 70 123 45 67, (555) 123-4567 or 070-123 45 67 during office hours.
Letters reach me at 12 Main Street in Springfield or at Storgatan 5 in Stockholm.

![the team at the offsite](https://example.org/team.png)
<div class="note">Office hours are on Tues\u200bdays, <strong>after lunch</strong>.</div>

```python
client = Client(api_key="abcd1234efgh5678")
GITHUB_TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
AWS_ACCESS_KEY_ID = AKIAIOSFODNN7EXAMPLE
```

Subscribe now
Share this post
Thanks for reading The Boring Pipeline! Subscribe for free to receive new posts.
Originally published at https://example.org/contact
We use cookies to improve your experience. Accept all cookies
> Join our newsletter for the next one
**Follow me** on Mastodon
Cookie settings
Open in app
6 min read
Leave a comment
Clap if this helped
"""


def url_of(key: str) -> str:
    """The URL a sample document is stored under (`platform/slug`)."""
    return f"{ORIGIN}/{key}/"


def id_of(key: str) -> str:
    return document_id(url_of(key))


def sample_raw_documents() -> list[RawDocument]:
    """The sample author's writing and repositories as crawled documents, plus a contact page."""
    from sample_author import load_documents
    from sample_author.content import REPOS_DIR
    from twin.crawl.github import read_repository

    docs = [
        RawDocument(
            url=url_of(doc.key),
            platform=Platform(doc.platform),
            kind=DocumentKind(doc.kind),
            author=AUTHOR,
            title=doc.title,
            text=doc.body,
            published_at=doc.date,
        )
        for doc in load_documents()
    ]
    for repo in sorted(p for p in REPOS_DIR.iterdir() if p.is_dir()):
        files, _ = read_repository(repo)
        readme = next(f for f in files if f.path.lower().startswith("readme"))
        docs.append(
            RawDocument(
                url=url_of(f"git/{repo.name}"),
                platform=Platform.GITHUB,
                kind=DocumentKind.REPOSITORY,
                author=AUTHOR,
                title=repo.name,
                text=readme.text,
                published_at=REPOSITORY_DATE,
                files=tuple(f for f in files if f is not readme),
            )
        )
    docs.append(
        RawDocument(
            url=url_of("blog/work-with-me"),
            platform=Platform.BLOG,
            kind=DocumentKind.ARTICLE,
            author=AUTHOR,
            title="Work with me",
            text=CONTACT_PAGE,
            published_at=datetime(2024, 12, 20, tzinfo=UTC),
        )
    )
    return docs


@dataclass(frozen=True)
class PipelineRun:
    """One pass of the warehouse pipeline in the DAG's order."""

    intermediate: DbtRunResult
    enrichment: EnrichResult
    marts: DbtRunResult


@dataclass
class Warehouse:
    """A scratch warehouse database loaded with the sample author."""

    settings: Settings
    dsn: str
    target_path: Path

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn)

    def dbt(self, *args: str) -> DbtRunResult:
        return run_dbt(list(args), self.settings, target_path=self.target_path)

    def pipeline(self) -> PipelineRun:
        intermediate = self.dbt("build", "--select", "tag:staging", "tag:intermediate")
        with self.connect() as conn:
            enrichment = enrich_documents(conn)
        return PipelineRun(intermediate, enrichment, self.dbt("build", "--select", "tag:marts"))

    def show(self, sql: str) -> list[dict]:
        """The rows of `dbt show --inline SQL` (the project's macros available), every row."""
        shown = self.dbt("show", "--inline", sql, "--output", "json", "--limit", "-1", "--quiet")
        out = shown.output_tail
        return json.loads(out[out.index("{") :])["show"]

    def rows(self, sql: str, *params: object) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def mart_snapshot(self) -> dict[str, tuple[str, datetime, str]]:
        """Per mart document: (md5 of the whole row, updated_at, xmin: changes on any rewrite)."""
        rows = self.rows(
            "select document_id, md5(d::text), updated_at, xmin::text from marts.documents d"
        )
        return {row[0]: tuple(row[1:]) for row in rows}

    def mart_checksum(self) -> str:
        return self.rows(
            "select md5(string_agg(md5(d::text), '' order by document_id)) from marts.documents d"
        )[0][0]


@pytest.fixture(scope="module")
def warehouse(stack_settings: Settings, tmp_path_factory) -> Iterator[Warehouse]:
    """A scratch Postgres + Mongo database pair, loaded through the raw store and extract-load."""
    with scratch_database(stack_settings.require("warehouse_dsn"), "t_dbt") as dsn:
        name = dsn.rsplit("/", 1)[1]
        client = MongoClient(stack_settings.require("mongo_uri"), tz_aware=True)
        try:
            store = RawDocumentStore(client[name])
            store.ensure_indexes()
            store.upsert(sample_raw_documents())
            with psycopg.connect(dsn) as conn:
                loaded = extract_load(client[name], conn)
            assert loaded.inserted == len(sample_raw_documents())
            yield Warehouse(
                settings=stack_settings.model_copy(update={"warehouse_dsn": dsn}),
                dsn=dsn,
                target_path=tmp_path_factory.mktemp("dbt") / "target",
            )
        finally:
            client.drop_database(name)
            client.close()


@pytest.fixture(scope="module")
def first_run(warehouse: Warehouse) -> PipelineRun:
    return warehouse.pipeline()


def test_dbt_build_passes_on_the_sample_author(warehouse: Warehouse, first_run: PipelineRun):
    for result in (first_run.intermediate, first_run.marts):
        assert result.success, result.output_tail
        assert not result.failed_nodes
    built = {n.name for n in first_run.intermediate.nodes + first_run.marts.nodes}
    assert {
        "stg_raw__documents",
        "int_documents__cleaned",
        "int_documents__deduplicated",
        "int_documents__exact_duplicates",
        "documents",
        "authors",
        "author_stats",
        "near_duplicates",
    } <= built
    sample = len(sample_raw_documents())
    assert first_run.enrichment.documents == sample
    assert first_run.enrichment.languages == {"en": sample}
    # every document but the two cross-post copies reaches the mart
    assert warehouse.rows("select count(*) from marts.documents")[0][0] == sample - 2
    ((author, documents, platforms),) = warehouse.rows(
        "select author, documents, platforms from marts.authors"
    )
    assert (author, documents) == (AUTHOR, sample - 2)
    assert platforms == ["blog", "github", "linkedin", "medium", "substack"]
    expected = Counter(doc.platform.value for doc in sample_raw_documents())
    expected.subtract(copy.split("/")[0] for _, copy in CROSS_POSTS)
    stats = dict(warehouse.rows("select platform, documents from marts.author_stats"))
    assert stats == dict(expected)


def test_seeded_pii_is_replaced_by_placeholders(warehouse: Warehouse, first_run: PipelineRun):
    bodies = dict(warehouse.rows("select url, coalesce(title, '') || body from marts.documents"))
    leaks = [(url, pii) for url, text in bodies.items() for pii in SEEDED_PII if pii in text]
    assert leaks == []
    assert "[EMAIL]" in bodies[url_of("substack/why-this-newsletter")]
    assert "[EMAIL]" in bodies[url_of("blog/hello-again")]
    assert "call me on [PHONE]" in bodies[url_of("linkedin/meetup-stockholm")]
    assert 'OpenAI(api_key="[SECRET]")' in bodies[url_of("medium/lora-on-a-budget")]
    assert "api_key: [SECRET]" in bodies[url_of("blog/cost-per-answer")]


def test_cleaning_strips_chrome_and_redacts_every_kind_of_pii(
    warehouse: Warehouse, first_run: PipelineRun
):
    ((body, redactions),) = warehouse.rows(
        "select body, redactions from intermediate.int_documents__cleaned where url = %s",
        url_of("blog/work-with-me"),
    )
    assert "Write to [EMAIL], or call [PHONE], [PHONE] or [PHONE] during office hours." in body
    assert "Letters reach me at [ADDRESS] in Springfield or at [ADDRESS] in Stockholm." in body
    assert 'client = Client(api_key="[SECRET]")' in body
    assert 'GITHUB_TOKEN = "[SECRET]"' in body
    assert "AWS_ACCESS_KEY_ID = [SECRET]" in body
    assert redactions == 9
    assert "Office hours are on Tuesdays, after lunch." in body
    for gone in (
        "Subscribe",
        "Share this",
        "Thanks for reading",
        "Originally published",
        "cookies",
        "Join our newsletter",
        "Follow me",
        "Cookie settings",
        "Open in app",
        "min read",
        "Leave a comment",
        "Clap if",
        "![",
        "<div",
        "<strong>",
        "\u200b",
    ):
        assert gone not in body, gone
    # the repository's clean text is its README and docs, without code
    ((repo_body,),) = warehouse.rows(
        "select body from marts.documents where url = %s", url_of("git/tidy-vectors")
    )
    assert "# tidy-vectors" in repo_body
    assert "def " not in repo_body and "create table" not in repo_body.lower()


# One line of each kind `boilerplate_line_patterns` removes, each a whole text of its own: the
# keyword test in front of the patterns must let every one of them through.
BOILERPLATE_LINES = (
    "Subscribe",
    "> Join our newsletter for the next one",
    "Sign up now",
    "**Follow me** on Mastodon",
    "Share on LinkedIn",
    "Thanks for reading!",
    "Originally published at https://example.org/post",
    "This website uses cookies to give you the best experience.",
    "Manage cookies",
    "Cookie preferences",
    "Read the rest in the app",
    "6 min read",
    "- Leave a comment",
    "Restack",
    "Give it a clap",
)
KEPT_LINES = (
    "I read the app's logs for six minutes.",
    "We share one on-call rotation.",
)


def test_every_boilerplate_pattern_removes_a_line_that_stands_alone(warehouse: Warehouse):
    quoted = (line.replace("'", "''") for line in BOILERPLATE_LINES + KEPT_LINES)
    rows = ", ".join(f"('{line}')" for line in quoted)
    shown = warehouse.show(
        "select line, {{ remove_boilerplate('line') }} as cleaned"
        f" from (values {rows}) as t(line)"
    )
    cleaned = {r["line"]: r["cleaned"] for r in shown}
    assert {line: cleaned[line] for line in BOILERPLATE_LINES} == dict.fromkeys(
        BOILERPLATE_LINES, ""
    )
    assert {line: cleaned[line] for line in KEPT_LINES} == {line: line for line in KEPT_LINES}


# Texts of several lines and what remove_boilerplate leaves of each: a boilerplate line goes with
# the newline that ends it, a last one leaves the newline before it, neighbours both go, and a
# paragraph that only mentions a keyword stays.
BOILERPLATE_TEXTS = {
    "Intro.\nSubscribe\nBody.": "Intro.\nBody.",
    "Intro.\n\nSubscribe now for free\n> Follow me on Mastodon\nBody.\n": "Intro.\n\nBody.\n",
    "Body.\nThanks for reading!": "Body.\n",
    "Thanks for reading!\n": "",
    "6 min read\nBody.": "Body.",
    "The newsletter went out late, so I wrote about it.\nShare on LinkedIn\n": (
        "The newsletter went out late, so I wrote about it.\n"
    ),
    "Our newsletter\nIt subscribes to nothing.": "Our newsletter\nIt subscribes to nothing.",
}


def test_boilerplate_lines_leave_with_their_newline(warehouse: Warehouse):
    rows = ", ".join(
        f"({n}, E'{text.replace(chr(92), chr(92) * 2).replace(chr(10), chr(92) + 'n')}')"
        for n, text in enumerate(BOILERPLATE_TEXTS)
    )
    shown = warehouse.show(
        "select n, {{ remove_boilerplate('text') }} as cleaned"
        f" from (values {rows}) as t(n, text)"
    )
    cleaned = {r["n"]: r["cleaned"] for r in shown}
    assert [cleaned[n] for n in range(len(BOILERPLATE_TEXTS))] == list(BOILERPLATE_TEXTS.values())


CLEAN_DOCUMENT = "intermediate.clean_document(text, text, jsonb, text)"


def test_a_stale_cleaning_function_is_replaced_before_the_model_runs(
    warehouse: Warehouse, first_run: PipelineRun
):
    """The cleaning is the function `intermediate.clean_document`, installed by the model's
    pre-hook; one left by another definition (an edited macro, a hand edit) is replaced at the
    next build, even one that cleans nothing new."""
    probe = (
        "select (intermediate.clean_document('post', %s, '[]'::jsonb, 'A  title')).body",
        "Write to jane.doe@example.org\u00a0today.",
    )
    assert warehouse.rows(*probe) == [("Write to [EMAIL] today.",)]
    with warehouse.connect() as conn:
        conn.execute(
            """create or replace function intermediate.clean_document(
                   document_kind text, body_markdown text, repository_files jsonb,
                   raw_title text, out title text, out body text, out word_count integer,
                   out clean_hash text, out redactions integer)
               language plpgsql immutable as $$ begin body := body_markdown; end $$"""
        )
        conn.execute(f"comment on function {CLEAN_DOCUMENT} is 'another definition'")
    assert warehouse.rows(*probe) == [("Write to jane.doe@example.org\u00a0today.",)]

    assert warehouse.dbt("build", "--select", "int_documents__cleaned").success
    assert warehouse.rows(*probe) == [("Write to [EMAIL] today.",)]
    (digest,) = warehouse.rows(f"select obj_description('{CLEAN_DOCUMENT}'::regprocedure)")[0]
    assert digest != "another definition" and len(digest) == 32


def test_a_mart_row_that_still_holds_pii_never_lands(warehouse: Warehouse, first_run: PipelineRun):
    """A redaction that missed (a clean body edited behind dbt's back) fails the marts build, and
    what the build wrote rolls back: the mart keeps what it had, and the failure names the
    document, not the text."""
    (doc_id,) = warehouse.rows(
        "select document_id from marts.documents order by document_id limit 1"
    )[0]
    before = warehouse.mart_snapshot()
    with warehouse.connect() as conn:
        (body,) = conn.execute(
            "select body from intermediate.int_documents__cleaned where document_id = %s",
            (doc_id,),
        ).fetchone()
        conn.execute(
            "update intermediate.int_documents__cleaned set body = %s where document_id = %s",
            (body + "\n\nWrite to jane.doe@example.org for the slides.", doc_id),
        )
    try:
        with pytest.raises(DbtFailed) as failed:
            warehouse.dbt("build", "--select", "tag:marts")
        report = str(failed.value)
        assert "model documents" in report and doc_id in report, report
        assert "PII pattern" in report and "jane.doe" not in report, report
        assert warehouse.mart_snapshot() == before
    finally:
        with warehouse.connect() as conn:
            conn.execute(
                "update intermediate.int_documents__cleaned set body = %s where document_id = %s",
                (body, doc_id),
            )
    assert warehouse.dbt("build", "--select", "tag:marts").success
    assert warehouse.mart_snapshot() == before


def test_cross_posts_collapse_to_the_earliest_copy(warehouse: Warehouse, first_run: PipelineRun):
    in_mart = {row[0] for row in warehouse.rows("select document_id from marts.documents")}
    recorded = {
        row[0]: row[1:]
        for row in warehouse.rows(
            "select duplicate_document_id, canonical_document_id, match_type, jaccard "
            "from marts.near_duplicates"
        )
    }
    assert first_run.enrichment.near_duplicates == len(CROSS_POSTS)
    for original, copy in CROSS_POSTS:
        assert id_of(original) in in_mart
        assert id_of(copy) not in in_mart
        canonical, match, jaccard = recorded[id_of(copy)]
        assert (canonical, match) == (id_of(original), "near")
        assert 0.5 < jaccard < 1.0
    assert len(recorded) == len(CROSS_POSTS)


def test_rerun_without_raw_changes_changes_no_mart_row(
    warehouse: Warehouse, first_run: PipelineRun
):
    before, checksum = warehouse.mart_snapshot(), warehouse.mart_checksum()
    again = warehouse.pipeline()
    assert again.enrichment.analysed == 0
    assert again.enrichment.changed == 0
    assert warehouse.mart_checksum() == checksum
    assert warehouse.mart_snapshot() == before  # same values, same updated_at, not even rewritten


@dataclass(frozen=True)
class Changes:
    before: dict[str, tuple[str, datetime, str]]
    after: dict[str, tuple[str, datetime, str]]
    run: PipelineRun
    copied: str
    copy_id: str
    edited: str
    deleted: str


@pytest.fixture(scope="module")
def changes(warehouse: Warehouse, first_run: PipelineRun) -> Changes:
    """One raw document copied under another URL, one edited, one deleted; then a pipeline run."""
    copied, edited, deleted = (
        id_of("medium/hybrid-search-bm25"),
        id_of("linkedin/count-the-rows"),
        id_of("blog/the-tuesday-test"),
    )
    copy_url = f"{ORIGIN}/blog/syndicated/hybrid-search-bm25/"
    copy_id = document_id(copy_url)
    before = warehouse.mart_snapshot()
    with warehouse.connect() as conn:
        # the copy differs only in line endings and trailing blanks: the same text, normalised
        conn.execute(
            """insert into raw.documents
               select %s, %s, 'blog', kind, author, title,
                      replace(content, E'\\n', E'  \\r\\n'), published_at + interval '30 days',
                      md5(content || 'copy'), word_count, source_url, first_seen, last_changed,
                      fetched_at, null, 1, payload, now()
               from raw.documents where document_id = %s""",
            (copy_id, copy_url, copied),
        )
        conn.execute(
            """update raw.documents
               set content = content || E'\\n\\nEdited: and count them again after the load.',
                   content_hash = md5(content || 'edited'), version = version + 1,
                   loaded_at = now()
               where document_id = %s""",
            (edited,),
        )
        conn.execute(
            """update raw.documents set deleted_at = now(), version = version + 1,
                   loaded_at = now()
               where document_id = %s""",
            (deleted,),
        )
    run = warehouse.pipeline()
    return Changes(before, warehouse.mart_snapshot(), run, copied, copy_id, edited, deleted)


def test_exact_duplicate_is_removed(warehouse: Warehouse, changes: Changes):
    assert changes.copy_id not in changes.after
    assert changes.after[changes.copied] == changes.before[changes.copied]
    assert warehouse.rows(
        "select duplicate_of from intermediate.int_documents__exact_duplicates "
        "where document_id = %s",
        changes.copy_id,
    ) == [(changes.copied,)]
    assert warehouse.rows(
        "select canonical_document_id, match_type from marts.near_duplicates "
        "where duplicate_document_id = %s",
        changes.copy_id,
    ) == [(changes.copied, "exact")]


def test_editing_one_document_changes_exactly_its_row(warehouse: Warehouse, changes: Changes):
    kept = set(changes.before) & set(changes.after)
    changed = {doc for doc in kept if changes.after[doc] != changes.before[doc]}
    assert changed == {changes.edited}
    assert changes.after[changes.edited][1] > changes.before[changes.edited][1]  # updated_at
    assert changes.run.enrichment.analysed == 1
    ((body,),) = warehouse.rows(
        "select body from marts.documents where document_id = %s", changes.edited
    )
    assert body.endswith("Edited: and count them again after the load.")


def test_deleted_document_leaves_the_marts(warehouse: Warehouse, changes: Changes):
    assert changes.deleted in changes.before
    assert set(changes.before) - set(changes.after) == {changes.deleted}
    assert warehouse.rows(
        "select is_deleted from intermediate.int_documents__cleaned where document_id = %s",
        changes.deleted,
    ) == [(True,)]
    assert changes.run.enrichment.removed == 1
    ((documents,),) = warehouse.rows("select documents from marts.authors")
    assert documents == len(changes.after)


def test_docs_generate(warehouse: Warehouse, changes: Changes):
    result = warehouse.dbt("docs", "generate")
    assert result.success
    catalog = (warehouse.target_path / "catalog.json").read_text()
    for relation in ("marts.documents", "intermediate.int_documents__cleaned"):
        assert f'"model.twin_warehouse.{relation.split(".")[1]}"' in catalog


def test_dbt_env_reads_tcp_and_socket_dsns(stack_settings: Settings):
    tcp = stack_settings.model_copy(
        update={"warehouse_dsn": "postgresql://etl:p%40ss@db.internal:6543/twin?sslmode=require"}
    )
    assert dbt_env(tcp) == {
        "TWIN_DBT_HOST": "db.internal",
        "TWIN_DBT_PORT": "6543",
        "TWIN_DBT_USER": "etl",
        "TWIN_DBT_PASSWORD": "p@ss",
        "TWIN_DBT_DBNAME": "twin",
        "TWIN_DBT_SSLMODE": "require",
    }
    socket = stack_settings.model_copy(
        update={"warehouse_dsn": "postgresql://postgres@/twin?host=/tmp/twin-pg"}
    )
    env = dbt_env(socket)
    assert (env["TWIN_DBT_HOST"], env["TWIN_DBT_PORT"], env["TWIN_DBT_DBNAME"]) == (
        "/tmp/twin-pg",
        "5432",
        "twin",
    )


def test_language_and_signatures_are_deterministic():
    text = "Every task must be idempotent: a pipeline without a rerun story is a rumour. " * 3
    assert detect_language(text) == detect_language(text)
    assert detect_language(text)[0] == "en"
    assert detect_language("Ship it.") == ("und", 0.0)
    sig, size = minhash_of(text)
    restored = hashvalues_from_bytes(signature_bytes(sig))
    assert restored is not None and (restored == sig.hashvalues).all()
    assert size == len(shingles(text))
    assert shingles("One two, THREE four five six!") == {
        "one two three four five",
        "two three four five six",
    }
    assert hashvalues_from_bytes(b"short") is None


def test_near_duplicate_rule():
    assert is_near_duplicate(0.85, 100, 300)  # high Jaccard whatever the lengths
    assert is_near_duplicate(0.68, 156, 129)  # an edited cross-post: mostly contained
    assert not is_near_duplicate(0.3, 100, 100)
    assert not is_near_duplicate(0.4, 30, 400)  # a short post quoted in a long article
