"""The dbt manifest the `twin_warehouse` DAG renders from, built ahead of time.

Cosmos renders the DAG's dbt tasks from `dbt/target/manifest.json`. Without it Cosmos would run
`dbt ls` every time the DAG file is parsed, so the DAG refuses to load instead
(`require_manifest`), and `make setup`, `make test`, `make demo` and the Docker image build it
with `python -m twin.warehouse.manifest`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from twin.settings import DBT_PROJECT_DIR

MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"
# `dbt parse` reads no database: placeholder connection values satisfy profiles.yml.
PARSE_ENV = {"TWIN_DBT_HOST": "localhost", "TWIN_DBT_USER": "parse", "TWIN_DBT_DBNAME": "parse"}


class ManifestMissing(FileNotFoundError):
    """The dbt manifest has not been built."""


def require_manifest(path: Path | None = None) -> Path:
    """`path` (default `MANIFEST`) when it exists; else `ManifestMissing` saying how to build it."""
    path = path or MANIFEST
    if not path.is_file():
        raise ManifestMissing(
            f"dbt manifest missing at {path}: run `make dbt-parse` (or "
            "`python -m twin.warehouse.manifest`); the Docker image builds it. The DAG does not "
            "fall back to `dbt ls`, which would run dbt every time the DAG file is parsed."
        )
    return path


def build_manifest(path: Path = MANIFEST) -> Path:
    """Run `dbt parse` on the project and return the manifest's path (RuntimeError on failure)."""
    dbt = Path(sys.executable).parent / "dbt"
    command = [str(dbt) if dbt.exists() else "dbt", "parse", "--quiet"]
    command += ["--project-dir", ".", "--profiles-dir", ".", "--target-path", str(path.parent)]
    env = {**os.environ, **PARSE_ENV, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run(
        command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0 or not path.is_file():
        output = (proc.stdout + proc.stderr).strip()[-2000:]
        raise RuntimeError(f"dbt parse failed (exit code {proc.returncode}):\n{output}")
    return path


if __name__ == "__main__":
    print(f"dbt manifest written to {build_manifest()}")
