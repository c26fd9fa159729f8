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

from twin.assets import DATASETS, MODEL_CANDIDATES, TRAINING_POOL, TRAINING_QUEUE
from twin.training.params import param_schemas
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
    # Each Param is declared once, in twin.training.params (title, description, bounds), whose
    # models check again what reaches the task.
    params={
        name: Param(schema.pop("default"), **schema) for name, schema in param_schemas().items()
    },
)
def twin_training():
    plan = task(plan_task, task_id="validate_and_plan", retries=0)()
    trained = task(
        train_from_plan,
        task_id="train_evaluate_register",
        pool=TRAINING_POOL,
        queue=TRAINING_QUEUE,
    )(plan)
    task(publish_task, task_id="publish_candidate", outlets=[Asset(**MODEL_CANDIDATES)])(trained)


twin_training()
