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
        "dataset_version": Param("latest", type="string", description="id, 'latest' or 'sample'"),
        "author": Param("", type="string", description="with 'latest': whose newest version"),
        "base_model": Param(
            "",
            type="string",
            description="spec, folder or hub id; empty: TWIN_TRAINING_BASE_MODEL (smollm2-135m)",
        ),
        "lora_r": Param(16, type="integer", minimum=1),
        "lora_alpha": Param(32, type="integer", minimum=1),
        "lora_dropout": Param(0.05, type="number", minimum=0, maximum=0.9),
        "target_modules": Param(["q_proj", "k_proj", "v_proj", "o_proj"], type="array"),
        "learning_rate": Param(2e-4, type="number", exclusiveMinimum=0),
        "epochs": Param(1.0, type="number", exclusiveMinimum=0),
        "max_steps": Param(30, type="integer", description="SFT steps; -1 runs the epochs"),
        "dpo_max_steps": Param(15, type="integer", description="DPO steps; -1 runs the epochs"),
        "batch_size": Param(2, type="integer", minimum=1),
        "max_length": Param(256, type="integer", minimum=16),
        "zero_stage": Param(2, type="integer", enum=[0, 2, 3]),
        "ranks": Param(2, type="integer", minimum=1),
        "dpo": Param(True, type="boolean"),
        "beta": Param(0.1, type="number", exclusiveMinimum=0),
        "dpo_learning_rate": Param(5e-5, type="number", exclusiveMinimum=0),
        "qlora": Param(False, type="boolean", description="4-bit QLoRA: CUDA only"),
        "bf16": Param(True, type="boolean"),
        "save_steps": Param(10, type="integer", minimum=1),
        "eval_samples": Param(8, type="integer", minimum=1, description="answers generated"),
        "eval_pairs": Param(24, type="integer", minimum=1, description="pairs scored (ppl)"),
        "force": Param(False, type="boolean", description="train even if already trained"),
    },
)
def twin_training():
    plan = task(plan_task, task_id="validate_and_plan", retries=0)()
    trained = task(train_from_plan, task_id="train_evaluate_register")(plan)
    task(publish_task, task_id="publish_candidate", outlets=[Asset(**MODEL_CANDIDATES)])(trained)


twin_training()
