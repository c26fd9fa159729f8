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
from twin.datasets.tasks import build_dataset_task, publish_if_new


@dag(
    schedule=[Asset(**WAREHOUSE_MARTS)],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    tags=["twin", "training", "datasets"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=2)},
    params={
        "author": Param(
            "",
            type="string",
            title="Author",
            description="Whose clean marts to build from. Empty: the configured sample author.",
        ),
        "generator": Param(
            "offline",
            enum=["offline", "smollm2", "endpoint"],
            title="Instruction generator",
            description="What writes each section's instruction. offline: templates, no model; "
            "smollm2: the packaged small model (slow, so Max instructions must be 1-200); "
            "endpoint: the OpenAI-compatible chat API at TWIN_GENERATOR_URL.",
        ),
        "max_instructions": Param(
            0,
            type="integer",
            minimum=0,
            title="Max instructions",
            description="Sections given an instruction in this version; 0: every section "
            "(smollm2 needs 1-200).",
        ),
        "max_preferences": Param(
            0,
            type="integer",
            minimum=0,
            title="Max preference pairs",
            description="Cap on preference pairs in this version; 0: one pair per instruction.",
        ),
        "preference": Param(
            True,
            type="boolean",
            title="Build preference pairs",
            description="Pair the author's answer (chosen) with the generator's answer "
            "(rejected) for DPO; off: instruction data only, and twin_training needs DPO off.",
        ),
        "test_share": Param(
            0.1,
            type="number",
            minimum=0,
            maximum=0.5,
            title="Test share",
            description="Fraction of documents (0-0.5) held out as the test split; a document "
            "keeps its split as others are added.",
        ),
    },
    doc_md=__doc__,
)
def twin_datasets():
    built = task(build_dataset_task, task_id="build_dataset")()
    task(publish_if_new, outlets=[Asset(**DATASETS)])(built)


twin_datasets()
