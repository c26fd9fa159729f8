"""The trigger form and the task agree on what a run may set, at the edges: a value a DAG's Param
accepts (the JSON-schema check Airflow runs for the form, the REST API and `dags test -c`) is one
the task's own check accepts, and a value one refuses the other refuses.

The Params come from the DAG objects themselves; the task side is the function each task calls
on its Params (training: `split_params`, datasets: `dataset_options`, deploy: `deploy_params`).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from twin.settings import Settings

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
# Loading a DAG file imports Airflow, which reads its configuration once, at first import: the
# session stack's environment (AIRFLOW_HOME and its metadata DB) must be in place before, or every
# later `dag.test()` of the session runs against a default SQLite database without tables.
pytestmark = pytest.mark.usefixtures("stack_settings")
# Settings built from arguments only: the task side must not depend on this machine's stack.
SETTINGS = Settings(training_base_model="smollm2-135m", author="Ada Example")


@cache
def dag_params(dag_id: str) -> Any:
    """The Params of the DAG in `dags/<dag_id>.py`, as Airflow holds them."""
    spec = importlib.util.spec_from_file_location(
        f"params_of_{dag_id}", DAGS_FOLDER / f"{dag_id}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, dag_id)().params


def form_accepts(dag_id: str, name: str, value: Any) -> bool:
    from airflow.sdk.exceptions import ParamValidationError

    param = dag_params(dag_id).get_param(name)
    try:
        type(param)(param.value, param.description, schema=param.schema).resolve(value)
    except ParamValidationError:
        return False
    return True


def task_accepts(dag_id: str, name: str, value: Any) -> bool:
    from twin.datasets.tasks import dataset_options
    from twin.deploy.params import deploy_params
    from twin.training.params import ParamsError
    from twin.training.tasks import split_params

    run = {n: dag_params(dag_id).get_param(n).value for n in dag_params(dag_id)} | {name: value}
    try:
        if dag_id == "twin_training":
            from twin.training.tasks import dag_params_to_raw

            split_params(dag_params_to_raw(run), SETTINGS)
        elif dag_id == "twin_datasets":
            author = SETTINGS.author if run["author"] is None else run["author"]
            dataset_options(run | {"author": author})
        else:
            deploy_params(run)
    except (ParamsError, ValueError):
        return False
    return True


EDGES = [
    # (dag, param, value, accepted)
    ("twin_training", "lora_r", 1, True),
    ("twin_training", "lora_r", 0, False),
    ("twin_training", "lora_dropout", 0.0, True),
    ("twin_training", "lora_dropout", 0.9, True),
    ("twin_training", "lora_dropout", 0.91, False),
    ("twin_training", "lora_dropout", -0.01, False),
    ("twin_training", "target_modules", ["q_proj"], True),
    ("twin_training", "target_modules", [], False),
    ("twin_training", "learning_rate", 1e-9, True),
    ("twin_training", "learning_rate", 0, False),
    ("twin_training", "epochs", 0.5, True),
    ("twin_training", "epochs", 0, False),
    ("twin_training", "max_steps", -1, True),
    ("twin_training", "max_steps", 1, True),
    ("twin_training", "max_steps", 0, False),
    ("twin_training", "max_steps", -2, False),
    ("twin_training", "dpo_max_steps", 0, False),
    ("twin_training", "max_length", 16, True),
    ("twin_training", "max_length", 15, False),
    ("twin_training", "zero_stage", 3, True),
    ("twin_training", "zero_stage", 0, True),
    ("twin_training", "zero_stage", 1, False),
    ("twin_training", "ranks", 1, True),
    ("twin_training", "ranks", 0, False),
    ("twin_training", "ranks", None, True),
    ("twin_training", "beta", 0, False),
    ("twin_training", "eval_pairs", 0, False),
    ("twin_training", "batch_size", 1.5, False),
    ("twin_training", "base_model", None, True),
    ("twin_training", "base_model", "", False),
    ("twin_training", "author", "Ada Example", True),
    ("twin_training", "author", None, True),
    ("twin_training", "author", "", False),
    ("twin_training", "dataset_version", "", False),
    # strings the form refuses for numbers, flags and lists: the task refuses them too
    ("twin_training", "lora_r", "5", False),
    ("twin_training", "learning_rate", "0.001", False),
    ("twin_training", "dpo", "false", False),
    ("twin_training", "force", 1, False),
    ("twin_training", "zero_stage", "2", False),
    ("twin_training", "target_modules", "q_proj", False),
    ("twin_datasets", "author", None, True),
    ("twin_datasets", "author", "", False),
    ("twin_datasets", "author", " ", False),
    ("twin_datasets", "max_instructions", "5", False),
    ("twin_datasets", "preference", "false", False),
    ("twin_datasets", "test_share", "0.2", False),
    ("twin_datasets", "generator", "endpoint", True),
    ("twin_datasets", "generator", "gpt", False),
    ("twin_datasets", "max_instructions", 0, True),
    ("twin_datasets", "max_instructions", -1, False),
    ("twin_datasets", "max_preferences", -1, False),
    ("twin_datasets", "test_share", 0.5, True),
    ("twin_datasets", "test_share", 0.0, True),
    ("twin_datasets", "test_share", 0.51, False),
    ("twin_deploy", "version", None, True),
    ("twin_deploy", "version", 1, True),
    ("twin_deploy", "version", 0, False),
    ("twin_deploy", "min_samples", 2, True),
    ("twin_deploy", "min_samples", 5000, True),
    ("twin_deploy", "min_samples", 1, False),
    ("twin_deploy", "min_samples", 5001, False),
    ("twin_deploy", "drift_method", "classifier", True),
    ("twin_deploy", "drift_method", "ks", False),
    ("twin_deploy", "mmd_alpha", 0.5, True),
    ("twin_deploy", "mmd_alpha", 0, False),
    ("twin_deploy", "mmd_alpha", 1, False),
    ("twin_deploy", "max_classifier_auc", 0.5, True),
    ("twin_deploy", "max_classifier_auc", 0.49, False),
    ("twin_deploy", "max_classifier_auc", 1.01, False),
    ("twin_deploy", "max_style_drop", 2, True),
    ("twin_deploy", "max_style_drop", 2.01, False),
    ("twin_deploy", "max_latency_p95_ratio", 0.01, True),
    ("twin_deploy", "max_latency_p95_ratio", 0, False),
    ("twin_deploy", "max_error_rate", 1, True),
    ("twin_deploy", "max_guardrail_rate", -0.01, False),
    ("twin_deploy", "shadow_share", 1, True),
    ("twin_deploy", "shadow_share", 1.01, False),
    ("twin_deploy", "min_samples", "5", False),
    ("twin_deploy", "require_approval", "false", False),
    ("twin_deploy", "max_style_drop", "0.1", False),
]


@pytest.mark.parametrize(("dag_id", "name", "value", "accepted"), EDGES)
def test_form_and_task_agree_at_the_edges(dag_id, name, value, accepted) -> None:
    form, task = form_accepts(dag_id, name, value), task_accepts(dag_id, name, value)
    assert (form, task) == (accepted, accepted), (
        f"{dag_id}.{name}={value!r}: form {form}, task {task}"
    )


@pytest.mark.parametrize("dag_id", ["twin_training", "twin_datasets", "twin_deploy"])
def test_a_run_with_the_forms_defaults_is_accepted_by_its_task(dag_id) -> None:
    params = dag_params(dag_id)
    assert all(form_accepts(dag_id, n, params.get_param(n).value) for n in params)
    assert task_accepts(dag_id, next(iter(params)), params.get_param(next(iter(params))).value)


ALL_DAGS = sorted(p.stem for p in DAGS_FOLDER.glob("twin_*.py"))


@pytest.mark.parametrize("dag_id", ALL_DAGS)
def test_every_form_can_be_submitted_with_its_defaults(dag_id) -> None:
    """Airflow's form marks a Param required unless its type allows null, and refuses to
    trigger while a required field is empty: a Param whose default is empty must be nullable,
    and every default must pass its own schema."""
    params = dag_params(dag_id)
    for name in params:
        param = params.get_param(name)
        kind = param.schema.get("type")
        if param.value in (None, ""):
            assert isinstance(kind, list) and "null" in kind, f"{dag_id}.{name}: {param.schema}"
        assert form_accepts(dag_id, name, param.value), f"{dag_id}.{name}={param.value!r}"


def test_the_crawl_forms_author_is_left_to_the_platforms_setting() -> None:
    """No author in the form: the run crawls for the configured author (TWIN_AUTHOR)."""
    from twin.crawl.params import plan_crawl

    assert dag_params("twin_crawl").get_param("author").value is None
    assert form_accepts("twin_crawl", "author", None)
    assert not form_accepts("twin_crawl", "author", "")
    with pytest.raises(ValueError, match="author"):
        plan_crawl({"author": " "})


def test_smollm2_needs_a_cap_the_form_cannot_express() -> None:
    """The one rule across two Params: the form takes each value, the task refuses the pair."""
    from twin.datasets.tasks import dataset_options

    assert form_accepts("twin_datasets", "generator", "smollm2")
    assert form_accepts("twin_datasets", "max_instructions", 0)
    with pytest.raises(ValueError, match="max_instructions must be between 1 and 200"):
        dataset_options({"author": "Ada", "generator": "smollm2", "max_instructions": 0})
    assert dataset_options({"author": "Ada", "generator": "smollm2", "max_instructions": 3})


def test_training_forms_defaults_are_a_real_retrain_and_the_demo_passes_its_steps() -> None:
    """A triggered or scheduled run trains the epochs over the whole dataset on every device;
    only the demo (and the tests) ask for small step counts, explicitly."""
    import json
    import re

    from twin.training.params import available_ranks
    from twin.training.tasks import dag_params_to_raw, split_params

    params = dag_params("twin_training")
    form = {n: params.get_param(n).value for n in ("max_steps", "dpo_max_steps", "ranks")}
    assert form == {"max_steps": -1, "dpo_max_steps": -1, "ranks": None}
    assert params.get_param("epochs").value >= 1
    run = {n: params.get_param(n).value for n in params}
    _, trained = split_params(dag_params_to_raw(run), SETTINGS)
    assert (trained.max_steps, trained.dpo_max_steps) == (-1, -1)
    assert trained.ranks == available_ranks() >= 1
    assert params.get_param("base_model").value is None  # the task fills in the configured one
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    confs = re.findall(r"DAG=twin_training CONF='([^']*)'", makefile)
    assert re.search(r"DAG=twin_training\s*$", makefile, re.M) is None  # no run on the defaults
    assert confs and all("max_steps" in json.loads(conf) for conf in confs)


def test_deploy_thresholds_default_to_the_settings_class_defaults() -> None:
    from twin.deploy.params import THRESHOLDS

    params = dag_params("twin_deploy")
    for name in (*THRESHOLDS, "require_approval"):
        assert params.get_param(name).value == Settings.model_fields[f"deploy_{name}"].default
    # Mirroring during a deployment is on by default; outside one, twin_rag mirrors nothing.
    assert params.get_param("shadow_share").value == 0.1
    assert Settings.model_fields["serving_shadow_share"].default == 0.0
    assert params.get_param("version").value is None


def test_deploy_task_keeps_unset_params_for_the_loaded_settings() -> None:
    """A Param left empty is not a value: the task's settings decide it, not the class default."""
    from twin.deploy.params import deploy_params

    assert deploy_params({"version": None, "min_samples": 12, "drift_method": ""}) == {
        "min_samples": 12
    }
    with pytest.raises(ValueError, match=r"min_sample.*Extra inputs"):
        deploy_params({"min_sample": 12})
    with pytest.raises(ValueError, match=r"Param min_samples=9000.*Param mmd_alpha=2"):
        deploy_params({"min_samples": 9000, "mmd_alpha": 2})


def test_pydantic_schemas_become_plain_form_fields() -> None:
    """`X | None`, enums behind `$ref` and lists turn into the `type`/`enum`/`items` the form
    renders; a field the form cannot show as one input is refused at parse time, by name."""
    from enum import StrEnum
    from typing import Literal

    from airflow.sdk import Param
    from pydantic import BaseModel, Field

    from twin.form import FormSchemaError, param_schemas

    class Colour(StrEnum):
        RED = "red"
        BLUE = "blue"

    class Knobs(BaseModel):
        count: int | None = Field(None, ge=1, title="Count", description="How many.")
        colour: Colour = Field(Colour.RED, title="Colour", description="Which one.")
        mode: Literal["a", "b"] | None = Field(None, title="Mode", description="Optional mode.")
        sizes: list[int] = Field([1], min_length=1, title="Sizes", description="Sizes.")
        either: int | str = Field(1, title="Either", description="Two types in one box.")
        untitled: int = 3

    schemas = param_schemas(Knobs, ("count", "colour", "mode", "sizes"))
    assert schemas["count"] == {
        "default": None,
        "type": ["integer", "null"],
        "minimum": 1,
        "title": "Count",
        "description": "How many.",
    }
    assert schemas["colour"]["enum"] == ["red", "blue"]
    assert schemas["colour"]["title"] == "Colour" and schemas["colour"]["type"] == "string"
    assert schemas["mode"]["enum"] == ["a", "b", None]
    assert schemas["sizes"]["items"] == {"type": "integer"} and schemas["sizes"]["minItems"] == 1
    for name, schema in schemas.items():
        param = Param(schema.pop("default"), **schema)
        assert param.resolve() == param.value, name
        assert param.schema.get("title") and param.description
    mode = param_schemas(Knobs, ("mode",))["mode"]
    assert Param(mode.pop("default"), **mode).resolve("c", suppress_exception=True) is None
    with pytest.raises(FormSchemaError, match=r"Knobs\.either"):
        param_schemas(Knobs, ("either",))
    with pytest.raises(FormSchemaError, match=r"Knobs\.untitled"):
        param_schemas(Knobs, ("untitled",))
