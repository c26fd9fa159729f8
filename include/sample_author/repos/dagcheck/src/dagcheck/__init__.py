"""A small linter for Airflow DAG files."""

from dagcheck.rules import Finding, check_source

__all__ = ["Finding", "check_source"]
__version__ = "0.2.0"
