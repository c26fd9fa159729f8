"""The `twin_warehouse` DAG's task callables.

Light to import (the DAG processor parses the DAG often): each loads its stage when it runs.
Quality gates raise `QualityGateFailed` with a readable report; nothing downstream runs then. A
service that is down fails the task with `ServiceUnavailable` naming it, not a client traceback.
"""

from __future__ import annotations

from twin.errors import clear_service_errors


def extract_load() -> dict:
    """Load documents changed in MongoDB since the watermark into `raw.documents`."""
    with clear_service_errors("extract-load"):
        from twin.settings import load_settings
        from twin.store.extract_load import run_extract_load

        return run_extract_load(load_settings())


def raw_gate() -> dict:
    """Validate `raw.documents`; fail with the report when an expectation fails."""
    with clear_service_errors("raw quality gate"):
        from twin.quality import enforce_gate
        from twin.settings import load_settings

        return enforce_gate("raw_documents", load_settings())


def enrich() -> dict:
    """Language and near-duplicates of the cleaned documents (only new or changed texts)."""
    with clear_service_errors("enrichment"):
        from twin.settings import load_settings
        from twin.warehouse.enrich import run_enrichment

        return run_enrichment(load_settings())


def marts_gate() -> dict:
    """Validate `marts.documents` (with the independent PII detector); fail with the report
    when an expectation fails."""
    with clear_service_errors("marts quality gate"):
        from twin.quality import enforce_gate
        from twin.settings import load_settings

        return enforce_gate("marts_documents", load_settings())


def publish_if_changed(load: dict, enrichment: dict) -> dict:
    """Succeed (emitting the marts asset) only when this run brought new or changed data."""
    from airflow.sdk.exceptions import AirflowSkipException

    changed = load.get("inserted", 0) + load.get("updated", 0)
    changed += enrichment.get("inserted", 0) + enrichment.get("updated", 0)
    changed += enrichment.get("removed", 0)
    if not changed:
        raise AirflowSkipException("no raw document or enrichment changed: nothing to publish")
    return {
        "raw_rows_changed": load.get("inserted", 0) + load.get("updated", 0),
        "enrichment": enrichment,
    }
