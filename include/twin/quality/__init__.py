"""Data quality gates (Great Expectations) on the warehouse's raw and mart tables."""

from twin.quality.gates import enforce_gate, run_gate
from twin.quality.suites import gate_names, load_gate
from twin.quality.verdict import FailedExpectation, GateResult, QualityGateFailed

__all__ = [
    "FailedExpectation",
    "GateResult",
    "QualityGateFailed",
    "enforce_gate",
    "gate_names",
    "load_gate",
    "run_gate",
]
