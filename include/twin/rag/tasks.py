"""Task callables for retrieval: the evaluation gate a DAG can run after the index changed.

Light to import (the DAG processor parses DAG files often): retrieval code, torch and the
embedding model load only when a task runs.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
DEFAULT_GATE_CONFIG = "hybrid+rerank"
DEFAULT_MIN_RECALL_AT_5 = 0.8


class RetrievalQualityError(RuntimeError):
    """Retrieval recall on the labelled set fell below the gate's threshold."""


def retrieval_eval_task(
    min_recall_at_5: float = DEFAULT_MIN_RECALL_AT_5, config: str = DEFAULT_GATE_CONFIG
) -> dict[str, Any]:
    """Evaluate the live index on the author's question set and gate on recall@5.

    Returns `run_retrieval_eval`'s result plus `gate` ("passed", or "skipped" with its `reason`
    when the author has no question set yet: twin_datasets builds it after this DAG's first run).
    Raises `RetrievalQualityError`, with the evaluation table in its message, when `config`'s
    recall@5 is below `min_recall_at_5`.
    """
    from twin.rag.evaluate import run_retrieval_eval
    from twin.settings import load_settings

    try:
        result = run_retrieval_eval(load_settings())
    except LookupError as exc:
        log.warning("retrieval gate skipped: %s", exc)
        return {"gate": "skipped", "reason": str(exc), "questions": 0}
    return check_retrieval_gate(result, min_recall_at_5=min_recall_at_5, config=config)


def check_retrieval_gate(
    result: dict[str, Any],
    *,
    min_recall_at_5: float = DEFAULT_MIN_RECALL_AT_5,
    config: str = DEFAULT_GATE_CONFIG,
) -> dict[str, Any]:
    """`result` with `gate` set, or RetrievalQualityError when `config` misses the threshold."""
    if not result.get("questions"):
        return {**result, "gate": "skipped"}
    row = next((r for r in result["rows"] if r["name"] == config), None)
    if row is None:
        raise ValueError(
            f"no evaluation row named {config!r} in {[r['name'] for r in result['rows']]}"
        )
    if row["recall_at_5"] < min_recall_at_5:
        raise RetrievalQualityError(
            f"retrieval recall@5 of {config} is {row['recall_at_5']:.3f}, below the gate of "
            f"{min_recall_at_5:.2f}, on {result['questions']} labelled questions:\n"
            f"{result['table']}"
        )
    return {**result, "gate": "passed"}
