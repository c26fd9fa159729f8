"""One training phase in one rank: `python -m twin.training.worker CONFIG.json`, started by the
launcher (torchrun or deepspeed) once per rank. SFT trains a LoRA adapter on the chat template with
the loss on the assistant's turns; DPO trains a fresh adapter on the merged SFT model, whose
adapter-disabled self is the reference. Checkpoints every `save_steps`; a rerun resumes from the
last one. Rank 0 writes per-step metrics to JSONL, the adapter, then the merged model;
`--merge CONFIG.json` redoes only the merge (a run killed between the two)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from twin.domain.devices import DevicePolicy, detect, mixed_precision
from twin.domain.generation import ensure_pad_token
from twin.training.config import WorkerConfig, last_complete_checkpoint

if TYPE_CHECKING:
    from twin.training.params import TrainingParams


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--merge":
        merge(WorkerConfig.model_validate_json(Path(argv[1]).read_text()))
        return 0
    config = WorkerConfig.model_validate_json(Path(argv[0]).read_text())
    _single_process_env()
    import torch

    policy = detect()
    cuda = policy.cuda
    if config.deepspeed_config is not None:
        import deepspeed

        if not cuda:
            _no_shm_all_reduce()
        # before from_pretrained: ZeRO-3 partitions while loading, and the batch-size check needs it
        deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    trainer = _build_trainer(config, policy)
    last = _last_checkpoint(config.checkpoints)
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    trainer.save_model(str(config.adapter_dir))
    if cuda and trainer.is_world_process_zero():
        peak = {"peak_bytes": torch.cuda.max_memory_allocated()}
        (config.output_dir / "peak_memory.json").write_text(json.dumps(peak))
    if trainer.is_world_process_zero():
        config.trained_marker.write_text(json.dumps({"global_step": trainer.state.global_step}))
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()  # the merge loads a whole, unpartitioned copy
        merge(config)
    return 0


def _no_shm_all_reduce() -> None:
    """DeepSpeed compiles its shared-memory all-reduce op when a CPU process group starts (34 s
    on a fresh 2-core machine). Only its inference all-reduce uses that op, never training, which
    reduces through the gloo process group either way. DeepSpeed's table of usable ops is one
    module-level dict that keeps edits: CPU training ranks mark the op unusable there."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def _single_process_env() -> None:
    """A plain `python` process still runs as a one-rank world (DeepSpeed wants the variables)."""
    if "RANK" not in os.environ:
        from twin.stack.process import free_port

        os.environ.update(
            RANK="0",
            WORLD_SIZE="1",
            LOCAL_RANK="0",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(free_port()),
        )


def _last_checkpoint(folder: Path) -> Path | None:
    """The last complete checkpoint; half-written ones after it (a kill while saving) are removed
    so the Trainer's own bookkeeping never picks them up."""
    import shutil

    last = last_complete_checkpoint(folder)
    limit = int(last.name.removeprefix("checkpoint-")) if last else -1
    for path in folder.glob("checkpoint-*") if folder.is_dir() else []:
        step = path.name.removeprefix("checkpoint-")
        if step.isdigit() and int(step) > limit:
            shutil.rmtree(path, ignore_errors=True)
    return last


def _build_trainer(config: WorkerConfig, policy: DevicePolicy):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from twin.training.templates import ASSISTANT, prompt_completion, sft_loss_mode

    p = config.params
    cuda = policy.cuda
    half = mixed_precision(p.bf16, policy)
    tokenizer = AutoTokenizer.from_pretrained(config.model_path)
    dataset = load_dataset("json", data_files=str(config.data_path), split="train")
    common = dict(
        output_dir=str(config.checkpoints),
        per_device_train_batch_size=p.batch_size,
        gradient_accumulation_steps=p.grad_accum,
        max_length=p.max_length,
        save_strategy="steps",
        save_steps=p.save_steps,
        save_total_limit=2,
        logging_steps=1,
        report_to=[],
        seed=p.seed,
        data_seed=p.seed,
        use_cpu=not cuda,
        gradient_checkpointing=p.gradient_checkpointing == "on"
        or (p.gradient_checkpointing == "auto" and cuda),
        bf16=half and policy.dtype != "float16",
        fp16=half and policy.dtype == "float16",
        deepspeed=str(config.deepspeed_config) if config.deepspeed_config else None,
        dataloader_num_workers=0,
        ddp_backend=None if cuda else "gloo",
        disable_tqdm=True,
        save_only_model=False,
    )
    if config.phase == "sft":
        from trl import SFTConfig, SFTTrainer

        # the loss on the answers only: assistant masks where the template allows, else
        # prompt/completion rows (TemplateError, before training, where neither works)
        mode = sft_loss_mode(tokenizer, config.model_path)
        if mode != ASSISTANT:
            dataset = dataset.map(prompt_completion, remove_columns=["messages"])
        args = SFTConfig(
            **common,
            learning_rate=p.learning_rate,
            num_train_epochs=p.epochs,
            max_steps=p.max_steps,
            assistant_only_loss=mode == ASSISTANT,
            completion_only_loss=mode != ASSISTANT,
            packing=False,
        )
    else:
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(
            **common,
            learning_rate=p.dpo_learning_rate,
            num_train_epochs=p.dpo_epochs,
            max_steps=p.dpo_max_steps,
            beta=p.beta,
        )
    ensure_pad_token(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(
        config.model_path,
        **model_load_kwargs(
            policy,
            p.qlora,
            int(os.environ.get("LOCAL_RANK", "0")),
            zero3=config.deepspeed_config is not None and p.zero_stage == 3,
        ),
    )
    lora = lora_config(p)
    cls = SFTTrainer if config.phase == "sft" else DPOTrainer
    trainer = cls(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[MetricsWriter(config)],
    )
    if len(trainer.train_dataset) == 0:
        raise SystemExit(
            f"{config.phase}: none of the {len(dataset)} training examples keeps an answer token "
            f"within max_length={p.max_length} tokens (the prompt takes them all): raise "
            "max_length in twin_training's Params"
        )
    return trainer


def lora_config(p: TrainingParams):
    """The run's LoRA adapter (rank, alpha, dropout, target modules) as peft's `LoraConfig`."""
    from peft import LoraConfig

    return LoraConfig(
        r=p.lora_r,
        lora_alpha=p.lora_alpha,
        lora_dropout=p.lora_dropout,
        target_modules=list(p.target_modules),
        task_type="CAUSAL_LM",
    )


def model_load_kwargs(policy: DevicePolicy, qlora: bool, local_rank: int, *, zero3: bool) -> dict:
    """`from_pretrained` arguments of a rank. CPU: float32 master weights (bf16 is autocast).
    CUDA: half precision (the Trainer moves the model to the rank's GPU). QLoRA: 4-bit NF4
    weights placed on the rank's own GPU (`device_map={"": local_rank}`; under ZeRO-3 DeepSpeed
    places them instead, which refuses a device map), stored in the compute dtype so ZeRO-3 can
    partition them like the rest. bitsandbytes comes from requirements-gpu.txt."""
    if qlora and not policy.cuda:
        raise RuntimeError("4-bit QLoRA (bitsandbytes) needs a CUDA GPU; this rank has none")
    kwargs: dict = {"dtype": policy.torch_dtype()}
    if not qlora:
        return kwargs
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise RuntimeError("4-bit QLoRA needs bitsandbytes: pip install -r requirements-gpu.txt")
    kwargs["quantization_config"] = quantization_config(policy)
    if not zero3:
        kwargs["device_map"] = {"": local_rank}
    return kwargs


def quantization_config(policy: DevicePolicy):
    """NF4 with double quantisation, computing and storing in the policy's half dtype."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=policy.torch_dtype(),
        bnb_4bit_use_double_quant=True,
        bnb_4bit_quant_storage=policy.torch_dtype(),
    )


def merge(config: WorkerConfig) -> None:
    """Fold the adapter into a fresh copy of the model it trained on; save it with the tokenizer.
    Runs in a process of its own after the ranks exit (ZeRO-3 would partition this copy too)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # the same policy as training (the launcher hands it down): half precision on a GPU
    policy = detect()
    base = AutoModelForCausalLM.from_pretrained(config.model_path, **policy.load_kwargs())
    merged = PeftModel.from_pretrained(base, str(config.adapter_dir)).merge_and_unload()
    if mixed_precision(config.params.bf16, policy) and not policy.half:
        import torch

        # trained under bf16 autocast on the CPU: stored in bf16, half the bytes to log, load
        # and serve (each loader upcasts to its own policy's dtype)
        merged = merged.to(torch.bfloat16)
    tmp = config.merged_dir.with_name("merged.tmp")
    merged.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(config.model_path).save_pretrained(tmp)
    if config.merged_dir.exists():
        import shutil

        shutil.rmtree(config.merged_dir)
    tmp.rename(config.merged_dir)
    config.done_marker.write_text(config.trained_marker.read_text())


def _trainer_callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class MetricsWriter(_trainer_callback_base()):
    """Rank 0 appends every logged step to `metrics.jsonl` (loss, learning rate, grad norm,
    tokens/s); the parent process reads it and logs it to MLflow."""

    def __init__(self, config: WorkerConfig) -> None:
        self.path = config.metrics_path
        self.phase = config.phase
        self.ranks = int(os.environ.get("WORLD_SIZE", "1"))
        self.last_time: float | None = None
        self.last_tokens: float | None = None
        self.last_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_time, self.last_step = time.perf_counter(), state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        now = time.perf_counter()
        row = {"phase": self.phase, "step": state.global_step, "epoch": state.epoch}
        row |= {k: float(v) for k, v in logs.items() if isinstance(v, int | float)}
        tokens = logs.get("num_tokens")
        if tokens is not None and self.last_tokens is not None and now > (self.last_time or now):
            row["tokens_per_s"] = (float(tokens) - self.last_tokens) / (now - self.last_time)
        elif self.last_time is not None and state.global_step > self.last_step:
            row["seconds_per_step"] = (now - self.last_time) / (state.global_step - self.last_step)
        row["ranks"] = self.ranks
        row["time"] = time.time()
        self.last_time, self.last_step = now, state.global_step
        self.last_tokens = float(tokens) if tokens is not None else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
            out.flush()
            os.fsync(out.fileno())


if __name__ == "__main__":
    sys.exit(main())
