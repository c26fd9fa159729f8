"""Turn the author's clean marts into instruction and preference datasets, versioned with lineage.

Scheduled on the marts asset. Sections of each document are filtered (length, language,
boilerplate, PII, duplicates), given instructions by the chosen generator (cached per document
content and generator configuration, so only new or changed documents cost a call), paired with
a model's answer for preference data, split by document and decontaminated against evaluation
prompts. The datasets asset is emitted only when the build produced a new version.
"""

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

from twin.assets import DATASETS, WAREHOUSE_MARTS
from twin.datasets.params import param_schemas
from twin.datasets.tasks import build_dataset_task, publish_if_new


@dag(
    schedule=[Asset(**WAREHOUSE_MARTS)],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    tags=["twin", "training", "datasets"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=2)},
    # Each Param is a field of `DatasetOptions` (title, description, bounds), which checks again
    # what reaches the task.
    params={
        name: Param(schema.pop("default"), **schema) for name, schema in param_schemas().items()
    },
    doc_md=__doc__,
)
def twin_datasets():
    built = task(build_dataset_task, task_id="build_dataset")()
    task(publish_if_new, outlets=[Asset(**DATASETS)])(built)


twin_datasets()
