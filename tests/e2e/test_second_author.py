"""Any author: the whole chain for Ines Okafor, a second demo author who is not the sample.

Her site (a notes site with markup of its own and a Substack newsletter; no LinkedIn, Medium or
git) is served by the sample server; the platform's author is set to her (`TWIN_AUTHOR`) and
every DAG runs under `dag.test()` with its defaults, in a stack home of its own (a fresh
warehouse database, Mongo database, object store and registered model on the session's
services): crawl → warehouse → features → datasets → training (the config-built tiny model, a few
steps) → her approval → deploy → `twin ask`, then a second candidate deployed beside her champion
on shadow traffic. Every run succeeds, nothing of the sample author is ever in the warehouse, the
answer's sources are her pages, and the deployment's style check is computed against her own
passages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from tests.conftest import PROJECT_ROOT, scratch_home
from tests.dags.conftest import run_dag  # noqa: F401 - the session's dag.test() runner
from tests.integration.test_training_pipeline import shared_model_cache
from twin.settings import Settings, endpoint_to_connection

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = "tiny-llama"
# Few steps and few evaluation answers: the chain, not the model, is under test.
TRAINING = {
    "max_steps": 4,
    "dpo": False,
    "ranks": 1,
    "zero_stage": 0,
    # room for a prompt and some of its answer: at 128 tokens a long generated instruction can
    # leave no answer token in any example, which the worker refuses
    "max_length": 384,
    "learning_rate": 1e-3,
    "save_steps": 4,
    "eval_samples": 2,
    "eval_pairs": 2,
    "eval_seeds": 1,
    "max_new_tokens": 16,
}
# A few steps of the config-built tiny model cannot write: the quality bars of the evaluation
# gate and of a first deployment's own answers are opened (their figures are still computed and
# recorded), so the chain, not the model's prose, decides; a first deployment asks few questions.
QUALITY_BARS_OPEN = {
    "EVAL_ABSOLUTE_FLOORS": "false",
    "EVAL_MAX_PERPLEXITY_RATIO": "1000",
    "EVAL_MAX_STYLE_DROP": "2",
    "DEPLOY_MAX_EMPTY_RATE": "1",
    "DEPLOY_MAX_REPETITION_RATE": "1",
    "DEPLOY_MAX_WRONG_SOURCE_RATE": "1",
    "DEPLOY_FIRST_QUESTIONS": "3",
    # the tiny model's context is 1024 tokens: twin_rag's prompt and answer must fit in it
    "SERVING_CONTEXT_TOKENS": "300",
    "SERVING_DEFAULT_MAX_TOKENS": "16",
    # a test machine shared with other suites answers slowly: waits, not errors
    "SERVICE_TIMEOUT_S": "60",
    "SERVING_REQUEST_TIMEOUT_S": "600",
}
# Eight documents: a held-out split drawn at the default 0.1 is often empty (the split is by
# document id), which training refuses; half of them is almost never empty.
DATASETS = {"test_share": 0.5}
# Few shadow pairs: enough for every check to be computed.
SHADOW = {"min_samples": 4}
QUESTION = "How do you keep mason bees healthy from one year to the next?"


@dataclass
class SecondAuthor:
    name: str
    base_url: str
    pages: set[str]  # the URLs of her documents
    settings: Settings
    env: dict[str, str]


@pytest.fixture(scope="module")
def ines(stack_settings: Settings) -> Iterator[SecondAuthor]:
    """Her site served on loopback; a stack home, warehouse and Mongo database of her own, and
    the platform's author set to her (the DAGs' tasks read all of it from the environment)."""
    from sample_author.second import SECOND_AUTHOR, build_second_site, second_prefixes
    from sample_author.server import SampleServer
    from twin.settings import load_settings
    from twin.store.mongo import mongo_client
    from twin.store.warehouse import scratch_database

    home = scratch_home("twin-ines-")
    manifest = build_second_site(home / "site")
    model = f"twin-llm-ines-{uuid.uuid4().hex[:6]}"
    with (
        SampleServer(home / "site", burst_limit=None) as server,
        scratch_database(stack_settings.require("warehouse_dsn"), "ines") as dsn,
        pytest.MonkeyPatch.context() as mp,
    ):
        database = dsn.rsplit("/", 1)[1]
        env = {
            "TWIN_HOME": str(home / "stack"),
            "TWIN_AUTHOR": SECOND_AUTHOR.name,
            "WAREHOUSE_DSN": dsn,
            "AIRFLOW_CONN_WAREHOUSE_POSTGRES": endpoint_to_connection("warehouse_dsn", dsn),
            "MONGO_DATABASE": database,
            "OBJECT_STORE_URL": (home / "objects").as_uri(),
            "CRAWL_ALLOW_PRIVATE_HOSTS": json.dumps([f"127.0.0.1:{server.port}"]),
            "CRAWL_PLATFORM_PREFIXES": json.dumps(second_prefixes(server.base_url)),
            "CRAWL_PER_HOST_RATE": "40",
            "TWIN_TRAINING_BASE_MODEL": TINY,
            "TWIN_MODEL_CACHE": str(shared_model_cache()),
            "REGISTERED_MODEL": model,
            "MLFLOW_EXPERIMENT": f"{model}-runs",
            **QUALITY_BARS_OPEN,
        }
        (home / "stack").mkdir()
        for key, value in env.items():
            mp.setenv(key, value)
        pages = {server.base_url + d.url for d in manifest.documents}
        yield SecondAuthor(SECOND_AUTHOR.name, server.base_url, pages, load_settings(), env)
        with mongo_client(load_settings()) as client:
            client.drop_database(database)
    shutil.rmtree(home, ignore_errors=True)


def twin(*args: str) -> subprocess.CompletedProcess:
    """The `twin` command as a user runs it, in this module's environment."""
    return subprocess.run(
        [sys.executable, "-m", "twin.cli", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        timeout=600,
    )


def authors_in(settings: Settings, table: str) -> set[str]:
    with psycopg.connect(settings.require("warehouse_dsn")) as conn:
        return {r[0] for r in conn.execute(f"select distinct author from {table}").fetchall()}


def count(settings: Settings, query: str) -> int:
    with psycopg.connect(settings.require("warehouse_dsn")) as conn:
        return int(conn.execute(query).fetchone()[0])


def answer_errors(settings: Settings) -> list[tuple[str, str]]:
    """The errors of a first deployment's questions, for a failure message."""
    with psycopg.connect(settings.require("warehouse_dsn")) as conn:
        return conn.execute(
            "select question, error from serving.deployment_answers where error is not null"
        ).fetchall()


def style_figure(record: dict) -> float | None:
    """The deployment's style similarity to the author's passages, wherever the record keeps it."""
    figures = record.get("figures") or {}
    if isinstance(figures.get("style_similarity"), int | float):
        return float(figures["style_similarity"])
    for check in figures.get("checks") or []:
        values = check.get("figures") or check.get("values") or {}
        if check.get("name") == "style" and isinstance(values.get("style_similarity"), float):
            return float(values["style_similarity"])
    return None


def test_the_whole_chain_builds_and_serves_the_second_authors_twin(ines, run_dag) -> None:  # noqa: F811
    from sample_author.second import second_links
    from twin.crawl.run import record_author_links

    # What a user does once: give the platform their links (the crawl form may stay empty).
    record_author_links(ines.name, second_links(ines.base_url), ines.settings)
    seconds: dict[str, float] = {}
    for dag_id, conf in (
        ("twin_crawl", None),
        ("twin_warehouse", None),
        ("twin_features", None),
        ("twin_datasets", DATASETS),
        ("twin_training", TRAINING),
    ):
        began = time.monotonic()
        outcome = run_dag(dag_id, conf=conf)
        seconds[dag_id] = round(time.monotonic() - began)
        assert outcome.state == "success", (dag_id, outcome)
    assert outcome.task_states["publish_candidate"] == "success", outcome

    # Nothing of the sample author was ever read: the warehouse holds her documents only.
    for table in ("raw.documents", "marts.documents", "vectors.chunks", "ml.dataset_versions"):
        assert authors_in(ines.settings, table) == {ines.name}, table
    documents = count(ines.settings, "select count(*) from marts.documents")
    chunks = count(ines.settings, "select count(*) from vectors.chunks")
    samples = count(ines.settings, "select count(*) from ml.samples")
    assert documents == len(ines.pages), documents
    assert chunks >= documents and samples > 0
    print(f"\n{ines.name}: {documents} documents, {chunks} chunks, {samples} samples; {seconds}")

    # Her first version: approved by her, deployed with no champion (its own answers decide).
    first = deploy_challenger(ines, run_dag, seconds, "twin_deploy")
    assert first["state"] == "promoted", (first, answer_errors(ines.settings))
    ask = twin("ask", QUESTION, "--json")
    assert ask.returncode == 0, ask.stdout + ask.stderr
    answer = json.loads(ask.stdout)
    urls = {s["url"] for s in answer["sources"]}
    assert urls and urls <= ines.pages, urls  # her pages, and only hers
    assert str(answer["meta"]["model_version"]) == first["version"], answer["meta"]

    # A second, cheaper candidate judged beside her champion on shadow traffic: the style check
    # is computed against her own passages (not skipped for want of an anchor).
    retrained = run_dag("twin_training", conf=TRAINING | {"max_steps": 2})
    assert retrained.task_states["publish_candidate"] == "success", retrained
    second = deploy_challenger(ines, run_dag, seconds, "twin_deploy (shadow)", SHADOW)
    assert second["state"] in ("promoted", "rolled_back"), second
    style = style_figure(second)
    table = twin("deployments")
    print(
        f"\nsecond author {ines.name}: {documents} documents, {chunks} chunks, {samples} samples;"
        f" versions {first['version']} ({first['state']}) and {second['version']} "
        f"({second['state']}: {second['reason']}), style similarity {style}\n"
        f"seconds per DAG: {seconds}\n{table.stdout}"
    )
    assert style is not None, f"the deployment's style check was not computed: {second}"
    assert authors_in(ines.settings, "vectors.chunks") == {ines.name}


def deploy_challenger(ines: SecondAuthor, run_dag, seconds: dict, label: str, conf=None) -> dict:  # noqa: F811
    """Approve the `challenger` as she would (`twin models approve`), run twin_deploy, and
    return its deployment record as `twin deployments --json` shows it."""
    from twin.domain.models import CHALLENGER
    from twin.store.tracking import tracking_client

    client = tracking_client(ines.settings)
    version = str(
        client.get_model_version_by_alias(ines.env["REGISTERED_MODEL"], CHALLENGER).version
    )
    approved = twin("models", "approve", version, "--by", ines.name, "--note", "sounds like me")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    began = time.monotonic()
    deploy = run_dag("twin_deploy", conf=conf)
    seconds[label] = round(time.monotonic() - began)
    assert deploy.state == "success", deploy
    listed = twin("deployments", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    return next(r for r in json.loads(listed.stdout) if str(r["version"]) == version)
