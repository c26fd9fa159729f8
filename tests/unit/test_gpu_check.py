"""benchmarks/gpu_check.py starts on a machine without a usable GPU and refuses cleanly: exit
status 2, the reason on stderr, nothing trained."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu_check.py"


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("device", ["", "cpu"])
def test_gpu_check_refuses_on_a_cpu_machine(device: str, tmp_path) -> None:
    env = dict(os.environ, TWIN_DEVICE=device, TWIN_HOME=str(tmp_path))
    done = run_check(env)
    assert done.returncode == 2, done.stderr
    assert "gpu_check refused: no CUDA GPU" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "models").exists()


def test_gpu_check_explains_a_driver_without_cuda_torch(tmp_path) -> None:
    tool = tmp_path / "bin" / "nvidia-smi"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho 'NVIDIA-SMI 570.00'\n")
    tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{tool.parent}:/usr/bin:/bin", TWIN_DEVICE="auto")
    done = run_check(env)
    assert done.returncode == 2, done.stderr
    assert "NVIDIA driver" in done.stderr and "TWIN_DEVICE=cpu" in done.stderr
