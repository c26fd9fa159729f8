"""Fine-tune the twin on a dataset version: LoRA SFT then DPO under DeepSpeed ZeRO (CPU: gloo
ranks; GPU: NCCL), evaluate base vs SFT vs DPO on the held-out split, and register a new version
of the model in MLflow (`review=pending`, alias `challenger`).

Scheduled on the datasets asset. Params are validated before anything launches; a dataset
version and configuration already trained is skipped unless `force`. Training runs as separate
processes, so this worker never holds the model. `model_candidates` is emitted only for a new
version.
"""

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

from twin.assets import DATASETS, MODEL_CANDIDATES
from twin.training.tasks import plan_task, publish_task, train_from_plan


@dag(
    schedule=[Asset(**DATASETS)],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=12),
    tags=["twin", "training"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=2)},
    doc_md=__doc__,
    params={
        "dataset_version": Param(
            "latest",
            type="string",
            title="Dataset version",
            description="A dataset version id (or its first 8+ characters), 'latest' (the "
            "newest, see Author) or 'sample' (the bundled sample author's, no warehouse needed).",
        ),
        "author": Param(
            "",
            type="string",
            title="Author",
            description="With 'latest': whose newest dataset version. Empty: the newest of any "
            "author.",
        ),
        "base_model": Param(
            "",
            type="string",
            title="Base model",
            description="Model spec, local folder or Hugging Face hub id to fine-tune. Empty: "
            "TWIN_TRAINING_BASE_MODEL (default smollm2-135m).",
        ),
        "lora_r": Param(
            16,
            type="integer",
            minimum=1,
            title="LoRA rank",
            description="Rank r of the LoRA adapter matrices; higher trains more parameters.",
        ),
        "lora_alpha": Param(
            32,
            type="integer",
            minimum=1,
            title="LoRA alpha",
            description="LoRA scaling numerator: the update is scaled by alpha / rank.",
        ),
        "lora_dropout": Param(
            0.05,
            type="number",
            minimum=0,
            maximum=0.9,
            title="LoRA dropout",
            description="Dropout probability on the LoRA layers' input, 0-0.9.",
        ),
        "target_modules": Param(
            ["q_proj", "k_proj", "v_proj", "o_proj"],
            type="array",
            title="Target modules",
            description="Base model modules given a LoRA adapter, one name per line; each must "
            "exist in the base model.",
        ),
        "learning_rate": Param(
            2e-4,
            type="number",
            exclusiveMinimum=0,
            title="SFT learning rate",
            description="Peak learning rate of supervised fine-tuning; above 0.",
        ),
        "epochs": Param(
            1.0,
            type="number",
            exclusiveMinimum=0,
            title="SFT epochs",
            description="Passes over the training split (fractions allowed); used only when SFT "
            "max steps is -1.",
        ),
        "max_steps": Param(
            30,
            type="integer",
            title="SFT max steps",
            description="SFT optimiser steps; -1 runs the epochs.",
        ),
        "dpo_max_steps": Param(
            15,
            type="integer",
            title="DPO max steps",
            description="DPO optimiser steps; -1 runs one epoch over the preference pairs.",
        ),
        "batch_size": Param(
            2,
            type="integer",
            minimum=1,
            title="Batch size per rank",
            description="Samples per optimiser step on each rank (SFT and DPO).",
        ),
        "max_length": Param(
            256,
            type="integer",
            minimum=16,
            title="Max sequence length",
            description="Tokens per training and evaluation sequence (at least 16); longer ones "
            "are truncated.",
        ),
        "zero_stage": Param(
            2,
            type="integer",
            enum=[0, 2, 3],
            title="DeepSpeed ZeRO stage",
            description="0: no DeepSpeed (plain data parallel); 2: shard optimiser state and "
            "gradients; 3: also shard the weights.",
        ),
        "ranks": Param(
            2,
            type="integer",
            minimum=1,
            title="Ranks",
            description="Training processes: one per CPU core (gloo) or per GPU (NCCL); "
            "cannot exceed the cores or GPUs available.",
        ),
        "dpo": Param(
            True,
            type="boolean",
            title="Run DPO",
            description="After SFT, run DPO on the merged SFT model; needs a dataset with "
            "preference pairs.",
        ),
        "beta": Param(
            0.1,
            type="number",
            exclusiveMinimum=0,
            title="DPO beta",
            description="Strength of DPO's pull towards the SFT reference model; above 0, "
            "higher stays closer.",
        ),
        "dpo_learning_rate": Param(
            5e-5,
            type="number",
            exclusiveMinimum=0,
            title="DPO learning rate",
            description="Peak learning rate of the DPO phase; above 0.",
        ),
        "qlora": Param(
            False,
            type="boolean",
            title="4-bit QLoRA",
            description="Load the base model in 4-bit (bitsandbytes NF4); CUDA GPUs only.",
        ),
        "bf16": Param(
            True,
            type="boolean",
            title="bf16 mixed precision",
            description="Train and evaluate in bfloat16 mixed precision; off: float32 throughout.",
        ),
        "save_steps": Param(
            10,
            type="integer",
            minimum=1,
            title="Checkpoint every (steps)",
            description="Optimiser steps between checkpoints; a retried run resumes from the "
            "last one.",
        ),
        "eval_samples": Param(
            8,
            type="integer",
            minimum=1,
            title="Evaluation answers",
            description="Held-out instructions each model (base, SFT, DPO) answers for the "
            "evaluation report.",
        ),
        "eval_pairs": Param(
            24,
            type="integer",
            minimum=1,
            title="Evaluation pairs",
            description="Held-out (instruction, answer) pairs scored for perplexity per model.",
        ),
        "force": Param(
            False,
            type="boolean",
            title="Force retraining",
            description="Train even if this dataset version and configuration are already a "
            "registered version.",
        ),
    },
)
def twin_training():
    plan = task(plan_task, task_id="validate_and_plan", retries=0)()
    trained = task(train_from_plan, task_id="train_evaluate_register")(plan)
    task(publish_task, task_id="publish_candidate", outlets=[Asset(**MODEL_CANDIDATES)])(trained)


twin_training()
