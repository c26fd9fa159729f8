"""Run Airflow's components side by side, as `airflow standalone` does for the LocalExecutor.

`airflow standalone` forces the LocalExecutor, so the embedded stack's Celery mode runs the
components itself: `python -m twin.stack.components api-server scheduler dag-processor triggerer`.
They share this process group (the stack stops the whole group); when one exits, the others are
stopped and this exits with its code, so `twin stack status` sees the failure.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def run(components: list[str]) -> int:
    airflow = str(Path(sys.executable).parent / "airflow")
    procs = {name: subprocess.Popen([airflow, name]) for name in components}

    def stop(*_args) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        for name, proc in procs.items():
            code = proc.poll()
            if code is not None:
                print(f"airflow {name} exited with {code}; stopping the others", flush=True)
                stop()
                for other in procs.values():
                    other.wait()
                return code or 1
        time.sleep(1)


if __name__ == "__main__":
    unknown = set(sys.argv[1:]) - set(COMPONENTS)
    if unknown or not sys.argv[1:]:
        sys.exit(f"usage: python -m twin.stack.components {' '.join(COMPONENTS)}")
    sys.exit(run(sys.argv[1:]))
