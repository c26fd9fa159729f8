"""Code reaches the index: the sample author's git repositories crawled, loaded, transformed by
dbt (files with path and language in `marts.document_files`), chunked per function, and a
function found by its name with `twin search`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest

from tests.conftest import PROJECT_ROOT
from twin.crawl.run import crawl_source, plan_sources
from twin.features.pipeline import sync_features
from twin.store.extract_load import run_extract_load
from twin.store.mongo import mongo_client
from twin.store.warehouse import scratch_database
from twin.warehouse.dbt import run_dbt
from twin.warehouse.enrich import run_enrichment

pytestmark = pytest.mark.integration

REPOS = ("dagcheck", "tidy-vectors")


@pytest.fixture(scope="module")
def indexed(stack_settings, sample_site, tmp_path_factory):
    """The real pipeline, stage by stage, on the sample author's repositories."""
    with scratch_database(stack_settings.require("warehouse_dsn"), "t_code") as dsn:
        settings = sample_site.settings(stack_settings, warehouse_dsn=dsn)
        try:
            links = {"github": [sample_site.server.url(f"/git/{r}.git") for r in REPOS]}
            reports = [crawl_source(s, settings) for s in plan_sources("Ada", links, settings)]
            assert all(not r["failures"] for r in reports), reports
            run_extract_load(settings)
            target = tmp_path_factory.mktemp("dbt") / "target"
            run_dbt(["build", "--select", "tag:staging", "tag:intermediate"], settings,
                    target_path=target)  # fmt: skip
            run_enrichment(settings)
            run_dbt(["build", "--select", "tag:marts"], settings, target_path=target)
            sync = sync_features(settings, progress=False)
            yield settings, sync
        finally:
            with mongo_client(settings) as client:
                client.drop_database(settings.mongo_database)


def test_repository_files_reach_the_marts_with_path_and_language(indexed) -> None:
    settings, _ = indexed
    with psycopg.connect(settings.require("warehouse_dsn")) as conn:
        files = conn.execute(
            "select d.title, f.path, f.language from marts.document_files f"
            " join marts.documents d using (document_id)"
        ).fetchall()
    assert ("dagcheck", "src/dagcheck/rules.py", "python") in files
    assert any(t == "tidy-vectors" and lang == "sql" for t, _, lang in files)
    assert not [f for f in files if f[2] in ("markdown", "restructuredtext")]


def test_code_is_chunked_per_function(indexed) -> None:
    settings, sync = indexed
    assert not sync.failures
    with psycopg.connect(settings.require("warehouse_dsn")) as conn:
        version = conn.execute(
            "select version_id from vectors.index_versions where status = 'active'"
        ).fetchone()[0]
        chunks = conn.execute(
            f"select section, content from vectors.chunks_{version} where section like %s",
            ("src/dagcheck/rules.py%",),
        ).fetchall()
    defining = [c for _, c in chunks if "def wall_clock_in_tasks" in c]
    assert len(defining) == 1
    assert "def vague_task_ids" not in defining[0]  # one function, not the whole file


def test_a_function_is_found_by_name_with_twin_search(indexed) -> None:
    settings, _ = indexed
    env = {
        **os.environ,
        "WAREHOUSE_DSN": settings.require("warehouse_dsn"),
        "MONGO_URI": settings.require("mongo_uri"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "twin.cli", "search", "wall_clock_in_tasks", "--json", "--k", "3"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    passages = json.loads(proc.stdout)
    assert "def wall_clock_in_tasks" in passages[0]["content"], passages[0]
    assert passages[0]["title"] == "dagcheck"
