"""Training hyperparameters: one validated object, checked against the machine and the base model
before anything launches, and hashed so the same dataset and configuration never train twice."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from twin.domain.samples import content_digest
from twin.settings import Settings

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
# Fields that only steer the run, not what it produces: they stay out of the configuration hash.
# Evaluation knobs change the report, not the model: new ones re-evaluate, never retrain.
UNHASHED = frozenset({"force", "save_steps", "eval_samples", "eval_pairs", "max_new_tokens"})


class ParamsError(ValueError):
    """Hyperparameters that cannot run; the message names the parameter."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"invalid training parameter '{param}': {message}")


class TrainingParams(BaseModel):
    """Everything that decides what a training run produces (the DAG's Params map onto it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model: str = Field(
        default=Settings.model_fields["training_base_model"].default, min_length=1
    )
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = Field(default=-1, description="SFT optimiser steps; -1: run `epochs`")
    batch_size: int = 2
    grad_accum: int = 1
    max_length: int = 256
    zero_stage: Literal[0, 2, 3] = 2
    ranks: int = 1
    dpo: bool = True
    beta: float = 0.1
    dpo_learning_rate: float = 5e-5
    dpo_max_steps: int = -1
    dpo_epochs: float = 1.0
    qlora: bool = False
    bf16: bool = True
    seed: int = 42
    save_steps: int = 10
    eval_samples: int = 8
    eval_pairs: int = Field(default=24, description="held-out pairs scored for perplexity")
    max_new_tokens: int = 40
    force: bool = False

    @field_validator("target_modules", mode="before")
    @classmethod
    def _split_targets(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value

    def config_hash(self) -> str:
        """Digest of every field that changes the trained model (not `force`)."""
        payload = self.model_dump(mode="json", exclude=set(UNHASHED))
        return content_digest(payload)[:16]


def parse_params(raw: dict[str, object]) -> TrainingParams:
    """`TrainingParams` from loose input (DAG Params, CLI), errors naming the parameter."""
    try:
        return TrainingParams.model_validate(raw)
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
    gpus = _cuda_devices() if gpus is None else gpus
    cuda = gpus > 0
    positive = {
        "lora_r": params.lora_r,
        "lora_alpha": params.lora_alpha,
        "batch_size": params.batch_size,
        "grad_accum": params.grad_accum,
        "max_length": params.max_length,
        "ranks": params.ranks,
        "save_steps": params.save_steps,
        "eval_samples": params.eval_samples,
        "eval_pairs": params.eval_pairs,
        "max_new_tokens": params.max_new_tokens,
    }
    for name, value in positive.items():
        if value < 1:
            raise ParamsError(name, f"must be at least 1, got {value}")
    if not 0.0 <= params.lora_dropout < 1.0:
        raise ParamsError("lora_dropout", f"must be in [0, 1), got {params.lora_dropout}")
    for name in ("learning_rate", "dpo_learning_rate", "beta"):
        if getattr(params, name) <= 0:
            raise ParamsError(name, f"must be positive, got {getattr(params, name)}")
    for steps, epochs in (("max_steps", "epochs"), ("dpo_max_steps", "dpo_epochs")):
        if getattr(params, steps) == 0 or getattr(params, steps) < -1:
            raise ParamsError(steps, "must be a positive step count, or -1 to run the epochs")
        if getattr(params, steps) == -1 and getattr(params, epochs) <= 0:
            raise ParamsError(epochs, "must be positive when the step count is -1")
    if not params.target_modules:
        raise ParamsError("target_modules", "name at least one module to adapt")
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


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
