"""Start a training phase as separate processes (torchrun, one per rank) and wait for it.

The caller (an Airflow task, the CLI) never holds the model: it writes the worker's configuration
to a JSON file and launches `python -m torch.distributed.run -m twin.training.worker`. The same
command line runs in a Kubernetes pod. DeepSpeed's compiled ops are cached under the model cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from twin.domain.devices import DEVICE_ENV, detect
from twin.settings import Settings
from twin.store.files import write_atomic
from twin.training.config import WorkerConfig, deepspeed_config, last_complete_checkpoint
from twin.training.params import TrainingParams, available_cores


class LaunchError(RuntimeError):
    """A training phase exited with an error; the message carries the tail of its log."""


@dataclass(frozen=True)
class PhaseResult:
    phase: str
    output_dir: Path
    log_path: Path
    resumed_from: int | None
    trained: bool


def model_cache(settings: Settings) -> Path:
    return settings.models_dir()


def extensions_dir(settings: Settings) -> Path:
    """Where DeepSpeed's ops compile (once: the shm comm op takes about a minute)."""
    return model_cache(settings) / "torch_extensions"


def prepare_phase(config: WorkerConfig) -> Path:
    """Write the worker's configuration (and the DeepSpeed JSON it names) into its output folder."""
    config.output_dir.mkdir(parents=True, exist_ok=True)
    if config.deepspeed_config is not None:
        stage = config.params.zero_stage
        write_atomic(config.deepspeed_config, json.dumps(deepspeed_config(stage), indent=2))
    path = config.output_dir / "worker.json"
    write_atomic(path, config.model_dump_json(indent=2))
    return path


def launch_command(
    config_path: Path,
    ranks: int,
    port: int,
    *,
    nodes: int = 1,
    node_rank: int = 0,
    master: str = "127.0.0.1",
) -> list[str]:
    """torchrun for this node's `ranks` ranks; with several nodes, node `node_rank` of `nodes`,
    meeting the others at `master:port` (node 0 listens there; static rendezvous)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={ranks}",
        f"--nnodes={nodes}",
        f"--node_rank={node_rank}",
        f"--master_port={port}",
        f"--master_addr={master}",
        "-m",
        "twin.training.worker",
        str(config_path),
    ]


def rendezvous_of(params: TrainingParams) -> tuple[str, int]:
    """Where a run's nodes meet: its `rendezvous` (host, port), or a free loopback port for a
    one-node run."""
    from twin.stack.process import free_port

    if params.nodes == 1 or not params.rendezvous:
        return "127.0.0.1", free_port()
    host, _, port = params.rendezvous.rpartition(":")
    return host, int(port)


def launch_env(settings: Settings, ranks: int) -> dict[str, str]:
    """The ranks' environment; the device policy is decided here once (DeviceError, before
    anything starts, on a host with a GPU driver but a torch without CUDA) and handed down."""
    policy = detect()
    env = dict(os.environ)
    ext = extensions_dir(settings)
    ext.mkdir(parents=True, exist_ok=True)
    threads = max(1, available_cores() // ranks)
    env |= {
        "TORCH_EXTENSIONS_DIR": str(ext),
        "OMP_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
        "DS_ACCELERATOR": policy.deepspeed_accelerator,
        DEVICE_ENV: policy.kind,
    }
    # keep the datasets cache beside the run, not in the user's home
    env.setdefault("HF_DATASETS_CACHE", str(settings.models_dir() / "hf-datasets"))
    return env


def start_phase(settings: Settings, config: WorkerConfig, node_rank: int = 0) -> subprocess.Popen:
    """Start this node's ranks in their own process group (so they can be stopped together).
    Node 0 writes the phase's configuration; another node (`node_rank` > 0) reads the one node 0
    wrote in the run's folder, which every node must see."""
    params = config.params
    if not 0 <= node_rank < params.nodes:
        raise ValueError(f"node_rank must be in [0, {params.nodes - 1}], not {node_rank}")
    path = prepare_phase(config) if node_rank == 0 else config.output_dir / "worker.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: node 0 has not prepared this phase (or the folder is not shared)"
        )
    master, port = rendezvous_of(params)
    log = (
        config.output_dir / ("train.log" if node_rank == 0 else f"train-node{node_rank}.log")
    ).open("ab")
    return subprocess.Popen(
        launch_command(
            path, params.ranks, port, nodes=params.nodes, node_rank=node_rank, master=master
        ),
        env=launch_env(settings, params.ranks),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run_phase(
    settings: Settings, config: WorkerConfig, timeout_s: float | None = None
) -> PhaseResult:
    """Run one phase to the end, resuming from its last checkpoint; a finished phase is kept."""
    log_path = config.output_dir / "train.log"
    if config.done_marker.exists() and config.merged_dir.exists():
        return PhaseResult(config.phase, config.output_dir, log_path, None, trained=False)
    resumed = _last_step(config.checkpoints)
    if not config.trained_marker.exists():
        _wait(start_phase(settings, config), timeout_s)
    if config.trained_marker.exists() and not config.done_marker.exists():
        path = config.output_dir / "worker.json"
        merge = [sys.executable, "-m", "twin.training.worker", "--merge", str(path)]
        with log_path.open("ab") as log:
            _wait(
                subprocess.Popen(
                    merge,
                    env=launch_env(settings, 1),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                ),
                timeout_s,
            )
    if not config.done_marker.exists():
        raise LaunchError(f"{config.phase} training failed; log {log_path}:\n{_tail(log_path)}")
    return PhaseResult(config.phase, config.output_dir, log_path, resumed, trained=True)


def join_run(
    settings: Settings,
    folder: Path,
    node_rank: int,
    *,
    wait_s: float = 3600.0,
    poll_s: float = 2.0,
) -> list[str]:
    """Node `node_rank` (> 0) of a run that spans machines: for each phase node 0 prepares in
    the shared run `folder` (`<folder>/<phase>/worker.json`: SFT, then DPO when the run has it),
    start this node's ranks and wait for them; a phase already trained is skipped, as node 0
    skips it. Returns the phases this node trained in."""
    import time

    from pydantic import ValidationError

    from twin.training.config import WorkerConfig

    joined: list[str] = []
    phases = ["sft", "dpo"]
    while phases:
        phase = phases.pop(0)
        path = folder / phase / "worker.json"
        deadline = time.monotonic() + wait_s
        config = None
        while config is None:
            try:  # a shared filesystem may show a file before all of it arrived
                config = WorkerConfig.model_validate_json(path.read_text())
            except (FileNotFoundError, ValidationError) as err:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"node 0 did not prepare {path} within {wait_s:.0f} s ({err})"
                    ) from None
                time.sleep(poll_s)
        if phase == "sft" and not config.params.dpo:
            phases = []
        if config.trained_marker.exists():
            continue
        rc = _wait(start_phase(settings, config, node_rank), None)
        if rc != 0:
            log = config.output_dir / f"train-node{node_rank}.log"
            raise LaunchError(
                f"node {node_rank}: {phase} ranks exited {rc}; log {log}:\n{_tail(log)}"
            )
        joined.append(phase)
    return joined


def _tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def _wait(proc: subprocess.Popen, timeout_s: float | None) -> int:
    try:
        return proc.wait(timeout=timeout_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        stop_tree(proc.pid, signal.SIGTERM)
        proc.wait(30)
        raise


def stop_tree(pid: int, sig: int = signal.SIGTERM, wait_s: float = 30.0) -> None:
    """Signal a launcher and every rank under it (torchrun starts each rank in a session of its
    own, so signalling the launcher's process group alone would leave the ranks running)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        members = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(sig)
    psutil.wait_procs(members, timeout=wait_s)


def _last_step(folder: Path) -> int | None:
    last = last_complete_checkpoint(folder)
    return int(last.name.removeprefix("checkpoint-")) if last else None
