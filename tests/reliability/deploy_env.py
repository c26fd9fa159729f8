"""What the deployment reliability tests share: the tiny model taught to answer in sentences and
registered under labels in a real MLflow, deployments driven step by step as the DAG's tasks
drive them, a client loop on twin_rag, and the agreement of MLflow, Triton and the records."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.deploy_support import passed
from twin.deploy.checks import CheckReport, CheckResult, Thresholds
from twin.deploy.deployment import Deployment, agreement, run_all
from twin.deploy.registry import alias_version
from twin.deploy.serving_control import TritonServing
from twin.domain.models import CHALLENGER, CHAMPION, VersionTag
from twin.settings import Settings

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
    stack: Any
    client: Any
    conn: Any
    versions: dict[str, int] = field(default_factory=dict)


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


def register(settings: Settings, folder: Path, labels: tuple[str, ...]) -> dict[str, int]:
    """The tiny model, taught to answer in sentences and logged once; one version per label."""
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from twin.domain.models import tokenizer_fingerprint
    from twin.store.tracking import tracking_client

    uri = settings.require("mlflow_tracking_uri")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(f"{settings.registered_model}-experiment")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    teach_sentences(model, tokenizer)
    with mlflow.start_run(run_name="good"):
        info = mlflow.transformers.log_model(
            transformers_model={"model": model, "tokenizer": tokenizer},
            name="model",
            task="text-generation",
            pip_requirements=["transformers", "torch", "safetensors"],
        )
    client = tracking_client(settings)
    client.create_registered_model(settings.registered_model)
    tags = passed(**{VersionTag.TOKENIZER_FINGERPRINT: tokenizer_fingerprint(tokenizer)})
    return {
        label: int(
            client.create_model_version(
                settings.registered_model,
                info.model_uri,
                run_id=info.run_id,
                model_id=info.model_id,
                tags=tags,
            ).version
        )
        for label in labels
    }


def deployment(
    env: Env, label: str, *, conn=None, client=None, drain_s: float = 1.0, **thresholds
) -> Deployment:
    return Deployment(
        client or env.client,
        conn or env.conn,
        TritonServing(env.settings),
        env.settings.registered_model,
        env.versions[label],
        Thresholds(min_samples=MIN_SAMPLES, permutations=200, **thresholds),
        drain_s=drain_s,
    )


def promote_given(env: Env, label: str) -> None:
    """A first champion whose verdict is given (how a first deployment is judged is tested
    with the deployment's checks), then twin_rag routing to it."""
    from twin.serving.repository import load_rag

    d = deployment(env, label)
    d.start()
    d.preflight(require_approval=False)
    d.load()
    row = d.begin_shadow(1.0)
    d._store_report(row, CheckReport([CheckResult("given", True, {}, "the first champion")]))
    assert d.decide().state == "promoted"
    load_rag(env.settings)


def seed_questions(env: Env) -> None:
    """Live questions, as clients ask them: the inference log the shadow replay draws on."""
    from twin.serving.client import ask

    for question in QUESTIONS:
        ask(env.settings, question)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = env.conn.execute(
            "select count(distinct query) from serving.inference_log where status = 'ok'"
        ).fetchone()[0]
        if found >= len(QUESTIONS):
            return
        time.sleep(0.5)
    raise AssertionError("twin_rag's inference log did not record the questions")


def style_anchor(settings: Settings, conn: Any):
    """The author's own passages, embedded (the style check's anchor)."""
    import numpy as np

    rows = conn.execute(
        "select embedding from vectors.chunks where author = %s order by chunk_id limit 500",
        (settings.author,),
    ).fetchall()
    return np.asarray(
        [r[0].to_numpy() if hasattr(r[0], "to_numpy") else r[0] for r in rows], dtype=np.float32
    )


def collect(env: Env):
    def pairs(d: Deployment):
        from twin.deploy.shadow import load_pairs, replay

        champion = int(d.record().previous_champion)
        replay(env.settings, d.conn, champion, d.version, d.thresholds.min_samples)
        return load_pairs(d.conn, champion, d.version)

    return pairs


def judge(env: Env, d: Deployment):
    """The rest of a challenger's deployment, as the DAG runs it: shadow pairs, checks, decision."""
    from twin.features.embed import Embedder

    row = run_all(
        d,
        require_approval=False,
        shadow_share=1.0,
        collect_pairs=collect(env),
        embed=Embedder.get().encode,
        author_vectors=style_anchor(env.settings, d.conn),
    )
    print(f"v{row.version}: {row.state} ({row.reason}) figures={row.figures}")
    return row


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
                time.sleep(0.2)
            i += 1

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)


def aliases(env: Env) -> tuple[str | None, str | None]:
    name = env.settings.registered_model
    return alias_version(env.client, name, CHAMPION), alias_version(env.client, name, CHALLENGER)


def assert_agree(env: Env) -> None:
    result = agreement(
        env.client, env.conn, TritonServing(env.settings), env.settings.registered_model
    )
    assert result.ok, result
