"""Quality gates: validate a warehouse table with Great Expectations, keep results, stop bad data.

A gate (`expectations/checkpoints/<gate>.json`) runs its suite through an ephemeral GX context: a
Postgres SQL datasource, a table asset, a whole-table batch definition, a validation definition and
a checkpoint. Every run, passed or failed, is kept twice for people to inspect: a row in
`quality.validation_results` (in the validated warehouse) and a Data Docs site in the object store
under `quality/data_docs/<gate>/<run_id>/`. GX is imported only when a gate runs, because its first
import takes seconds and DAG files import this module at parse time.
"""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import sql

from twin.quality.pii_gate import EXPECTATION as PII_EXPECTATION
from twin.quality.pii_gate import scan_for_pii, scanned_columns
from twin.quality.results import (
    DATA_DOCS_SITE,
    connect,
    ensure_quality_schema,
    previous_row_count,
    publish_data_docs,
    record_result,
)
from twin.quality.suites import GateDefinition, load_gate, resolve_parameters
from twin.quality.verdict import FailedExpectation, GateResult, QualityGateFailed
from twin.settings import Settings
from twin.store.warehouse import dsn_url, parse_dsn

__all__ = [
    "FailedExpectation",
    "GateResult",
    "QualityGateFailed",
    "enforce_gate",
    "run_gate",
]

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.data_context import EphemeralDataContext

log = logging.getLogger("twin.quality")

# Sample values longer than this are cut in stored results, reports and Data Docs: a sample of a
# text column can be a whole document.
SAMPLE_CHARS = 120
# Result keys that carry row values; emptied for expectations marked `"samples": "hide"` (PII).
SAMPLE_KEYS = (
    "partial_unexpected_list",
    "partial_unexpected_counts",
    "partial_unexpected_index_list",
    "unexpected_list",
    "unexpected_index_list",
    "unexpected_rows",
)


def enforce_gate(gate: str, settings: Settings) -> dict[str, Any]:
    """Run the gate, log its report, and raise QualityGateFailed when any expectation failed.

    Returns the run's summary (`GateResult.as_dict()`) when the data passed.
    """
    result = run_gate(gate, settings)
    if result.success:
        log.info("%s", result.report())
        return result.as_dict()
    log.error("%s", result.report())
    raise QualityGateFailed(result)


def run_gate(gate: str, settings: Settings) -> GateResult:
    """Validate the gate's table, store the result and its Data Docs, and return the outcome.

    Failed expectations never raise: they are in the returned result. Errors do: an unknown gate
    (ValueError), an unreachable warehouse (psycopg.OperationalError), a table GX cannot read
    (RuntimeError naming it).
    """
    definition = load_gate(gate)
    dsn = settings.require("warehouse_dsn")
    validated_at = datetime.now(UTC)
    run_id = f"{validated_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    with connect(dsn) as conn:
        ensure_quality_schema(conn)
        previous = previous_row_count(conn, gate)
    parameters = resolve_parameters(definition, validated_at, previous)

    with tempfile.TemporaryDirectory(prefix="twin-data-docs-") as docs_dir:
        context, validation = validate(
            definition, dsn, parameters, run_id, validated_at, Path(docs_dir)
        )
        failed = [describe_failure(r, parameters) for r in validation.results if not r.success]
        row_count = observed_row_count(validation)
        if row_count is None:
            row_count = count_rows(dsn, definition)
        docs_key = publish_data_docs(context, Path(docs_dir), settings, gate, run_id)
    with connect(dsn) as conn:
        pii = scan_for_pii(conn, definition.schema, definition.table, definition.pii_scan)
    failed += [FailedExpectation(PII_EXPECTATION, f.column, f.rows, f.detail) for f in pii]
    scanned = scanned_columns(definition.pii_scan)

    result = GateResult(
        gate=gate,
        success=bool(validation.success) and not pii,
        evaluated=int(validation.statistics.get("evaluated_expectations", 0)) + scanned,
        failed=failed,
        run_id=run_id,
        row_count=row_count,
        data_docs_key=docs_key,
        table=definition.qualified_table,
        validated_at=validated_at,
    )
    with connect(dsn) as conn:
        record_result(conn, result, validation.to_json_dict())
    log.info(
        "quality gate %s run %s: %s, %d rows",
        gate,
        run_id,
        "passed" if result.success else f"{len(failed)} expectations failed",
        row_count,
    )
    return result


def validate(
    definition: GateDefinition,
    dsn: str,
    parameters: dict[str, Any],
    run_id: str,
    run_time: datetime,
    docs_dir: Path,
) -> tuple[EphemeralDataContext, ExpectationSuiteValidationResult]:
    """Run the gate's checkpoint; return its context (holding the result) and the result.

    Sample values in the result are already redacted and cut (see `redact_samples`), and the
    redacted result replaces the one GX stored, so Data Docs never show what the report hides.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.exceptions import GreatExpectationsError

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,  # no usage statistics leave the machine
        progress_bars=ProgressBarsConfig(globally=False),  # task logs, not terminals
        data_docs_sites={
            DATA_DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    suite = build_suite(definition)
    try:
        datasource = context.data_sources.add_postgres(
            name="warehouse", connection_string=sqlalchemy_url(dsn)
        )
        asset = datasource.add_table_asset(
            name=definition.qualified_table,
            table_name=definition.table,
            schema_name=definition.schema,
        )
    except (GreatExpectationsError, ConnectionError) as exc:  # GX's TestConnectionError
        raise RuntimeError(
            f"quality gate {definition.name}: cannot read {definition.qualified_table}: {exc}"
        ) from exc
    try:
        batch = asset.add_batch_definition_whole_table("whole_table")
        suite = context.suites.add(suite)
        validation_definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=definition.name, data=batch, suite=suite)
        )
        # No actions: Data Docs are built after the samples are redacted (publish_data_docs).
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=definition.name,
                validation_definitions=[validation_definition],
                actions=[],
                result_format=definition.result_format,
            )
        )
        outcome = checkpoint.run(
            expectation_parameters=parameters,
            run_id=RunIdentifier(run_name=run_id, run_time=run_time),
        )
    finally:
        # Each run builds its own engine: close its pooled connections now, not at exit.
        datasource.get_execution_engine().engine.dispose()
    ((key, validation),) = outcome.run_results.items()
    for result in validation.results:
        redact_samples(result)
    context.validation_results_store.set(key, validation)
    return context, validation


def build_suite(definition: GateDefinition):
    """The gate's suite as a GX ExpectationSuite; ValueError if any expectation is invalid."""
    import great_expectations as gx

    spec = definition.suite
    suite = gx.ExpectationSuite(
        name=spec["name"], expectations=spec.get("expectations", []), meta=spec.get("meta")
    )
    # GX logs and skips an invalid expectation; a gate that silently checks less must not pass.
    if len(suite.expectations) != len(spec.get("expectations", [])):
        loaded = {e.expectation_type for e in suite.expectations}
        bad = [e.get("type") for e in spec["expectations"] if e.get("type") not in loaded]
        raise ValueError(
            f"quality gate {definition.name}: suite {spec['name']} has invalid expectations "
            f"{bad or '(see the GX log above)'}"
        )
    return suite


def sqlalchemy_url(dsn: str) -> str:
    """`WAREHOUSE_DSN` as the SQLAlchemy URL GX wants (`postgresql+psycopg2://...`).

    A Unix-socket DSN (`postgresql://user@/db?host=/dir`) gets the placeholder host `localhost`,
    because GX's Postgres datasource insists on a host; libpq still connects through `host=`.
    """
    return dsn_url(parse_dsn(dsn), driver="psycopg2", socket_host="localhost")


def redact_samples(result: ExpectationValidationResult) -> None:
    """Drop sample values of sensitive expectations and cut long ones, in place."""
    values = result.result
    if not values:
        return
    hide = (result.expectation_config.meta or {}).get("samples") == "hide"
    for key in SAMPLE_KEYS:
        if key not in values:
            continue
        values[key] = [] if hide else [shorten(item) for item in values[key] or []]


def shorten(value: Any) -> Any:
    """A sample value cut to SAMPLE_CHARS characters (recursing into count records)."""
    if isinstance(value, str) and len(value) > SAMPLE_CHARS:
        return value[:SAMPLE_CHARS] + f"... ({len(value)} chars)"
    if isinstance(value, dict):
        return {k: shorten(v) for k, v in value.items()}
    return value


def describe_failure(
    result: ExpectationValidationResult, parameters: dict[str, Any]
) -> FailedExpectation:
    """A failed expectation in a person's terms: what broke, how often, an example, and why."""
    config = result.expectation_config
    kwargs = config.kwargs
    values = result.result or {}
    facts: list[str] = []
    error = exception_message(result.exception_info)
    if error:
        facts.append(f"could not be evaluated: {error}")
    mismatched = (values.get("details") or {}).get("mismatched")
    if mismatched:
        facts.append(f"columns mismatched: {json.dumps(mismatched, default=str)}")
    elif "observed_value" in values:
        facts.append(f"observed {values['observed_value']}{expected_range(kwargs, parameters)}")
    unexpected = values.get("unexpected_count")
    if unexpected is not None:
        percent = values.get("unexpected_percent")
        share = f" ({percent:.1f}%)" if percent else ""
        facts.append(f"{unexpected} of {values.get('element_count')} rows{share}")
        if (config.meta or {}).get("samples") == "hide":
            facts.append("values not shown (sensitive or whole documents)")
        elif samples := sample_text(values):
            facts.append(f"e.g. {samples}")
        facts.append(expected_range(kwargs, parameters).strip(" ()"))
    if kwargs.get("row_condition"):
        facts.append(f"rows where {condition_text(kwargs['row_condition'])}")
    notes = " ".join(config.notes) if isinstance(config.notes, list) else config.notes
    detail = "; ".join(fact for fact in facts if fact)
    return FailedExpectation(
        expectation=config.type,
        column=kwargs.get("column"),
        unexpected_count=None if unexpected is None else int(unexpected),
        detail=f"{notes}: {detail}" if notes and detail else (notes or detail or "failed"),
    )


def sample_text(values: dict[str, Any], limit: int = 3) -> str:
    """A few distinct unexpected values with their row counts (`'tiktok' (2 rows)`)."""
    counts = values.get("partial_unexpected_counts") or [
        {"value": v, "count": 1} for v in values.get("partial_unexpected_list") or []
    ]
    return ", ".join(
        repr(item["value"]) + (f" ({item['count']} rows)" if item.get("count", 1) > 1 else "")
        for item in counts[:limit]
    )


def plain(value: Any) -> Any:
    """Whole floats as ints: GX turns bounds like 1 into 1.0."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def expected_range(kwargs: dict[str, Any], parameters: dict[str, Any]) -> str:
    """` (expected between A and B)` for range expectations, parameters substituted."""

    def value(name: str) -> Any:
        raw = kwargs.get(name)
        if isinstance(raw, dict) and "$PARAMETER" in raw:
            raw = parameters.get(raw["$PARAMETER"])
        return plain(raw)

    low, high = value("min_value"), value("max_value")
    if low is None and high is None:
        return ""
    if high is None:
        return f" (expected at least {low})"
    if low is None:
        return f" (expected at most {high})"
    return f" (expected between {low} and {high})"


def exception_message(info: Any) -> str | None:
    """The first error message in GX's exception_info (flat, or keyed by metric)."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for nested in info.values():
        if isinstance(nested, dict) and nested.get("raised_exception"):
            return str(nested.get("exception_message"))
    return None


def condition_text(condition: Any) -> str:
    """A row condition as SQL-ish text (`deleted_at IS NULL`)."""
    from great_expectations.expectations.row_conditions import deserialize_row_condition

    try:
        return repr(deserialize_row_condition(condition))
    except (TypeError, ValueError):
        return str(condition)


def observed_row_count(validation: ExpectationSuiteValidationResult) -> int | None:
    """The table's row count as a row-count expectation observed it, if the suite has one."""
    for result in validation.results:
        if result.expectation_config.type.startswith("expect_table_row_count"):
            observed = (result.result or {}).get("observed_value")
            if isinstance(observed, int):
                return observed
    return None


def count_rows(dsn: str, definition: GateDefinition) -> int:
    with connect(dsn) as conn:
        query = sql.SQL("select count(*) from {}.{}").format(
            sql.Identifier(definition.schema), sql.Identifier(definition.table)
        )
        return int(conn.execute(query).fetchone()[0])
