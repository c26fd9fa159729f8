"""Training hyperparameters: one validated object, checked against the machine and the base model
before anything launches, and hashed so the same dataset and configuration never train twice.

Each field the twin_training trigger form shows is declared here once, with its title,
description and bounds; `param_schemas()` derives the DAG's Params from these fields, so the form
refuses what `parse_params` refuses. Light to import: the DAG file calls it at parse time.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from twin.domain.samples import content_digest
from twin.form import param_schemas as form_schemas
from twin.form import validate_strict
from twin.settings import Settings

LATEST = "latest"
# LoRA rank 32 on every linear layer (attention and MLP) at 6e-4: on SmolLM2-135M, 30 SFT steps
# raised the voice score on the sample author's topic-held-out prompts from 0.414 to 0.634 (3
# seeds, benchmarks/style.py). The previous defaults (rank 16 on the attention projections at
# 2e-4) were not measured on this score; their demo version had read less like her than its base.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Fields that only steer the run, not what it produces: they stay out of the configuration hash.
# Evaluation knobs change the report, not the model: new ones re-evaluate, never retrain.
UNHASHED = frozenset(
    {
        "force",
        "gradient_checkpointing",
        "save_steps",
        "eval_samples",
        "eval_pairs",
        "eval_seeds",
        "max_new_tokens",
        "rendezvous",
    }
)
# Fields only the DPO phase reads: runs of one dataset that differ in these alone (or in the
# unhashed ones) train the same SFT phase, which the later run reuses (`TrainingParams.sft_hash`).
DPO_FIELDS = frozenset({"dpo", "beta", "dpo_learning_rate", "dpo_max_steps", "dpo_epochs"})
# A step count is positive, or -1 for "run the epochs"; 0 would train nothing.
STEPS: dict[str, Any] = {"ge": -1, "json_schema_extra": {"not": {"const": 0}}}


class ParamsError(ValueError):
    """Hyperparameters that cannot run; the message names the parameter."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"invalid training parameter '{param}': {message}")


class DatasetChoice(BaseModel):
    """Which dataset version a run trains on (resolved by `twin.training.tasks`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset_version: str = Field(
        default=LATEST,
        min_length=1,
        pattern=r"\S",
        title="Dataset version",
        description="A dataset version id (or its first 8+ characters), 'latest' (the newest, "
        "see Author) or 'sample' (the bundled sample author's, no warehouse needed).",
    )
    author: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"\S",
        title="Author",
        description="With 'latest': whose newest dataset version. Empty: the platform's "
        "author (the TWIN_AUTHOR setting).",
    )


class TrainingParams(BaseModel):
    """Everything that decides what a training run produces (the DAG's Params map onto it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model: str = Field(
        default=Settings.model_fields["training_base_model"].default,
        min_length=1,
        title="Base model",
        description="Model spec, local folder or Hugging Face hub id to fine-tune. Empty: "
        "TWIN_TRAINING_BASE_MODEL (default smollm2-135m).",
    )
    lora_r: int = Field(
        default=32,
        ge=1,
        title="LoRA rank",
        description="Rank r of the LoRA adapter matrices; higher trains more parameters.",
    )
    lora_alpha: int = Field(
        default=64,
        ge=1,
        title="LoRA alpha",
        description="LoRA scaling numerator: the update is scaled by alpha / rank.",
    )
    lora_dropout: float = Field(
        default=0.05,
        ge=0,
        le=0.9,
        title="LoRA dropout",
        description="Dropout probability on the LoRA layers' input, 0-0.9.",
    )
    target_modules: tuple[str, ...] = Field(
        default=DEFAULT_TARGETS,
        min_length=1,
        title="Target modules",
        description="Base model modules given a LoRA adapter, one name per line; each must "
        "exist in the base model.",
    )
    learning_rate: float = Field(
        default=6e-4,
        gt=0,
        title="SFT learning rate",
        description="Peak learning rate of supervised fine-tuning; above 0.",
    )
    epochs: float = Field(
        default=1.0,
        gt=0,
        title="SFT epochs",
        description="Passes over the training split (fractions allowed); used only when SFT "
        "max steps is -1.",
    )
    max_steps: int = Field(
        default=-1,
        title="SFT max steps",
        description="SFT optimiser steps; -1 runs the epochs.",
        **STEPS,
    )
    batch_size: int = Field(
        default=2,
        ge=1,
        title="Batch size per rank",
        description="Samples per optimiser step on each rank (SFT and DPO).",
    )
    grad_accum: int = Field(default=1, ge=1)
    max_length: int = Field(
        default=256,
        ge=16,
        title="Max sequence length",
        description="Tokens per training and evaluation sequence (at least 16); longer ones "
        "are truncated.",
    )
    zero_stage: Literal[0, 2, 3] = Field(
        default=2,
        title="DeepSpeed ZeRO stage",
        description="0: no DeepSpeed (plain data parallel); 2: shard optimiser state and "
        "gradients; 3: also shard the weights.",
    )
    ranks: int = Field(
        default=1,
        ge=1,
        title="Ranks",
        description="Training processes: one per CPU core (gloo) or per GPU (NCCL); cannot "
        "exceed the cores or GPUs available. Empty: every GPU, or every core without one.",
    )
    nodes: int = Field(
        default=1,
        ge=1,
        le=64,
        title="Nodes",
        description="Machines one run spans, each running `Ranks` ranks (world size nodes x "
        "ranks); above 1 needs a rendezvous, and every node sees the run's folder.",
    )
    rendezvous: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]*:[0-9]{1,5}$",
        title="Rendezvous",
        description="host:port of node 0, where the nodes' launchers meet (torchrun's master "
        "address); needed when Nodes is above 1.",
    )
    dpo: bool = Field(
        default=True,
        title="Run DPO",
        description="After SFT, run DPO on the merged SFT model; needs a dataset with "
        "preference pairs.",
    )
    beta: float = Field(
        default=0.1,
        gt=0,
        title="DPO beta",
        description="Strength of DPO's pull towards the SFT reference model; above 0, higher "
        "stays closer.",
    )
    dpo_learning_rate: float = Field(
        default=5e-5,
        gt=0,
        title="DPO learning rate",
        description="Peak learning rate of the DPO phase; above 0.",
    )
    dpo_max_steps: int = Field(
        default=-1,
        title="DPO max steps",
        description="DPO optimiser steps; -1 runs one epoch over the preference pairs.",
        **STEPS,
    )
    dpo_epochs: float = Field(default=1.0, gt=0)
    qlora: bool = Field(
        default=False,
        title="4-bit QLoRA",
        description="Load the base model in 4-bit (bitsandbytes NF4); CUDA GPUs only.",
    )
    bf16: Literal["auto", "on", "off"] = Field(
        default="auto",
        title="bf16 mixed precision",
        description="Train and evaluate in bfloat16 mixed precision (fp16 on a GPU without "
        "bf16). auto: on a GPU and on a CPU that multiplies bf16 in hardware (AVX512-BF16, "
        "AMX); float32 on other CPUs, where emulated bf16 is about 3x slower. off: float32 "
        "throughout.",
    )
    gradient_checkpointing: Literal["auto", "on", "off"] = Field(
        default="auto",
        title="Gradient checkpointing",
        description="Recompute activations in the backward pass instead of keeping them: less "
        "memory for about a third more compute per step; it does not change the trained model. "
        "auto: on a GPU (memory is what runs out), off on the CPU (compute is).",
    )
    seed: int = 42
    save_steps: int = Field(
        default=10,
        ge=1,
        title="Checkpoint every (steps)",
        description="Optimiser steps between checkpoints; a retried run resumes from the last one.",
    )
    eval_samples: int = Field(
        default=24,
        ge=1,
        title="Evaluation prompts",
        description="Topic-held-out prompts (the author's platforms' forms, topics absent from "
        "their writing) the base and the candidate answer per seed; voice, loops and stock "
        "phrases are measured on them (fewer make the figures noisy).",
    )
    eval_pairs: int = Field(
        default=24,
        ge=1,
        title="Evaluation pairs",
        description="Held-out (instruction, answer) pairs scored for perplexity per model.",
    )
    eval_seeds: int = Field(
        default=3,
        ge=1,
        le=10,
        title="Evaluation seeds",
        description="Sampling seeds each evaluation prompt is answered with; figures are the "
        "mean and sd over them, and the gate needs the style gain beyond that sd.",
    )
    max_new_tokens: int = Field(default=64, ge=1)
    force: bool = Field(
        default=False,
        title="Force retraining",
        description="Train even if this dataset version and configuration are already a "
        "registered version.",
    )

    @field_validator("bf16", mode="before")
    @classmethod
    def _switch(cls, value: object) -> object:
        """True and False, as earlier runs gave it, mean "on" and "off"."""
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    @field_validator("max_steps", "dpo_max_steps")
    @classmethod
    def _steps_or_epochs(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be a positive step count, or -1 to run the epochs")
        return value

    @model_validator(mode="after")
    def _nodes_meet_somewhere(self) -> TrainingParams:
        if self.nodes > 1 and not self.rendezvous:
            raise ValueError("rendezvous (host:port of node 0) is needed when nodes is above 1")
        return self

    def config_hash(self) -> str:
        """Digest of every field that changes the trained model (not `force`); a one-node run
        hashes as it did before runs could span nodes."""
        return self._digest(UNHASHED)

    def sft_hash(self) -> str:
        """Digest of the fields that change the SFT phase's model (not the DPO ones)."""
        return self._digest(UNHASHED | DPO_FIELDS)

    def _digest(self, exclude: frozenset[str]) -> str:
        payload = self.model_dump(mode="json", exclude=set(exclude))
        if payload["nodes"] == 1:
            del payload["nodes"]
        return content_digest(payload)[:16]


# The trigger form's fields, in form order (the others keep their library defaults).
FORM_FIELDS = (
    "base_model", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate",
    "epochs", "max_steps", "dpo_max_steps", "batch_size", "max_length", "zero_stage", "ranks",
    "nodes", "rendezvous", "dpo", "beta", "dpo_learning_rate", "qlora", "bf16",
    "gradient_checkpointing", "save_steps", "eval_samples", "eval_pairs", "eval_seeds", "force",
)  # fmt: skip
# A triggered or scheduled run is a real retrain: the epochs over the whole dataset (the step
# counts' -1) on every device of the machine (`ranks` empty: `available_ranks()`). The demo and
# the tests pass their small step counts explicitly.


def param_schemas() -> dict[str, dict[str, Any]]:
    """The twin_training Params: each one's default and JSON schema, in form order. An empty
    base model (None) is the configured one (`TWIN_TRAINING_BASE_MODEL`), an empty author the
    platform's (`TWIN_AUTHOR`), empty ranks every device (`available_ranks`), all filled in by
    the task."""
    return {
        **form_schemas(DatasetChoice, tuple(DatasetChoice.model_fields)),
        **form_schemas(
            TrainingParams,
            FORM_FIELDS,
            configured_when_empty=("base_model", "ranks"),
        ),
    }


def parse_choice(raw: dict[str, object]) -> DatasetChoice:
    """`DatasetChoice` from a run's values, as strictly as the form checks them."""
    try:
        return validate_strict(DatasetChoice, raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ParamsError(".".join(str(p) for p in first["loc"]), first["msg"]) from None


def parse_params(raw: dict[str, object]) -> TrainingParams:
    """`TrainingParams` from a run's values (DAG Params, CLI JSON), as strictly as the form
    checks them ("5" is no number, "false" no flag); errors name the parameter."""
    try:
        return validate_strict(TrainingParams, raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or "params"
        raise ParamsError(param, first["msg"]) from None


def check_params(
    params: TrainingParams,
    *,
    module_names: set[str] | None = None,
    cores: int | None = None,
    gpus: int | None = None,
) -> None:
    """Refuse a configuration that cannot train, before any process starts.

    `module_names`: the base model's module leaf names (checked against `target_modules`);
    `cores`: CPU cores available (each rank needs one on CPU); `gpus`: CUDA devices (detected
    when None).
    """
    # Bounds of single fields (positive sizes, rates, dropout, step counts) are the fields' own,
    # checked when the object is built; what is left needs the machine or the base model.
    gpus = _cuda_devices() if gpus is None else gpus
    cuda = gpus > 0
    if module_names is not None:
        unknown = sorted(set(params.target_modules) - module_names)
        if unknown:
            linear = ", ".join(sorted(m for m in module_names if m.endswith("proj"))) or "none"
            raise ParamsError(
                "target_modules",
                f"{unknown} not in base model {params.base_model!r} (its projections: {linear})",
            )
    if params.qlora and not cuda:
        raise ParamsError(
            "qlora", "4-bit QLoRA (bitsandbytes) needs a CUDA GPU; this machine has none"
        )
    cores = cores if cores is not None else available_cores()
    if not cuda and params.ranks > cores:
        raise ParamsError(
            "ranks", f"{params.ranks} ranks on CPU need {params.ranks} cores; {cores} available"
        )
    if cuda and params.ranks > gpus:
        raise ParamsError("ranks", f"{params.ranks} ranks but {gpus} GPUs")


def available_ranks() -> int:
    """One rank per CUDA GPU; on a machine without one, one per CPU core this process may use."""
    return _cuda_devices() or available_cores()


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
