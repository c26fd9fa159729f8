"""Quality gates on a real Postgres: clean data passes, each kind of bad row stops its gate.

Every case starts from the same clean tables in a scratch database of this module; a case breaks
one thing and checks that the gate names the failing expectation and how many rows broke it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from twin.quality import QualityGateFailed, enforce_gate, gate_names, load_gate, run_gate
from twin.quality.gates import GateResult, sqlalchemy_url
from twin.quality.pii_detect import find_pii
from twin.quality.pii_gate import EXPECTATION as PII_EXPECTATION
from twin.settings import Settings
from twin.store.extract_load import ensure_raw_schema
from twin.store.object_store import object_store
from twin.store.warehouse import scratch_database

pytestmark = pytest.mark.integration

PLATFORM_KINDS = {
    "linkedin": "post",
    "medium": "article",
    "substack": "article",
    "github": "repository",
    "blog": "article",
}
ROWS = 40
DELETED = {5, 17}  # tombstones: no content, and the content checks must not count them

MARTS_DDL = """
create schema if not exists marts;
create table marts.documents (
    document_id   text,
    author        text,
    platform      text,
    document_kind text,
    title         text,
    url           text,
    published_at  timestamptz,
    word_count    integer,
    language      text,
    body          text,
    clean_hash    text,
    updated_at    timestamptz
);
create table marts.document_files (
    document_id  text,
    path         text,
    language     text,
    content      text,
    content_hash text,
    redactions   integer
);
"""
# a repository's source files: code, where secrets are most often left behind
FILES = {
    "src/loader.py": "def load(path):\n    # read the export once\n    return open(path).read()\n",
    "src/settings.py": 'TIMEOUT_S = 30\nAPI_TOKEN = os.environ["API_TOKEN"]  # [SECRET]\n',
}


@pytest.fixture(scope="module")
def settings(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings pointing at a scratch warehouse database and a scratch object store."""
    objects = tmp_path_factory.mktemp("quality-objects")
    with scratch_database(stack_settings.require("warehouse_dsn"), "twin_quality") as dsn:
        yield stack_settings.model_copy(
            update={"warehouse_dsn": dsn, "object_store_url": objects.as_uri()}
        )


@pytest.fixture
def warehouse(settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection to the scratch warehouse, its raw and mart tables freshly loaded, clean."""
    with psycopg.connect(settings.require("warehouse_dsn"), autocommit=True) as conn:
        conn.execute("drop table if exists raw.documents, marts.documents, marts.document_files")
        ensure_raw_schema(conn)
        conn.execute(MARTS_DDL)
        load_clean_rows(conn)
        yield conn


def load_clean_rows(conn: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    platforms = list(PLATFORM_KINDS)
    raw_rows, mart_rows = [], []
    for i in range(ROWS):
        platform = platforms[i % len(platforms)]
        kind = PLATFORM_KINDS[platform]
        deleted = i in DELETED
        url, published = f"https://example.org/{platform}/{i}", now - timedelta(days=30 + i)
        text = None if deleted else f"Ship the boring version first, then measure. Note {i}. " * 3
        raw_rows.append(
            (
                f"doc-{i:02d}",
                url,
                platform,
                kind,
                "Ada Lindqvist",
                f"Note {i}",
                text,
                published,
                f"hash-{i}",
                None if deleted else 27,
                f"https://example.org/{platform}",
                now - timedelta(days=20),
                now - timedelta(days=1),
                now - timedelta(hours=1),
                now - timedelta(hours=2) if deleted else None,
            )
        )
        body = f"Measure before you optimise; write it down, note {i}, and ship it."
        mart_rows.append(
            (
                f"doc-{i:02d}",
                "Ada Lindqvist",
                platform,
                kind,
                f"Note {i}",
                url,
                published,
                len(body.split()),
                "en",
                body,
                f"clean-{i}",
                now,
            )
        )
    with conn.cursor() as cur:
        cur.executemany(
            """insert into raw.documents (document_id, url, platform, kind, author, title, content,
                   published_at, content_hash, word_count, source_url, first_seen, last_changed,
                   fetched_at, deleted_at, version, payload)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1, '{}')""",
            raw_rows,
        )
        cur.executemany(
            "insert into marts.documents values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            mart_rows,
        )
        cur.executemany(
            "insert into marts.document_files values (%s, %s, 'python', %s, md5(%s), 0)",
            [
                (f"doc-{i:02d}", path, text, text)
                for i in range(ROWS)
                if PLATFORM_KINDS[platforms[i % len(platforms)]] == "repository"
                for path, text in FILES.items()
            ],
        )


def stored_runs(conn: psycopg.Connection, run_id: str) -> list[tuple]:
    return conn.execute(
        """select gate, success, evaluated, failed_count, row_count, data_docs_key,
                  jsonb_array_length(failures), result ? 'results'
           from quality.validation_results where run_id = %s""",
        (run_id,),
    ).fetchall()


def only_failure(result: GateResult):
    assert not result.success, result.report()
    assert len(result.failed) == 1, result.report()
    return result.failed[0]


def test_gates_and_their_suites_are_defined_in_expectations() -> None:
    assert gate_names() == ["marts_documents", "raw_documents"]
    assert load_gate("raw_documents").qualified_table == "raw.documents"
    assert load_gate("marts_documents").qualified_table == "marts.documents"
    with pytest.raises(ValueError, match="unknown quality gate 'nope'"):
        load_gate("nope")


def test_socket_dsn_gets_a_host_for_gx() -> None:
    assert sqlalchemy_url("postgresql://postgres@/twin?host=/tmp/pg") == (
        "postgresql+psycopg2://postgres@localhost/twin?host=/tmp/pg"
    )
    assert sqlalchemy_url("postgresql://u:p@127.0.0.1:5432/twin") == (
        "postgresql+psycopg2://u:p@127.0.0.1:5432/twin"
    )


def test_the_marts_gate_detector_catches_pii_and_spares_ordinary_prose() -> None:
    """The gate's detector is independent of the redaction patterns (no suite regex copies)."""
    suite = load_gate("marts_documents").suite
    assert not [e for e in suite["expectations"] if "regex" in e.get("kwargs", {})]

    def kinds(text: str) -> set[str]:
        return {f.kind for f in find_pii(text)}

    assert kinds("write to ada.lindqvist@example.com") == {"email"}
    assert kinds("call +46 70 123 45 67 or (212) 555-0142 or 212-555-0142") == {"phone"}
    assert kinds("token ghp_" + "a1B2" * 9) == {"secret"}
    assert kinds("AKIAIOSFODNN7EXAMPLE") == {"secret"}
    prose = "On 2024-01-15, risk-assessment-framework v1.2.3 shipped; [EMAIL] git@github.com:a/b"
    assert kinds(prose) == set()


def test_clean_data_passes_both_gates_and_every_run_is_kept(
    settings: Settings, warehouse: psycopg.Connection
) -> None:
    store = object_store(settings)
    # marts: 8 GX expectations plus the PII detector on title, body and the files' content
    for gate, evaluated in (("raw_documents", 16), ("marts_documents", 11)):
        result = run_gate(gate, settings)

        assert result.success, result.report()
        assert (result.evaluated, result.failed, result.row_count) == (evaluated, [], ROWS)
        assert result.report().startswith(f"Quality gate {gate} on ")
        assert "PASSED" in result.report()
        assert stored_runs(warehouse, result.run_id) == [
            (gate, True, evaluated, 0, ROWS, result.data_docs_key, 0, True)
        ]
        assert result.data_docs_key == f"quality/data_docs/{gate}/{result.run_id}/index.html"
        assert store.exists(result.data_docs_key)
        pages = store.list(f"quality/data_docs/{gate}/{result.run_id}/validations/")
        assert len(pages) == 1 and pages[0].endswith(".html")
        assert "Expectation Validation Result" in store.get(pages[0]).decode()


RAW_CASES = {
    "null content on a live document": (
        "update raw.documents set content = null where document_id = 'doc-01'",
        "expect_column_values_to_not_be_null",
        "content",
        1,
    ),
    "empty text": (
        "update raw.documents set content = '' where document_id = 'doc-02'",
        "expect_column_value_lengths_to_be_between",
        "content",
        1,
    ),
    "unknown platform": (
        "update raw.documents set platform = 'tiktok' where document_id = 'doc-03'",
        "expect_column_values_to_be_in_set",
        "platform",
        1,
    ),
    "fetched in the future": (
        "update raw.documents set fetched_at = now() + interval '1 day' "
        "where document_id = 'doc-04'",
        "expect_column_values_to_be_between",
        "fetched_at",
        1,
    ),
    # raw.documents enforces unique URLs itself; drop that constraint to show the expectation
    # still catches duplicates from a source that has none.
    "duplicate URL": (
        "alter table raw.documents drop constraint documents_url_key; "
        "insert into raw.documents (document_id, url, platform, kind, author, content, "
        "content_hash, last_changed, payload) select 'doc-dup', url, platform, kind, author, "
        "content, content_hash, last_changed, payload from raw.documents "
        "where document_id = 'doc-06'",
        "expect_column_values_to_be_unique",
        "url",
        2,
    ),
}


@pytest.mark.parametrize("case", list(RAW_CASES))
def test_raw_gate_stops_bad_rows(settings: Settings, warehouse: psycopg.Connection, case: str):
    statement, expectation, column, count = RAW_CASES[case]
    warehouse.execute(statement)

    result = run_gate("raw_documents", settings)

    failure = only_failure(result)
    assert (failure.expectation, failure.column, failure.unexpected_count) == (
        expectation,
        column,
        count,
    )
    assert f"x {expectation} [{column}]: {count} unexpected" in result.report()
    assert stored_runs(warehouse, result.run_id)[0][1:4] == (False, 16, 1)


MARTS_CASES = {
    "email left in body": (
        "update marts.documents set body = body || ' Write to ada.lindqvist@example.com.' "
        "where document_id = 'doc-03'",
        PII_EXPECTATION,
        "body",
        1,
        "email 1; rows doc-03",
    ),
    "phone numbers left in body": (
        "update marts.documents set body = body || ' Call +46 73 555 01 99.' "
        "where document_id = 'doc-04'; "
        "update marts.documents set body = body || ' Or (212) 555-0142.' "
        "where document_id = 'doc-05'",
        PII_EXPECTATION,
        "body",
        2,
        "phone 2; rows doc-04, doc-05",
    ),
    "access token left in body": (
        "update marts.documents set body = body || ' token ghp_" + "Ab3" * 12 + "' "
        "where document_id = 'doc-06'",
        PII_EXPECTATION,
        "body",
        1,
        "secret",
    ),
    "cloud key left in a repository file": (
        "update marts.document_files set content = content || "
        "'AWS_ACCESS_KEY_ID = \"AKIAIOSFODNN7EXAMPLE\"\n' "
        "where document_id = 'doc-03' and path = 'src/settings.py'",
        PII_EXPECTATION,
        "document_files.content",
        1,
        "secret 2; rows doc-03:src/settings.py",
    ),
    "e-mail left in a code comment": (
        "update marts.document_files set content = "
        "'# maintainer: ada.lindqvist@example.com\n' || content "
        "where document_id = 'doc-08' and path = 'src/loader.py'",
        PII_EXPECTATION,
        "document_files.content",
        1,
        "email 1; rows doc-08:src/loader.py",
    ),
    "zero word count": (
        "update marts.documents set word_count = 0 where document_id = 'doc-07'",
        "expect_column_values_to_be_between",
        "word_count",
        1,
        "word_count > 0",
    ),
    "language missing": (
        "update marts.documents set language = null where document_id = 'doc-08'",
        "expect_column_values_to_not_be_null",
        "language",
        1,
        "language",
    ),
    "duplicate document_id": (
        "insert into marts.documents select * from marts.documents where document_id = 'doc-09'",
        "expect_column_values_to_be_unique",
        "document_id",
        2,
        "one row per document",
    ),
}


@pytest.mark.parametrize("case", list(MARTS_CASES))
def test_marts_gate_stops_bad_rows(settings: Settings, warehouse: psycopg.Connection, case: str):
    statement, expectation, column, count, why = MARTS_CASES[case]
    warehouse.execute(statement)

    result = run_gate("marts_documents", settings)

    failure = only_failure(result)
    assert (failure.expectation, failure.column, failure.unexpected_count) == (
        expectation,
        column,
        count,
    )
    assert why in failure.detail
    assert f"x {expectation} [{column}]: {count} unexpected" in result.report()
    # PII found by the gate must not be copied into the stored result or the Data Docs.
    stored = warehouse.execute(
        "select result::text from quality.validation_results where run_id = %s", (result.run_id,)
    ).fetchone()[0]
    docs = object_store(settings).list(f"quality/data_docs/marts_documents/{result.run_id}/")
    html = "".join(
        object_store(settings).get(key).decode() for key in docs if key.endswith(".html")
    )
    planted = ("ada.lindqvist@example.com", "555 01 99", "(212) 555-0142", "ghp_Ab3", "AKIAIOSFOD")
    for secret in planted:
        assert secret not in stored
        assert secret not in html


def test_marts_row_count_collapse_against_last_successful_run(
    settings: Settings, warehouse: psycopg.Connection
) -> None:
    assert run_gate("marts_documents", settings).success
    warehouse.execute(
        "delete from marts.documents where document_id not in ('doc-01', 'doc-02', 'doc-03')"
    )

    result = run_gate("marts_documents", settings)

    failure = only_failure(result)
    assert (failure.expectation, failure.column, failure.unexpected_count) == (
        "expect_table_row_count_to_be_between",
        None,
        None,
    )
    assert "observed 3 (expected between 20 and 90)" in failure.detail
    assert result.row_count == 3
    # A failed run is no baseline: the next clean run is still measured against 40 rows.
    load_clean_rows_again(warehouse)
    assert run_gate("marts_documents", settings).success


def load_clean_rows_again(conn: psycopg.Connection) -> None:
    conn.execute("truncate raw.documents, marts.documents, marts.document_files")
    load_clean_rows(conn)


def test_missing_table_is_an_error_not_a_verdict(
    settings: Settings, warehouse: psycopg.Connection
) -> None:
    warehouse.execute("drop table marts.documents")

    with pytest.raises(RuntimeError, match=r"cannot read marts\.documents"):
        run_gate("marts_documents", settings)


def test_first_run_of_marts_gate_needs_at_least_one_row(
    settings: Settings, warehouse: psycopg.Connection
) -> None:
    warehouse.execute("delete from quality.validation_results where gate = 'marts_documents'")
    warehouse.execute("truncate marts.documents")

    failure = only_failure(run_gate("marts_documents", settings))

    assert failure.expectation == "expect_table_row_count_to_be_between"
    assert "observed 0 (expected at least 1)" in failure.detail


def test_enforce_gate_returns_a_summary_or_raises_the_report(
    settings: Settings, warehouse: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    summary = enforce_gate("raw_documents", settings)
    assert summary["success"] is True and summary["failed_count"] == 0
    assert summary["row_count"] == ROWS and summary["data_docs_key"].endswith("/index.html")

    warehouse.execute("update raw.documents set kind = 'tweet' where document_id = 'doc-10'")
    with (
        caplog.at_level(logging.ERROR, logger="twin.quality"),
        pytest.raises(QualityGateFailed) as raised,
    ):
        enforce_gate("raw_documents", settings)

    report = str(raised.value)
    assert report == raised.value.result.report()
    assert "raw_documents on raw.documents: FAILED" in report
    assert "x expect_column_values_to_be_in_set [kind]: 1 unexpected" in report
    assert "'tweet'" in report
    assert any(report in record.getMessage() for record in caplog.records)


def pii_scan_rows(caplog: pytest.LogCaptureFixture) -> dict[str, int]:
    """Rows each PII scan of the last gate run read, from its log lines."""
    scanned = {}
    for record in caplog.records:
        message = record.getMessage()
        if message.startswith("PII scan of "):
            table, rest = message.removeprefix("PII scan of ").split(": ", 1)
            scanned[table] = int(rest.split()[0])
    caplog.clear()
    return scanned


def test_pii_scan_reads_only_changed_rows_and_never_forgets_a_finding(
    settings: Settings, warehouse: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="twin.quality")
    assert run_gate("marts_documents", settings).success
    caplog.clear()
    assert run_gate("marts_documents", settings).success
    assert pii_scan_rows(caplog) == {"marts.documents": 0, "marts.document_files": 0}

    leaked = "Mail me at ada.lindqvist@example.com about the export."
    warehouse.execute(
        "update marts.documents set body = %s where document_id = 'doc-03'", (leaked,)
    )
    for _ in range(2):  # a finding is never remembered as clean: the next run fails again
        failure = only_failure(run_gate("marts_documents", settings))
        assert (failure.expectation, failure.column, failure.unexpected_count) == (
            PII_EXPECTATION,
            "body",
            1,
        )
        assert "rows doc-03" in failure.detail
        assert pii_scan_rows(caplog) == {"marts.documents": 1, "marts.document_files": 0}

    # A digest remembered by another detector (an older version) is not trusted, and is dropped.
    warehouse.execute(
        """insert into quality.pii_clean_cells (scope, detector, digest)
           values ('marts.documents.body', 'older-detector', md5(%s))""",
        (leaked,),
    )
    assert not run_gate("marts_documents", settings).success
    assert warehouse.execute(
        "select count(*) from quality.pii_clean_cells where detector = 'older-detector'"
    ).fetchone() == (0,)

    warehouse.execute(
        "update marts.documents set body = 'Measure, then ship.' where document_id = 'doc-03'"
    )
    assert run_gate("marts_documents", settings).success
    assert pii_scan_rows(caplog) == {"marts.documents": 1, "marts.document_files": 0}
    # The replaced body's digest is gone: the cache holds the column's current text only.
    assert warehouse.execute(
        """select count(*) from quality.pii_clean_cells c
           where c.scope = 'marts.documents.body'
             and c.digest not in (select md5(coalesce(body, '')) from marts.documents)"""
    ).fetchone() == (0,)
