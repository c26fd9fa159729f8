"""`twin models list|show|approve|reject` (review registered versions) and `twin models train`."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

models_app = typer.Typer(help="Review model versions in the MLflow registry.", no_args_is_help=True)
err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)


def _settings():
    from twin.settings import load_settings

    return load_settings()


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/] {escape(str(exc))}")
    raise typer.Exit(2) from exc


@models_app.command("list")
def list_cmd() -> None:
    """Every version: review state, aliases, dataset, base model, headline metrics."""
    from twin.training.review import list_versions

    settings = _settings()
    table = Table(title=f"{settings.registered_model} versions")
    for col in (
        "version",
        "review",
        "aliases",
        "created",
        "dataset",
        "base model",
        "DPO ppl",
        "style",
    ):
        table.add_column(col)
    for v in list_versions(settings):
        t = v.tags
        cells = (
            v.version,
            v.review,
            ",".join(v.aliases) or "-",
            v.created,
            t.get("dataset_version", "-")[:12],
            t.get("base_model", "-"),
            t.get("eval_dpo_perplexity", t.get("eval_sft_perplexity", "-")),
            t.get("eval_dpo_style_similarity", t.get("eval_sft_style_similarity", "-")),
        )
        table.add_row(*(escape(str(cell)) for cell in cells))  # tags are anyone's text
    out.print(table)


@models_app.command("show")
def show_cmd(
    version: str, card: bool = typer.Option(False, "--card", help="Print the model card.")
) -> None:
    """One version's tags and aliases (and its model card with --card)."""
    from twin.domain.generation import GenerationSettings
    from twin.training.report import evaluation_from_tags
    from twin.training.review import ReviewError, show_version

    try:
        v = show_version(_settings(), version)
    except ReviewError as exc:
        _fail(exc)
    generation = GenerationSettings.from_tags(v.tags)
    out.print_json(
        json.dumps(
            {
                "version": v.version,
                "review": v.review,
                "aliases": v.aliases,
                "created": v.created,
                "run_id": v.run_id,
                # mean ± sd over the evaluation's seeds, per model (base and candidate)
                "evaluation": evaluation_from_tags(v.tags),
                "generation": generation.model_dump(mode="json") if generation else None,
                "tags": v.tags,
            }
        )
    )
    if card:
        out.print(v.description, markup=False, highlight=False)


@models_app.command("approve")
def approve_cmd(
    version: str,
    by: str = typer.Option(..., "--by", help="Who approves."),
    note: str = typer.Option("", "--note", help="Why (optional)."),
) -> None:
    """Approve a version for deployment."""
    from twin.training.review import ReviewError, approve

    try:
        v = approve(_settings(), version, by, note)
    except ReviewError as exc:
        _fail(exc)
    out.print(
        f"version {v.version}: {v.review} by {v.tags.get('reviewed_by')} "
        f"at {v.tags.get('reviewed_at')}",
        markup=False,
    )


@models_app.command("reject")
def reject_cmd(
    version: str,
    reason: str = typer.Option(..., "--reason", help="Why the version must not deploy."),
    by: str = typer.Option("reviewer", "--by", help="Who rejects."),
) -> None:
    """Reject a version: it loses its aliases and never deploys."""
    from twin.training.review import ReviewError, reject

    try:
        v = reject(_settings(), version, reason, by)
    except ReviewError as exc:
        _fail(exc)
    out.print(
        f"version {v.version}: {v.review} by {v.tags.get('reviewed_by')} "
        f"({v.tags.get('review_note')}); "
        f"aliases left: {','.join(v.aliases) or 'none'}",
        markup=False,
    )


@models_app.command("train")
def train_cmd(
    params: str = typer.Option(
        "{}", "--params", help="JSON of training parameters, e.g. '{\"max_steps\": 20}'"
    ),
    dataset_version: str = typer.Option(
        "latest", "--dataset-version", help="A version, 'latest' or 'sample'."
    ),
) -> None:
    """Train, evaluate and register a candidate (what the twin_training DAG runs)."""
    from twin.training.params import ParamsError
    from twin.training.tasks import train_and_register

    try:
        outcome = train_and_register(json.loads(params) | {"dataset_version": dataset_version})
    except (ParamsError, json.JSONDecodeError) as exc:
        _fail(exc)
    out.print_json(json.dumps({k: v for k, v in outcome.items() if k != "evaluation"}))


@models_app.command("join")
def join_cmd(
    run_folder: str = typer.Argument(..., help="The run's folder, shared with node 0."),
    node_rank: int = typer.Option(..., "--node-rank", min=1, help="This machine's node rank."),
    wait_s: float = typer.Option(3600.0, "--wait-s", min=1, help="How long to wait for node 0."),
) -> None:
    """Take part in a training run that spans machines (Params `nodes` > 1, `rendezvous`
    node 0's host:port): run this node's ranks of each phase node 0 prepares."""
    from pathlib import Path

    from twin.training.launch import join_run

    try:
        phases = join_run(_settings(), Path(run_folder), node_rank, wait_s=wait_s)
    except (OSError, RuntimeError, ValueError) as exc:
        _fail(exc)
    out.print(f"node {node_rank} trained in: {', '.join(phases) or 'no phase (all trained)'}")
