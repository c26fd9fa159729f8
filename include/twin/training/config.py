"""What one training process receives (a JSON file), and the DeepSpeed configuration it uses."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.training.params import TrainingParams


class WorkerConfig(BaseModel):
    """One phase (SFT or DPO) of a run, as the launched worker processes read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: Literal["sft", "dpo"]
    model_path: str = Field(description="the model the adapter trains on (base, or merged SFT)")
    data_path: Path = Field(description="JSONL rows in TRL's conversational format")
    output_dir: Path = Field(description="checkpoints/, adapter/, merged/ and metrics.jsonl")
    deepspeed_config: Path | None = None
    params: TrainingParams

    @property
    def checkpoints(self) -> Path:
        return self.output_dir / "checkpoints"

    @property
    def adapter_dir(self) -> Path:
        return self.output_dir / "adapter"

    @property
    def merged_dir(self) -> Path:
        return self.output_dir / "merged"

    @property
    def metrics_path(self) -> Path:
        return self.output_dir / "metrics.jsonl"

    @property
    def trained_marker(self) -> Path:
        return self.output_dir / "TRAINED"

    @property
    def done_marker(self) -> Path:
        return self.output_dir / "DONE"


def deepspeed_config(stage: int, *, cpu: bool = True) -> dict:
    """A ZeRO-2 or ZeRO-3 configuration; "auto" lets the HF Trainer fill what its arguments decide
    (precision, batch sizes, clipping), so the two never disagree."""
    zero: dict[str, object] = {
        "stage": stage,
        "overlap_comm": not cpu,
        "contiguous_gradients": True,
    }
    if stage == 3:
        zero |= {
            "stage3_gather_16bit_weights_on_model_save": True,
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "reduce_bucket_size": "auto",
        }
    else:
        zero |= {"allgather_partitions": True, "reduce_scatter": True}
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_allow_untested_optimizer": True,
        "wall_clock_breakdown": False,
    }


def base_model_module_names(model_path: str) -> set[str]:
    """Leaf names of the base model's modules (`q_proj`, `down_proj`...), built on the meta
    device from its config: no weights load."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint whose trainer state was written (the Trainer writes it last, so a
    run killed while saving leaves a folder without it, which is skipped)."""
    found = []
    for path in folder.glob("checkpoint-*") if folder.is_dir() else []:
        step = path.name.removeprefix("checkpoint-")
        if step.isdigit() and (path / "trainer_state.json").exists():
            found.append((int(step), path))
    return max(found)[1] if found else None
