"""After the stack (re)starts Triton: serve again what the deployment state says is served.

Triton runs with explicit model control, so a fresh server serves nothing; the deployment stage
knows what should be (`python -m twin.deploy.restore`, run here as its own process so the stack
does not depend on the stages above it). A failure is reported, never fatal to the stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RESTORE_MODULE = "twin.deploy.restore"
RESTORE_TIMEOUT_S = 600  # materialising a version from MLflow may take minutes


def restore_serving(home: Path, endpoints: dict[str, str]) -> str:
    """Run the restore against the stack at `home` (its endpoints over the environment's);
    returns the line it printed, or why serving was not restored."""
    env = {**os.environ, **endpoints, "TWIN_HOME": str(home)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", RESTORE_MODULE],
            env=env,
            capture_output=True,
            text=True,
            timeout=RESTORE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"serving not restored: no answer within {RESTORE_TIMEOUT_S} s"
    lines = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()
    last = lines[-1] if lines else f"exit status {done.returncode}"
    return last if done.returncode == 0 else f"serving not restored: {last}"
