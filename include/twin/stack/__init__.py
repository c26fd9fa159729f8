"""The embedded stack: real Postgres+pgvector, MongoDB-protocol, MLflow, Triton, Airflow."""

from twin.stack.manager import (
    ALL_SERVICES,
    CORE_SERVICES,
    Executor,
    ServiceStatus,
    Stack,
    StackError,
)

__all__ = ["ALL_SERVICES", "CORE_SERVICES", "Executor", "ServiceStatus", "Stack", "StackError"]
