"""Deployments on a real Triton (its own server, so it can be killed), the real MLflow and the
sample author's index: a first deployment judged on its own answers to her evaluation questions,
promotion, rollback of three broken challengers while a client loop on twin_rag sees no error and
no challenger answer, a challenger whose author has no passages to anchor the style check (not
promoted), a rerun that changes nothing, and Triton killed mid-shadow. After each, MLflow's
aliases, Triton's loaded versions and serving.deployments must agree; every decision's report is
attached to its version in MLflow."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import scratch_home
from tests.integration.deploy_support import passed, record_dataset_version
from tests.integration.test_retrieval import chunk_store  # noqa: F401 - module fixture
from twin.deploy.checks import Thresholds
from twin.deploy.deployment import Deployment, agreement, reconcile, run_all
from twin.deploy.first import ask_questions, first_answers, questions_for, version_answers
from twin.deploy.lineage import style_anchor, version_author
from twin.deploy.report import report_publisher
from twin.deploy.serving_control import TritonServing
from twin.deploy.shadow import load_pairs, replay
from twin.domain.models import CHALLENGER, CHAMPION, VersionTag
from twin.settings import Settings

pytestmark = pytest.mark.integration
AUTHOR = "Ada Lindqvist"

MIN_SAMPLES = 12
QUESTIONS = [
    "What is the Tuesday test?",
    "What happened when the invoice loader ran twice at Midsummer?",
    "Why is reranking cheap insurance?",
    "How do you ship the boring version first?",
]


@dataclass
class Env:
    settings: Settings
    stack: object
    client: object
    conn: object
    versions: dict[str, int] = field(default_factory=dict)
    figures: dict[str, dict] = field(default_factory=dict)


def _log_model(settings: Settings, model, tokenizer, name: str):
    import mlflow

    with mlflow.start_run(run_name=name):
        return mlflow.transformers.log_model(
            transformers_model={"model": model, "tokenizer": tokenizer},
            name="model",
            task="text-generation",
            pip_requirements=["transformers", "torch", "safetensors"],
        )


def teach_sentences(model, tokenizer, steps: int = 60) -> None:
    """A few steps of training so the tiny model answers with sentences (a random one answers
    with nothing at all, which no check could tell from garbage)."""
    import torch

    from twin.store.base_models import TINY_CORPUS

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    sentences = [s.strip() + "." for s in TINY_CORPUS.split(".") if len(s.strip()) > 20][:5]
    texts = [
        tokenizer.apply_chat_template(
            [
                {"role": "system", "content": "You are the author."},
                {"role": "user", "content": f"Passages:\n\nQuestion: {q}"},
                {"role": "assistant", "content": sentences[i % len(sentences)]},
            ],
            tokenize=False,
        )
        for i, q in enumerate(QUESTIONS * 2)
    ]
    optimiser = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    for step in range(steps):
        batch = tokenizer(texts[step % len(texts)], return_tensors="pt")
        model(**batch, labels=batch["input_ids"]).loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    model.eval()
    torch.set_num_threads(threads)


def register_all(settings: Settings, folder: Path) -> dict[str, int]:
    """good (x3: first, promoted, killed), wrong tokenizer fingerprint, garbage, slower."""
    import mlflow
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from twin.domain.models import tokenizer_fingerprint
    from twin.store.tracking import tracking_client

    uri = settings.require("mlflow_tracking_uri")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(f"{settings.registered_model}-experiment")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    good = AutoModelForCausalLM.from_pretrained(folder)
    teach_sentences(good, tokenizer)
    garbage = AutoModelForCausalLM.from_pretrained(folder)
    garbage.load_state_dict(good.state_dict())
    with torch.no_grad():  # hidden states collapse: every step emits the same token
        garbage.model.norm.weight.zero_()
    # wide enough that its prefill of a RAG prompt costs a few hundred milliseconds more than the
    # champion's on every request, above the queueing noise a loaded 2-core host adds to pairs
    layout = good.config.to_dict() | {
        "hidden_size": 512,
        "intermediate_size": 1536,
        "num_hidden_layers": 8,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "head_dim": 64,
    }
    layout.pop("architectures", None)
    torch.manual_seed(0)
    slow = LlamaForCausalLM(LlamaConfig(**layout))
    logged = {
        "good": _log_model(settings, good, tokenizer, "good"),
        "garbage": _log_model(settings, garbage, tokenizer, "garbage"),
        "slow": _log_model(settings, slow, tokenizer, "slow"),
    }
    client = tracking_client(settings)
    client.create_registered_model(settings.registered_model)
    fingerprint = tokenizer_fingerprint(tokenizer)
    hers = record_dataset_version(settings, AUTHOR)
    nobodys = record_dataset_version(settings, "Nobody Indexed")  # no passage in vectors.chunks
    plan = [
        ("first", "good", fingerprint, hers),
        ("second", "good", fingerprint, hers),
        ("fails_to_load", "good", "0" * 16, hers),
        ("garbage", "garbage", fingerprint, hers),
        ("slow", "slow", fingerprint, hers),
        ("no_anchor", "good", fingerprint, nobodys),
        ("killed", "good", fingerprint, hers),
    ]
    versions = {}
    for label, model, fp, dataset in plan:
        info = logged[model]
        tags = {VersionTag.TOKENIZER_FINGERPRINT: fp, VersionTag.DATASET_VERSION: dataset}
        mv = client.create_model_version(
            settings.registered_model,
            info.model_uri,
            run_id=info.run_id,
            model_id=info.model_id,
            tags=passed(**tags),
        )
        versions[label] = int(mv.version)
    return versions


@pytest.fixture(scope="module")
def env(chunk_store, tmp_path_factory) -> Iterator[Env]:  # noqa: F811
    from twin.datasets.generators import build_generator
    from twin.datasets.questions import build_question_set
    from twin.stack import Stack
    from twin.store.base_models import resolve_base_model
    from twin.store.tracking import tracking_client
    from twin.store.warehouse import warehouse_connection

    home = scratch_home("twin-deploy-")
    stack = Stack(home, ("triton",))
    stack.up()
    try:
        endpoints = stack.endpoints()
        settings = chunk_store.settings.model_copy(
            update={
                "triton_http_url": endpoints["TRITON_HTTP_URL"],
                "triton_grpc_url": endpoints["TRITON_GRPC_URL"],
                "triton_metrics_url": endpoints["TRITON_METRICS_URL"],
                "triton_model_repository": Path(endpoints["TRITON_MODEL_REPOSITORY"]),
                "triton_repository_key": endpoints["TRITON_REPOSITORY_KEY"],
                "registered_model": f"twin-llm-deploy-{os.getpid()}-{int(time.time())}",
                "serving_default_max_tokens": 16,
                "serving_context_tokens": 300,
                "serving_rag_instances": 1,
            }
        )
        folder = resolve_base_model("tiny-llama", tmp_path_factory.mktemp("models")).path
        versions = register_all(settings, folder)
        # her evaluation questions, as twin_datasets builds them from her marts
        build_question_set(settings, AUTHOR, build_generator("offline", settings))
        with warehouse_connection(settings, autocommit=True) as conn:
            yield Env(settings, stack, tracking_client(settings), conn, versions)
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


# The slow challenger (a wider model) measured 5.65x the champion's p95 over 13 side-by-side
# replayed pairs, slower pair after pair (signed-rank p 0.0001), with the client loop running: it
# is judged against a 1.3x budget. A narrower one (6 layers, 256 wide) was once slower at p95
# (3.81x) but not pair after pair (p 0.75) on a loaded host, and was rolled back for another
# reason. The identical challenger keeps the default budget (2.0): on a busy host its mirrored
# pairs reached 2.0-3.7x at p95 in suite runs through a few requests stuck behind the client's
# next one; the paired test found it no slower (p 0.47 and 0.76 in two runs).
LATENCY_BUDGET = {"slow": {"max_latency_p95_ratio": 1.3}}


def deployment(env: Env, label: str) -> Deployment:
    return Deployment(
        env.client,
        env.conn,
        TritonServing(env.settings),
        env.settings.registered_model,
        env.versions[label],
        Thresholds(min_samples=MIN_SAMPLES, permutations=200, **LATENCY_BUDGET.get(label, {})),
        drain_s=1.0,
    )


def collect(env: Env):
    def pairs(d: Deployment):
        champion = int(d.record().previous_champion)
        replay(env.settings, d.conn, champion, d.version, d.thresholds.min_samples)
        return load_pairs(d.conn, champion, d.version)

    return pairs


def embed():
    from twin.features.embed import Embedder

    return Embedder.get().encode


def answers(env: Env):
    """A first deployment's own answers: her evaluation questions asked through twin_rag."""

    def collect(d: Deployment):
        who = version_author(env.settings, d.client, d.registered_model, d.version)
        deployment_id = d.record().deployment_id
        questions = questions_for(env.settings, who, d.thresholds.first_questions)
        ask_questions(env.settings, d.conn, deployment_id, d.version, who.author, questions)
        return first_answers(env.settings, d.conn, deployment_id, who, len(questions))

    return collect


def publish(env: Env):
    """Attach each decision's report to the version, with what it was judged on."""

    def attach(d: Deployment, report):
        record = d.record()
        if record.previous_champion is None:
            stored = version_answers(d.conn, record.deployment_id)
            return report_publisher(env.settings, d, answers=stored, embed=embed())(report)
        pairs = load_pairs(d.conn, int(record.previous_champion), d.version)
        return report_publisher(env.settings, d, pairs=pairs, embed=embed())(report)

    return attach


def deploy(env: Env, label: str):
    d = deployment(env, label)
    anchor = style_anchor(
        env.conn, version_author(env.settings, env.client, d.registered_model, d.version)
    )
    row = run_all(
        d,
        require_approval=False,
        shadow_share=1.0,
        collect_pairs=collect(env),
        embed=embed(),
        author_vectors=anchor.vectors,
        anchor_problem=anchor.problem,
        collect_answers=answers(env),
        publish=publish(env),
    )
    env.figures[label] = row.figures
    print(f"{label}: v{row.version} {row.state} figures={row.figures} reason={row.reason}")
    return row


def switched_at(env: Env) -> float:
    """When twin_rag's routing last changed (the default switches there), in wall-clock time."""
    return (env.settings.triton_model_repository / "twin_rag" / "routing.json").stat().st_mtime


class ClientLoop:
    """Questions to twin_rag in a loop: every answer's serving version, every error."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.answers: list[tuple[float, int]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from twin.serving.client import ask

        i = 0
        while not self._stop.is_set():
            try:
                result = ask(self.settings, QUESTIONS[i % len(QUESTIONS)])
                self.answers.append((time.time(), int(result["meta"]["model_version"])))
            except Exception as err:
                self.errors.append(f"{type(err).__name__}: {err}")
            i += 1

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)


def assert_agree(env: Env) -> None:
    result = agreement(
        env.client, env.conn, TritonServing(env.settings), env.settings.registered_model
    )
    assert result.ok, result


def aliases(env: Env) -> tuple[str | None, str | None]:
    from twin.deploy.registry import alias_version

    name = env.settings.registered_model
    return alias_version(env.client, name, CHAMPION), alias_version(env.client, name, CHALLENGER)


def test_first_deployment_is_judged_on_its_own_answers_and_reported(env: Env, monkeypatch) -> None:
    from typer.testing import CliRunner

    from twin.cli import app
    from twin.deploy.report import REPORT_TAG
    from twin.serving.repository import load_rag

    row = deploy(env, "first")
    load_rag(env.settings)

    assert row.state == "promoted" and row.previous_champion is None, row.reason
    figures = row.figures
    assert figures["first_deployment"] == 1 and figures["questions_asked"] == 12
    assert {"empty_rate", "repeat_rate", "wrong_source_rate", "p95_ms"} <= set(figures)
    assert {c["name"] for c in figures["checks"]} >= {"empty_answers", "loops", "wrong_source"}
    assert aliases(env) == (str(env.versions["first"]), None)
    assert_agree(env)
    # the report is an artifact of the version's run, and the version links to it
    name, version = env.settings.registered_model, str(env.versions["first"])
    mv = env.client.get_model_version(name, version)
    assert mv.tags[REPORT_TAG] == figures["report_uri"]
    logged = {a.path for a in env.client.list_artifacts(mv.run_id, f"deployments/v{version}")}
    assert {f"deployments/v{version}/{f}" for f in ("report.html", "lengths.png")} <= logged
    # `twin deployments` shows the figures of its own answers and the report
    monkeypatch.setenv("WAREHOUSE_DSN", env.settings.warehouse_dsn)
    shown = CliRunner().invoke(app, ["deployments", "--model", name])
    assert shown.exit_code == 0, shown.output
    assert "asked" in shown.output and "wrong src" in shown.output
    assert f"report of version {version}: {figures['report_uri']}" in shown.output


def test_identical_challenger_is_promoted_and_clients_never_see_it_before(env: Env) -> None:
    second = env.versions["second"]
    with ClientLoop(env.settings) as loop:
        time.sleep(1)
        row = deploy(env, "second")
        time.sleep(2)

    # answers finishing before the default switched; a request takes well under 0.5 s
    early = [v for t, v in loop.answers if v == second and t < switched_at(env) - 0.5]
    assert row.state == "promoted", row.reason
    assert row.figures["samples"] >= MIN_SAMPLES and row.figures["mmd_p_value"] > 0.05
    assert loop.errors == [] and len(loop.answers) > 3
    assert early == []  # no challenger answer reached a client before the promotion
    assert loop.answers[-1][1] == second
    assert aliases(env) == (str(second), None)
    assert_agree(env)


def test_rerunning_a_decided_deployment_changes_nothing(env: Env) -> None:
    from twin.store.deployments import get_deployment

    name = env.settings.registered_model
    before = get_deployment(env.conn, name, env.versions["second"])
    again = deploy(env, "second")

    assert again.updated_at == before.updated_at and again.history == before.history
    assert aliases(env) == (str(env.versions["second"]), None)
    assert_agree(env)


@pytest.mark.parametrize(
    ("label", "failing"),
    [("fails_to_load", "failed to load"), ("garbage", "guardrails"), ("slow", "latency")],
)
def test_broken_challenger_is_rolled_back_without_touching_clients(
    env: Env, label: str, failing: str
) -> None:
    version = env.versions[label]
    champion = env.versions["second"]
    with ClientLoop(env.settings) as loop:
        time.sleep(1)
        row = deploy(env, label)
        time.sleep(1)

    assert row.state == "rolled_back" and row.decision == "rollback"
    assert failing in row.reason
    assert loop.errors == [] and len(loop.answers) > 3
    assert {v for _, v in loop.answers} == {champion}  # 0 answers from the challenger
    tags = env.client.get_model_version(env.settings.registered_model, str(version)).tags
    assert tags[VersionTag.DEPLOYMENT] == "rolled_back"
    assert aliases(env) == (str(champion), None)
    assert version not in TritonServing(env.settings).loaded_versions()
    assert_agree(env)


def test_a_challenger_whose_style_cannot_be_anchored_is_not_promoted(env: Env) -> None:
    champion = env.versions["second"]
    row = deploy(env, "no_anchor")

    assert row.state == "rolled_back" and row.decision == "rollback"
    assert "style not computed" in row.reason
    assert "no passage of author 'Nobody Indexed'" in row.reason
    assert row.figures["style_similarity"] is None
    assert aliases(env) == (str(champion), None)
    assert_agree(env)


def test_triton_killed_mid_shadow_then_reconciled_and_resumed(env: Env) -> None:
    from twin.store.deployments import get_deployment

    d = deployment(env, "killed")
    d.start()
    d.preflight(require_approval=False)
    d.load()
    d.begin_shadow(1.0)
    champion = int(d.record().previous_champion)
    replay(env.settings, env.conn, champion, d.version, 4)  # part of the sample is stored
    assert len(load_pairs(env.conn, champion, d.version)) == 4

    pid = next(s.pid for s in env.stack.status() if s.name == "triton")
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(Exception):  # noqa: B017 - whatever the client raises for a dead server
        replay(env.settings, env.conn, champion, d.version, MIN_SAMPLES)
    d.fail("Triton unreachable during shadow")
    serving = TritonServing(env.settings)
    down = reconcile(env.client, env.conn, serving, env.settings.registered_model)
    record = get_deployment(env.conn, env.settings.registered_model, d.version)
    assert record.state == "failed"
    assert aliases(env) == (str(champion), None)  # MLflow repaired while Triton is down
    assert any("Triton unreachable" in p for p in down.problems)

    env.stack.up()  # the stack restarts the dead server; nothing is loaded yet
    healed = reconcile(env.client, env.conn, serving, env.settings.registered_model)
    assert healed.ok, healed.problems
    assert healed.loaded == [champion] and healed.default == champion

    resumed = deploy(env, "killed")
    assert resumed.state in ("promoted", "rolled_back")
    assert resumed.attempts == 2
    assert_agree(env)
