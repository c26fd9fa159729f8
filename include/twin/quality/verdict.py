"""What a quality gate run concludes: its failed expectations, its result, and the error that
stops a pipeline. Shared by the gate runner (`twin.quality.gates`) and the result store
(`twin.quality.results`), which import it and not each other."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class FailedExpectation:
    """One expectation that did not hold: its GX type, column, how many rows broke it, and why."""

    expectation: str
    column: str | None
    unexpected_count: int | None
    detail: str


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate run, as stored in `quality.validation_results`."""

    gate: str
    success: bool
    evaluated: int
    failed: list[FailedExpectation]
    run_id: str
    row_count: int
    data_docs_key: str | None
    table: str = ""
    validated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def report(self) -> str:
        """Readable text: the verdict, then each failed expectation with column and count."""
        verdict = "PASSED" if self.success else "FAILED"
        where = f" on {self.table}" if self.table else ""
        lines = [
            f"Quality gate {self.gate}{where}: {verdict} - {len(self.failed)} of {self.evaluated} "
            f"expectations failed, {self.row_count} rows (run {self.run_id})"
        ]
        for failure in self.failed:
            column = f" [{failure.column}]" if failure.column else ""
            count = (
                f": {failure.unexpected_count} unexpected"
                if failure.unexpected_count is not None
                else ""
            )
            lines.append(f"  x {failure.expectation}{column}{count} - {failure.detail}")
        if self.data_docs_key:
            lines.append(f"Data Docs: {self.data_docs_key}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what `enforce_gate` returns for XCom)."""
        return {
            "gate": self.gate,
            "table": self.table,
            "success": self.success,
            "run_id": self.run_id,
            "validated_at": self.validated_at.isoformat(),
            "evaluated": self.evaluated,
            "failed_count": len(self.failed),
            "row_count": self.row_count,
            "data_docs_key": self.data_docs_key,
            "failures": [asdict(failure) for failure in self.failed],
        }


class QualityGateFailed(RuntimeError):
    """A gate found bad data; `str()` is the gate's report and `.result` the full outcome."""

    def __init__(self, result: GateResult) -> None:
        super().__init__(result.report())
        self.result = result
