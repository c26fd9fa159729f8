"""Nodes of a run that spans machines meet in a shared folder: node 0 writes each phase's
configuration there, the others read it. A joining node never acts on half a file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from twin.settings import Settings
from twin.training.launch import join_run, prepare_phase
from twin.training.params import TrainingParams
from twin.training.pipeline import phase_config


def test_a_joining_node_waits_out_a_configuration_still_being_written(tmp_path: Path) -> None:
    params = TrainingParams(
        base_model="tiny-llama", nodes=2, ranks=1, rendezvous="127.0.0.1:29999", dpo=False
    )
    config = phase_config(params, "sft", str(tmp_path / "base"), tmp_path / "sft.jsonl", tmp_path)
    config.output_dir.mkdir(parents=True)
    (config.output_dir / "worker.json").write_text("")  # what a reader may see mid-write
    config.trained_marker.write_text("{}")  # already trained: the joining node starts nothing

    def node0() -> None:
        time.sleep(0.5)
        prepare_phase(config)

    writer = threading.Thread(target=node0)
    writer.start()
    joined = join_run(Settings(), tmp_path, 1, wait_s=30, poll_s=0.05)
    writer.join()

    assert joined == []  # read the whole configuration, saw the phase trained, skipped it
    assert sorted(p.name for p in config.output_dir.iterdir()) == [
        "TRAINED",
        "deepspeed.json",
        "worker.json",
    ]  # no temporary file left behind
