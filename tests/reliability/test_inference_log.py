"""The serving log on a real Postgres: a row Postgres refuses is quarantined and the rest are
written, personal data never reaches the tables, and rows past the retention period go."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from twin.serving.inference_log import InferenceLogWriter
from twin.settings import Settings
from twin.store.serving import ensure_serving_schema, write_shadow_comparisons
from twin.store.warehouse import scratch_database

pytestmark = pytest.mark.integration


@pytest.fixture
def log_settings(stack_settings: Settings) -> Iterator[Settings]:
    """Settings pointing at a scratch warehouse database of this test."""
    with scratch_database(stack_settings.require("warehouse_dsn"), "twin_log") as dsn:
        yield stack_settings.model_copy(
            update={"warehouse_dsn": dsn, "serving_log_retention_days": 30}
        )


def log_row(query: str, **values) -> dict:
    return {
        "request_id": uuid.uuid4().hex,
        "model": "twin_rag",
        "query": query,
        "status": "ok",
        "latency_ms": {"total": 1.0},
        **values,
    }


def rows(settings: Settings, statement: str) -> list[tuple]:
    with psycopg.connect(settings.require("warehouse_dsn")) as conn:
        return conn.execute(statement).fetchall()


def test_a_row_postgres_refuses_is_quarantined_and_the_others_are_written(
    log_settings: Settings,
) -> None:
    writer = InferenceLogWriter(log_settings)
    bad = {
        "nul": log_row("what is\x00 the tuesday test?"),
        "nan": log_row("scores", retrieved=[{"chunk_id": "c1", "score": float("nan")}]),
        "out of range": log_row("tokens", prompt_tokens=2**40),
    }
    good = [log_row(f"question {i}") for i in range(3)]
    try:
        for row in (good[0], bad["nul"], good[1], bad["nan"], bad["out of range"], good[2]):
            writer.submit("inference_log", row)
        writer.submit(
            "shadow_comparisons",
            {
                "request_id": "mirror-1",
                "champion_version": 1,
                "shadow_version": 2,
                "prompt": "p",
                "champion_answer": "a",
                "shadow_answer": "b\x00",
            },
        )
        assert writer.flush(timeout_s=30), f"the batch never got written: {writer.last_error}"
    finally:
        writer.close()

    stored = rows(log_settings, "select request_id from serving.inference_log")
    assert {r[0] for r in stored} == {r["request_id"] for r in good}
    quarantined = rows(
        log_settings, "select target, request_id, error, row_json from serving.log_quarantine"
    )
    assert {(t, rid) for t, rid, _, _ in quarantined} == {
        *(("inference_log", r["request_id"]) for r in bad.values()),
        ("shadow_comparisons", "mirror-1"),
    }
    causes = {rid: error for _, rid, error, _ in quarantined}
    assert "NUL" in causes[bad["nul"]["request_id"]]
    assert "\\u0000" in next(j for _, rid, _, j in quarantined if rid == bad["nul"]["request_id"])
    assert writer.quarantined == 4 and writer.last_error is None


def test_personal_data_is_redacted_before_any_writer_stores_it(log_settings: Settings) -> None:
    email, phone, card = "ada.lindqvist@example.com", "+46 70 123 45 67", "4111 1111 1111 1111"
    writer = InferenceLogWriter(log_settings)
    try:
        writer.submit(
            "inference_log",
            log_row(f"I am {email}, call {phone}", status="error", error=f"bad {email}"),
        )
        assert writer.flush(timeout_s=30), writer.last_error
    finally:
        writer.close()
    # the deployment's replay writes its pairs itself, through the same store function
    with psycopg.connect(log_settings.require("warehouse_dsn"), autocommit=True) as conn:
        write_shadow_comparisons(
            conn,
            [
                {
                    "request_id": "replay:twin-llm/2:0:abc",
                    "champion_version": 1,
                    "shadow_version": 2,
                    "prompt": f"user: I am {email}",
                    "champion_answer": f"Write to {email} or call {phone}.",
                    "shadow_answer": f"My card is {card}.",
                }
            ],
        )
    stored = rows(
        log_settings,
        "select query || ' ' || error from serving.inference_log union all "
        "select prompt || ' ' || champion_answer || ' ' || shadow_answer "
        "from serving.shadow_comparisons",
    )
    text = " ".join(r[0] for r in stored)
    assert len(stored) == 2
    for secret in (email, "123 45 67", "4111"):
        assert secret not in text
    assert all(label in text for label in ("[EMAIL]", "[PHONE]", "[CARD]"))


def test_rows_older_than_the_retention_period_are_deleted(log_settings: Settings) -> None:
    with psycopg.connect(log_settings.require("warehouse_dsn"), autocommit=True) as conn:
        ensure_serving_schema(conn)
        for rid, days in (("old", 45), ("older", 400), ("recent", 3)):
            conn.execute(
                "insert into serving.inference_log (request_id, logged_at, model, query, status) "
                "values (%s, now() - make_interval(days => %s), 'twin_rag', 'q', 'ok')",
                (rid, days),
            )
        conn.execute(
            "insert into serving.shadow_comparisons (request_id, compared_at, champion_version, "
            "shadow_version, prompt, champion_answer) "
            "values ('old-pair', now() - interval '31 days', 1, 2, 'p', 'a')"
        )
        conn.execute(
            "insert into serving.log_quarantine (quarantined_at, target, error, row_json) "
            "values (now() - interval '90 days', 'inference_log', 'DataError', '{}')"
        )
    writer = InferenceLogWriter(log_settings)
    try:
        writer.submit("inference_log", log_row("today"))
        assert writer.flush(timeout_s=30), writer.last_error
    finally:
        writer.close()

    kept = rows(log_settings, "select request_id, query from serving.inference_log")
    assert sorted(q for _, q in kept) == ["q", "today"]
    assert ("recent", "q") in kept
    assert rows(log_settings, "select count(*) from serving.shadow_comparisons") == [(0,)]
    assert rows(log_settings, "select count(*) from serving.log_quarantine") == [(0,)]
    assert writer.expired == 4
