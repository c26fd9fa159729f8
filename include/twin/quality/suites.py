"""The quality gates' definitions: version-controlled JSON under `expectations/`.

`expectations/suites/<suite>.json` is a Great Expectations 1.x expectation suite in GX's own
serialised form (`name`, `expectations: [{type, kwargs, meta, notes}]`), so GX tooling reads it as
is. `expectations/checkpoints/<gate>.json` names the table a gate validates, its suite, the result
format and how each `$PARAMETER` in the suite is computed at run time. This module only reads and
checks those files; it never imports GX, so DAG files can import it cheaply.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from twin.settings import PROJECT_ROOT

# Where the gate and suite files live: beside `include/` in a checkout and in the Airflow image.
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"

# The parameter sources a checkpoint file may use (see expectations/README.md).
PARAMETER_SOURCES = ("now", "previous_row_count")


@dataclass(frozen=True)
class GateDefinition:
    """One gate: the table it validates, its suite (GX JSON) and its run-time parameters."""

    name: str
    description: str
    schema: str
    table: str
    suite: dict[str, Any]
    result_format: dict[str, Any]
    parameters: dict[str, dict[str, Any]]
    # `{"key": column, "columns": [text columns]}` or a list of such scans (a scan may name another
    # `table`): text scanned with the independent PII detector (twin.quality.pii_gate)
    pii_scan: dict[str, Any] | list[dict[str, Any]] | None = None

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}"


def gate_names(root: Path = EXPECTATIONS_DIR) -> list[str]:
    """The names of every defined gate (one checkpoint file each), sorted."""
    return sorted(path.stem for path in (root / "checkpoints").glob("*.json"))


def load_gate(gate: str, root: Path = EXPECTATIONS_DIR) -> GateDefinition:
    """The gate's definition, checked: every suite parameter has a known source.

    Raises ValueError naming the gate and the problem (unknown gate, missing suite, a
    `$PARAMETER` without a source, an unknown source).
    """
    known = gate_names(root)
    if gate not in known:
        raise ValueError(f"unknown quality gate {gate!r}: defined gates are {', '.join(known)}")
    checkpoint = read_json(root / "checkpoints" / f"{gate}.json")
    suite_path = root / "suites" / f"{checkpoint['suite']}.json"
    if not suite_path.exists():
        raise ValueError(f"quality gate {gate!r}: suite file {suite_path} does not exist")
    suite = read_json(suite_path)
    table = checkpoint["table"]
    parameters = checkpoint.get("parameters", {})
    definition = GateDefinition(
        name=gate,
        description=checkpoint.get("description", ""),
        schema=table["schema"],
        table=table["name"],
        suite=suite,
        result_format=checkpoint.get("result_format", {"result_format": "SUMMARY"}),
        parameters=parameters,
        pii_scan=checkpoint.get("pii_scan"),
    )
    missing = sorted(suite_parameter_names(suite) - set(parameters))
    if missing:
        raise ValueError(f"quality gate {gate!r}: no source for suite parameters {missing}")
    for name, spec in parameters.items():
        if spec.get("from") not in PARAMETER_SOURCES:
            raise ValueError(
                f"quality gate {gate!r}: parameter {name!r} has source {spec.get('from')!r}; "
                f"use one of {', '.join(PARAMETER_SOURCES)}"
            )
    return definition


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None


def suite_parameter_names(suite: dict[str, Any]) -> set[str]:
    """Every `{"$PARAMETER": name}` used in the suite's expectation kwargs."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "$PARAMETER" in value:
                names.add(value["$PARAMETER"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for expectation in suite.get("expectations", []):
        walk(expectation.get("kwargs", {}))
    return names


def resolve_parameters(
    definition: GateDefinition, now: datetime, previous_row_count: int | None
) -> dict[str, Any]:
    """The value of each suite parameter for a run at `now`.

    `now` gives an ISO timestamp `plus_minutes` ahead (a clock-skew allowance);
    `previous_row_count` gives `previous * factor + plus` (rounded `down` or `up` when asked), or
    `first_run` when the gate has no successful run yet (`null` = unbounded).
    """
    values: dict[str, Any] = {}
    for name, spec in definition.parameters.items():
        if spec["from"] == "now":
            values[name] = (now + timedelta(minutes=spec.get("plus_minutes", 0))).isoformat()
        elif previous_row_count is None:
            values[name] = spec.get("first_run")
        else:
            bound = previous_row_count * spec.get("factor", 1.0) + spec.get("plus", 0)
            rounding = {"down": math.floor, "up": math.ceil}.get(spec.get("round", ""))
            values[name] = rounding(bound) if rounding else bound
    return values
