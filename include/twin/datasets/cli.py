"""`twin datasets list|show VERSION|questions`: the dataset versions in the warehouse, one in
detail, and the author's evaluation question sets."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

datasets_app = typer.Typer(help="Training dataset versions (ml schema).", no_args_is_help=True)
console = Console()


def _settings():
    from twin.settings import load_settings

    return load_settings()


@datasets_app.command("list")
def list_versions(author: str = typer.Option(None, help="only this author's versions")) -> None:
    """Every dataset version, newest first, with its sample counts."""
    from twin.store.datasets import list_dataset_versions

    versions = list_dataset_versions(_settings(), author)
    if not versions:
        console.print("no dataset version yet: run the twin_datasets DAG")
        return
    table = Table(
        "version", "author", "created", "generator", "instr train/test", "pref train/test"
    )
    for v in versions:
        c = v.counts
        table.add_row(
            v.version[:16],
            escape(v.author),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            escape(str(v.generator_config.get("generator", ""))),
            f"{c.get('instruction/train', 0)}/{c.get('instruction/test', 0)}",
            f"{c.get('preference/train', 0)}/{c.get('preference/test', 0)}",
        )
    console.print(table)


@datasets_app.command("show")
def show_version(
    version: str = typer.Argument(..., help="a version id, or its first 8+ characters"),
    examples: int = typer.Option(3, min=0, max=50, help="example samples to print"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Counts per split, platform and kind, drop reasons, lineage and a few example samples."""
    from twin.store.datasets import load_dataset_snapshot, version_summary

    settings = _settings()
    try:
        snapshot = load_dataset_snapshot(settings, version)
    except LookupError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    v = snapshot.version
    summary = version_summary(settings, v.version)
    if as_json:
        body = {**v.model_dump(mode="json"), **summary}
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    console.print(f"[bold]{v.version}[/bold]  author {escape(v.author)}  created {v.created_at}")
    console.print(f"generator: {escape(json.dumps(v.generator_config, sort_keys=True))}")
    console.print(f"export: {escape(str(v.export_uri))}  mlflow run: {summary['mlflow_run_id']}")
    console.print(f"source documents: {len(v.source_document_ids)}")
    table = Table("kind", "split", "platform", "samples")
    for row in summary["by_kind_split_platform"]:
        table.add_row(row["kind"], row["split"], row["platform"], str(row["samples"]))
    console.print(table)
    drops = Table("drop reason", "candidates dropped")
    for reason, n in sorted(v.drop_reasons.items(), key=lambda kv: -kv[1]):
        drops.add_row(reason, str(n))
    console.print(drops)
    for sample in snapshot.instructions[:examples]:
        console.print(f"[cyan]instruction[/cyan] ({sample.split}, {escape(sample.document_id)})")
        console.print(f"  prompt: {escape(sample.instruction)}")
        console.print(f"  answer: {escape(sample.answer[:300])}")
    for sample in snapshot.preferences[:examples]:
        console.print(
            f"[magenta]preference[/magenta] ({sample.split}, {escape(sample.document_id)})"
        )
        console.print(f"  prompt:   {escape(sample.prompt)}")
        console.print(f"  chosen:   {escape(sample.chosen[:200])}")
        console.print(f"  rejected: {escape(sample.rejected[:200])}")


@datasets_app.command("questions")
def show_questions(
    version: str = typer.Argument(
        None, help="a question set id (8+ characters); default: the author's newest"
    ),
    author: str = typer.Option(None, help="whose question sets (default: settings)"),
    examples: int = typer.Option(5, min=0, max=500, help="questions to print"),
    as_json: bool = typer.Option(False, "--json", help="print the set as JSON"),
) -> None:
    """The author's evaluation question sets (built by twin_datasets from their marts) and one
    set's questions with the documents that answer them."""
    from twin.store.questions import latest_question_set, list_question_sets, load_question_set

    settings = _settings()
    who = author or settings.author
    try:
        snapshot = (
            load_question_set(settings, version) if version else latest_question_set(settings, who)
        )
    except LookupError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    if snapshot is None:
        console.print(
            f"no question set of author {escape(who)} yet: run the twin_datasets DAG "
            "(it builds one from the author's marts)"
        )
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(snapshot.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    table = Table("question set", "author", "created", "generator", "questions", "documents")
    for v in list_question_sets(settings, snapshot.version.author):
        c = v.counts
        table.add_row(
            v.version[:16],
            escape(v.author),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            escape(str(v.generator_config.get("generator", ""))),
            f"{c.get('questions', 0)} ({c.get('generated', 0)} generated, "
            f"{c.get('hand_written', 0)} hand-written)",
            f"{c.get('documents_covered', 0)} of {c.get('documents', 0)}",
        )
    console.print(table)
    v = snapshot.version
    console.print(f"[bold]{v.version}[/bold]  author {escape(v.author)}  created {v.created_at}")
    for q in snapshot.questions[:examples]:
        label = ", ".join(q.document_ids)
        console.print(f"[cyan]{escape(q.source)}[/cyan] → {escape(label)}")
        console.print(f"  {escape(q.question)}")
