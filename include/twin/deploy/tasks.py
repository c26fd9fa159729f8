"""The twin_deploy and twin_monitor tasks: plain functions the DAGs wire (and tests call).

Each deploy task opens its own clients, runs one step of `twin.deploy.deployment.Deployment`
and returns the deployment's state; a step that finds the deployment already past it, or decided,
does nothing, so re-running the DAG for a decided version changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twin.settings import Settings, load_settings

log = logging.getLogger(__name__)


def _params(params: dict[str, Any] | None) -> dict[str, Any]:
    """The Params this run set, checked as the trigger form checks them (`twin.deploy.params`);
    the others are left out, so the loaded settings decide them."""
    from twin.deploy.params import deploy_params

    return deploy_params(params)


def resolve_version(params: dict[str, Any] | None = None, settings: Settings | None = None) -> int:
    """The version to deploy: the `version` Param, else the version holding `challenger`."""
    from twin.deploy.registry import alias_version
    from twin.domain.models import CHALLENGER
    from twin.store.tracking import tracking_client

    version = _params(params).get("version")
    if version is not None:
        return int(version)
    settings = settings or load_settings()
    found = alias_version(tracking_client(settings), settings.registered_model, CHALLENGER)
    if found is None:
        raise ValueError(
            f"no version to deploy: set the Param 'version' or the alias '{CHALLENGER}' on "
            f"{settings.registered_model}"
        )
    return int(found)


@contextmanager
def open_deployment(
    version: int,
    params: dict[str, Any] | None = None,
    settings: Settings | None = None,
    run_id: str | None = None,
) -> Iterator[Any]:
    """A `Deployment` for `version` with this run's thresholds; closes its connection."""
    from twin.deploy.checks import Thresholds
    from twin.deploy.deployment import Deployment
    from twin.deploy.params import THRESHOLDS
    from twin.deploy.serving_control import TritonServing
    from twin.store.tracking import tracking_client
    from twin.store.warehouse import warehouse_connection

    settings = settings or load_settings()
    p = _params(params)
    thresholds = Thresholds.from_settings(settings, **{k: p.get(k) for k in THRESHOLDS})
    conn = warehouse_connection(settings, autocommit=True)
    try:
        yield Deployment(
            tracking_client(settings),
            conn,
            TritonServing(settings),
            settings.registered_model,
            int(version),
            thresholds,
            run_id=run_id,
            backend=settings.serving_llm_backend,
        )
    finally:
        conn.close()


def _require_approval(params: dict[str, Any] | None, settings: Settings) -> bool:
    value = _params(params).get("require_approval")
    return settings.deploy_require_approval if value is None else bool(value)


def preflight_task(version: int, params: dict[str, Any] | None = None, run_id: str | None = None):
    from twin.deploy.links import mlflow_urls, push_links

    settings = load_settings()
    with open_deployment(version, params, settings, run_id) as d:
        d.start()
        state = d.preflight(_require_approval(params, settings)).state
        try:
            push_links(
                mlflow_urls(
                    d.client, settings.require("mlflow_tracking_uri"), d.registered_model, version
                )
            )
        except Exception as err:  # links are a convenience; a missing version is in the record
            log.info("no MLflow links for version %s: %s", version, err)
        return state


def load_task(version: int, params: dict[str, Any] | None = None) -> str:
    with open_deployment(version, params) as d:
        return d.load().state


def shadow_task(version: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start mirroring, then replay questions until the minimum sample is stored. A first
    deployment (no champion) is instead asked its author's evaluation questions through
    twin_rag (`twin.deploy.first`)."""
    from twin.deploy.lineage import version_author
    from twin.deploy.shadow import load_pairs, replay
    from twin.deploy.state import FINAL

    settings = load_settings()
    p = _params(params)
    share = settings.serving_shadow_share if p.get("shadow_share") is None else p["shadow_share"]
    with open_deployment(version, params, settings) as d:
        row = d.record()
        if row.state in FINAL:
            return {"state": row.state}
        row = d.begin_shadow(float(share))
        if row.state != "shadowing":
            return {"state": row.state, "samples": 0}
        who = version_author(settings, d.client, d.registered_model, d.version)
        if row.previous_champion is None:
            return {"state": row.state, **_ask_first(settings, d, row.deployment_id, who)}
        champion = int(row.previous_champion)
        added = replay(
            settings,
            d.conn,
            champion,
            d.version,
            d.thresholds.min_samples,
            deadline_s=settings.deploy_shadow_timeout_s,
            author=who.author,
        )
        return {
            "state": row.state,
            "replayed": added,
            "samples": len(load_pairs(d.conn, champion, d.version)),
        }


def _ask_first(settings: Settings, d: Any, deployment_id: str, who: Any) -> dict[str, Any]:
    from twin.deploy.first import NoQuestions, ask_questions, questions_for

    try:
        questions = questions_for(settings, who, d.thresholds.first_questions)
    except NoQuestions as err:  # the checks fail with this reason
        log.warning("first deployment %s asks nothing: %s", deployment_id, err)
        return {"asked": 0, "problem": str(err)}
    asked = ask_questions(
        settings,
        d.conn,
        deployment_id,
        d.version,
        who.author,
        questions,
        deadline_s=settings.deploy_shadow_timeout_s,
    )
    return {"asked": asked, "questions": len(questions), "author": who.author}


def lazy_embedder(settings: Settings):
    """The embedding function, loaded on first use (a failure to load is the checks' figure)."""
    loaded: list[Any] = []

    def embed(texts):
        if not loaded:
            from twin.store.embeddings import Embedder

            loaded.append(Embedder.from_settings(settings))
        return loaded[0].encode(list(texts))

    return embed


def check_task(version: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Judge the version: against the champion on the shadow pairs, with the style anchored on
    the version's own author (from its lineage); or, for a first deployment, on its own answers
    to its author's evaluation questions. The decision's report is attached to the version in
    MLflow (`twin.deploy.report`)."""
    from twin.deploy.first import first_answers
    from twin.deploy.lineage import style_anchor, version_author
    from twin.deploy.report import report_publisher
    from twin.deploy.shadow import load_pairs
    from twin.deploy.state import FINAL

    settings = load_settings()
    with open_deployment(version, params, settings) as d:
        row = d.record()
        if row.state in FINAL:
            return {"state": row.state, "figures": row.figures}
        who = version_author(settings, d.client, d.registered_model, d.version)
        embed = lazy_embedder(settings)
        if row.previous_champion is None:
            answers, problem = first_answers(
                settings, d.conn, row.deployment_id, who, d.thresholds.first_questions
            )
            publish = report_publisher(settings, d, answers=answers, embed=embed)
            row = d.check([], embed, answers=answers, answers_problem=problem, publish=publish)
        else:
            pairs = load_pairs(d.conn, int(row.previous_champion), d.version)
            anchor = style_anchor(d.conn, who)
            publish = report_publisher(settings, d, pairs=pairs, embed=embed)
            row = d.check(
                pairs, embed, anchor.vectors, anchor_problem=anchor.problem, publish=publish
            )
        return {"state": row.state, "verdict": row.figures.get("verdict"), "reason": row.reason}


def decide_task(version: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    with open_deployment(version, params) as d:
        row = d.decide()
        log.info("deployment %s: %s (%s)", row.deployment_id, row.state, row.reason)
        return {
            "state": row.state,
            "decision": row.decision,
            "reason": row.reason,
            "figures": row.figures,
        }


def reconcile_task(
    version: int | None = None, params: dict[str, Any] | None = None, failed: bool = False
) -> dict[str, Any]:
    """After the run (whatever its outcome): a deployment left undecided is marked failed, and
    MLflow, Triton and the records are brought back in agreement. Fails when they still disagree."""
    from twin.deploy.deployment import reconcile
    from twin.deploy.state import FINAL

    settings = load_settings()
    stopped: list[str] = []
    with open_deployment(version or 0, params, settings) as d:
        if version:
            row = d.record() if _exists(d) else None
            if row is not None and row.state not in FINAL:
                stopped.append(str(version))
        result = reconcile(d.client, d.conn, d.serving, settings.registered_model, stopped=stopped)
    summary = {
        "champion": result.champion_alias,
        "challenger": result.challenger_alias,
        "loaded": result.loaded,
        "default": result.default,
        "stopped": stopped,
        "problems": result.problems,
    }
    if not result.ok:
        raise RuntimeError(f"MLflow, Triton and serving.deployments disagree: {result.problems}")
    return summary


def _exists(d: Any) -> bool:
    from twin.store.deployments import ensure_schema, get_deployment

    ensure_schema(d.conn)
    return get_deployment(d.conn, d.registered_model, d.version) is not None


def monitor_task(data_interval_end: Any = None) -> dict[str, Any]:
    from twin.deploy.monitor_run import run_monitor

    return run_monitor(load_settings(), data_interval_end)
