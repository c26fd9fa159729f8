"""Turn raw crawled documents into clean, PII-free warehouse marts, gated by data quality checks.

extract-load (MongoDB → `raw.documents`) → raw quality gate → dbt staging + intermediate (Cosmos)
→ enrichment (language, near-duplicates) → dbt marts (Cosmos) → marts quality gate → the marts
asset, emitted only when this run changed something. A failing gate stops everything after it.
"""

import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, dag, task
from cosmos import (
    DbtTaskGroup,
    ExecutionConfig,
    LoadMode,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
)
from cosmos.constants import InvocationMode, TestBehavior

from twin.assets import RAW_DOCUMENTS, WAREHOUSE_MARTS
from twin.warehouse import tasks
from twin.warehouse.manifest import DBT_PROJECT_DIR, require_manifest

# Built by `make setup` / `make dbt-parse` and in the Docker image; missing, the DAG fails to
# load with that advice rather than run `dbt ls` on every parse.
MANIFEST = require_manifest()
PROJECT = ProjectConfig(
    dbt_project_path=DBT_PROJECT_DIR,
    manifest_path=MANIFEST,
    install_dbt_deps=False,
)
# dbt's connection is defined once, in dbt/profiles.yml (the tests and `twin` use it too); its
# TWIN_DBT_* variables are rendered from the Airflow connection when a task runs: no secret here.
PROFILE = ProfileConfig(
    profile_name="twin",
    target_name="dev",
    profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml",
)
DBT_ENV = {
    "TWIN_DBT_HOST": "{{ conn.warehouse_postgres.host or 'localhost' }}",
    "TWIN_DBT_PORT": "{{ conn.warehouse_postgres.port or 5432 }}",
    "TWIN_DBT_USER": "{{ conn.warehouse_postgres.login or 'postgres' }}",
    "TWIN_DBT_PASSWORD": "{{ conn.warehouse_postgres.password or '' }}",
    "TWIN_DBT_DBNAME": "{{ conn.warehouse_postgres.schema or 'twin' }}",
}
EXECUTION = ExecutionConfig(
    dbt_executable_path=str(Path(sys.executable).parent / "dbt"),
    invocation_mode=InvocationMode.DBT_RUNNER,
)


def dbt_group(group_id: str, tags: list[str], tests: TestBehavior) -> DbtTaskGroup:
    """One Cosmos task group: each selected model (and, as `tests` says, its tests) as Airflow
    tasks."""
    return DbtTaskGroup(
        group_id=group_id,
        project_config=PROJECT,
        profile_config=PROFILE,
        execution_config=EXECUTION,
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            select=[f"tag:{t}" for t in tags],
            test_behavior=tests,
            # a test of two models (a relationship) runs once both are built, as a task of its own
            should_detach_multiple_parents_tests=True,
            emit_datasets=False,
        ),
        operator_args={"install_deps": False, "env": DBT_ENV, "append_env": True},
        default_args={"retries": 0},  # a failing model or test fails the same way twice
    )


@dag(
    schedule=[Asset(**RAW_DOCUMENTS)],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    tags=["twin", "feature", "warehouse"],
    default_args={"owner": "data-platform", "retries": 1, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
)
def twin_warehouse():
    load = task(tasks.extract_load)()
    raw_checked = task(tasks.raw_gate, retries=0)()
    # Each model and its own tests in one `dbt build` task: a failing test fails its model's task
    # and stops everything downstream, at one dbt start per model instead of two.
    transform = dbt_group("transform", ["staging", "intermediate"], TestBehavior.BUILD)
    enrichment = task(tasks.enrich)()
    # Marts tests span models (documents -> authors): they run once all marts are built.
    marts = dbt_group("marts", ["marts"], TestBehavior.AFTER_ALL)
    marts_checked = task(tasks.marts_gate, retries=0)()
    published = task(tasks.publish_if_changed, outlets=[Asset(**WAREHOUSE_MARTS)])(load, enrichment)
    load >> raw_checked >> transform >> enrichment >> marts >> marts_checked >> published


twin_warehouse()
