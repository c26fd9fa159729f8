"""The `twin` command: run the platform's stages and the embedded stack from a shell."""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from twin.datasets.cli import datasets_app
from twin.deploy.cli import app as deployments_app
from twin.serving.cli import app as serving_app
from twin.settings import default_home
from twin.training.cli import models_app

app = typer.Typer(
    help="TwinOps: turn an author's public writing into an LLM Twin.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(
    help="The embedded stack of real services under .twin/.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
# Wide output when piped, so URLs in tables are not wrapped.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 160)

HomeOption = typer.Option(None, "--home", help="Stack state folder (default: $TWIN_HOME or .twin)")


def _stack(
    home: Path | None,
    services: str | None,
    airflow: bool = False,
    sample: bool = False,
    executor: tuple[str, int, int] | None = None,
    s3: bool = False,
):
    from twin.stack import CORE_SERVICES, Executor, Stack, StackError

    names = CORE_SERVICES
    if services:
        names = tuple(s.strip() for s in services.split(",") if s.strip())
    if sample and "sample" not in names:
        names = (*names, "sample")
    if airflow and "airflow" not in names:
        names = (*names, "airflow")
    if s3 and "s3" not in names:
        names = (*names, "s3")
    try:
        mode = Executor(*executor) if executor else None
        return Stack(home or default_home(), names, mode)
    except StackError as err:
        console.print(f"[red]error:[/] {escape(str(err))}")
        raise typer.Exit(2) from err


def _print_status(statuses) -> None:
    table = Table(title="TwinOps embedded stack")
    for column in ("service", "state", "url", "pid", "memory", "detail"):
        table.add_column(column, justify="right" if column == "memory" else "left")
    colour = {"healthy": "green", "unhealthy": "red", "stopped": "yellow"}
    for s in statuses:
        memory = f"{s.memory_mb:.0f} MiB" if s.pid else "-"
        table.add_row(
            escape(s.name),
            f"[{colour[s.state]}]{s.state}[/]",
            escape(s.url),
            str(s.pid or "-"),
            memory,
            escape(s.detail),
        )
    table.caption = f"total memory (PSS): {sum(s.memory_mb for s in statuses):.0f} MiB"
    out.print(table)


@stack_app.command("up")
def stack_up(
    home: Path | None = HomeOption,
    airflow: bool = typer.Option(False, "--airflow", help="Also run `airflow standalone` (UI)."),
    sample: bool = typer.Option(False, "--sample", help="Also serve the sample author's site."),
    s3: bool = typer.Option(
        False, "--s3", help="Also run an S3 server (moto, in memory) and keep objects there."
    ),
    services: str | None = typer.Option(None, help="Comma-separated subset of services."),
    executor: str = typer.Option(
        "local",
        help="Airflow's executor: local, or celery (a Redis broker and Celery workers, "
        "each with its own hostname and working folder).",
    ),
    workers: int = typer.Option(
        2, min=1, max=16, help="Celery workers for the default, crawl and embedding queues."
    ),
    training_workers: int = typer.Option(
        1, min=0, max=8, help="Celery workers for the training queue only (the GPU machines)."
    ),
) -> None:
    """Start every service that is not already healthy; write .twin/stack.env."""
    from twin.stack import StackError

    if executor == "celery" and not airflow:
        console.print("[red]error:[/] --executor celery runs Airflow: add --airflow")
        raise typer.Exit(2)
    stack = _stack(home, services, airflow, sample, (executor, workers, training_workers), s3=s3)
    began = time.monotonic()
    try:
        with console.status("bringing the stack up") as spinner:
            result = stack.up(progress=lambda msg: spinner.update(msg))
    except StackError as err:
        console.print(f"[red]stack up failed:[/] {escape(str(err))}")
        raise typer.Exit(1) from err
    console.print(
        f"started: {', '.join(result.started) or 'nothing'}; "
        f"reused: {', '.join(result.reused) or 'nothing'} "
        f"({time.monotonic() - began:.1f} s); endpoints in {escape(str(stack.env_path))}"
    )
    for note in result.notes:  # e.g. which Airflow DAGs were unpaused, or what to unpause
        console.print(note, markup=False, highlight=False)
    if sample:
        _record_sample_links(stack.home, stack.endpoints().get("SAMPLE_SITE_URL"))
    _print_status(result.statuses)


def _record_sample_links(home: Path | None, site_url: str | None) -> None:
    """Record the served demo site's links as its author's (what `twin_crawl` reads when run
    without links), as the site describes itself. A failure is reported, never fatal."""
    from twin.crawl.run import record_author_links
    from twin.settings import load_settings
    from twin.stack.demo_site import describe_demo_site

    if not site_url:
        console.print("[yellow]the sample site is not running: no links recorded[/]")
        return
    settings = load_settings(home)
    try:
        site = describe_demo_site(site_url)
        record_author_links(site.author, site.links, settings)
    except Exception as err:  # e.g. Mongo not among --services: the user can still pass links
        console.print(f"[yellow]sample author's links not recorded:[/] {escape(str(err))}")
        return
    console.print(
        f"sample author {site.author!r}: links of {site_url} recorded",
        markup=False,
        highlight=False,
    )


@stack_app.command("down")
def stack_down(home: Path | None = HomeOption) -> None:
    """Stop every service the stack started (whole process groups), and nothing else."""
    stopped = _stack(home, None, airflow=True, sample=True).down()
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@stack_app.command("status")
def stack_status(
    home: Path | None = HomeOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Each service, its URL and its health. Exit 1 when a core service is not healthy."""
    from twin.stack.manager import CORE_SERVICES, as_dicts

    statuses = _stack(home, None).status()
    if as_json:
        out.print_json(json.dumps(as_dicts(statuses)))
    else:
        _print_status(statuses)
    if any(not s.healthy for s in statuses if s.name in CORE_SERVICES):
        raise typer.Exit(1)


@app.command("healthcheck")
def healthcheck() -> None:
    """Check every service through the project's own clients, as the twin_healthcheck DAG does."""
    from twin.ops.healthcheck import check_all, render_report

    results = check_all()
    out.print(render_report(results), markup=False, highlight=False)  # details are error text
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def quiet_model_loading() -> None:
    """No progress bars while models load (transformers' "Loading weights", the hub's downloads):
    a command's output is its answer."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    disable_progress_bars()


def _add_plugin_commands() -> None:
    """Sub-commands contributed by installed packages (entry point group `twin.cli`), such as
    `twin sample` from the bundled sample author."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="twin.cli"):
        try:
            app.add_typer(entry.load(), name=entry.name)
        except Exception as err:  # a broken plugin must not take the command down
            console.print(f"[yellow]`twin {entry.name}` unavailable:[/] {escape(str(err))}")


_add_plugin_commands()


@app.command("crawl")
def crawl(
    urls: list[str] = typer.Argument(
        None, help="Links to crawl; none: the author's recorded links"
    ),
    author: str | None = typer.Option(None, help="Author (default: TWIN_AUTHOR)."),
    platform: str | None = typer.Option(None, help="Force the platform of every URL."),
) -> None:
    """Crawl an author's links into the raw store and print the run's summary."""
    from rich.progress import Progress

    from twin.crawl.run import (
        SourceReport,
        crawl_source,
        plan_sources,
        render_summary,
        summarise,
    )
    from twin.settings import load_settings

    settings = load_settings()
    author = author or settings.author
    links = {platform: list(urls)} if urls and platform else list(urls or []) or None
    try:
        sources = plan_sources(author, links, settings)
    except ValueError as err:
        console.print(f"[red]error:[/] {escape(str(err))}", highlight=False)
        raise typer.Exit(2) from err
    reports = []
    with Progress(console=console, transient=True) as progress:
        # Progress descriptions are Rich markup: links and names are escaped.
        bar = progress.add_task(
            escape(f"crawling {len(sources)} source(s) of {author}"), total=len(sources)
        )
        for source in sources:
            progress.update(bar, description=escape(f"{source['platform']}: {source['url']}"))
            reports.append(crawl_source(source, settings))
            progress.advance(bar)
    summary = summarise(reports, settings)
    totals = {
        k: summary[k] for k in ("new", "changed", "unchanged", "deleted", "skipped", "failed")
    }
    out.print(
        render_summary([SourceReport.model_validate(r) for r in reports], totals),
        markup=False,
        highlight=False,
    )
    console.print(f"crawl run {summary['run_id']} recorded in crawl_runs")


@app.command("crawl-summary")
def crawl_summary() -> None:
    """Print the latest crawl run recorded in `crawl_runs` (what twin_crawl last did)."""
    from twin.crawl.run import SourceReport, render_summary
    from twin.settings import load_settings
    from twin.store.mongo import mongo_client, twin_database
    from twin.store.raw_documents import RawDocumentStore

    settings = load_settings()
    with mongo_client(settings) as client:
        run = RawDocumentStore(twin_database(client, settings)).latest_run()
    if run is None:
        console.print("no crawl run recorded yet: run `twin crawl` or the twin_crawl DAG")
        raise typer.Exit(1)
    reports = [SourceReport.model_validate(r) for r in run["sources"]]
    out.print(f"crawl run {run['_id']} finished {run['finished_at']:%Y-%m-%d %H:%M:%S} UTC")
    out.print(render_summary(reports, run["totals"]), markup=False, highlight=False)


@app.command("warehouse-summary")
def warehouse_summary() -> None:
    """Print what the warehouse holds: mart documents per platform, the latest gate results, and
    the documents the load refused (raw.quarantine)."""
    import psycopg

    from twin.settings import load_settings
    from twin.store.extract_load import quarantine_report

    settings = load_settings()
    with psycopg.connect(settings.require("warehouse_dsn")) as conn:
        counts = conn.execute(
            "select platform, count(*), sum(word_count) from marts.documents "
            "group by platform order by platform"
        ).fetchall()
        dupes = conn.execute("select count(*) from marts.near_duplicates").fetchone()[0]
        gates = conn.execute(
            "select distinct on (gate) gate, success, evaluated, failed_count, row_count, "
            "validated_at from quality.validation_results order by gate, validated_at desc"
        ).fetchall()
        quarantined = quarantine_report(conn)
    table = Table(title="marts.documents")
    for column in ("platform", "documents", "words"):
        table.add_column(column, justify="left" if column == "platform" else "right")
    for platform, documents, words in counts:
        table.add_row(escape(platform), str(documents), str(words or 0))
    table.caption = f"{dupes} duplicate copies recorded in marts.near_duplicates"
    out.print(table)
    for gate, success, evaluated, failed, rows, when in gates:
        verdict = "[green]passed[/]" if success else f"[red]FAILED ({failed} failing)[/]"
        out.print(
            f"quality gate {escape(gate)}: {verdict}, {evaluated} expectations, {rows} rows, "
            f"{when:%Y-%m-%d %H:%M:%S}"
        )
    if quarantined:
        out.print(quarantined, markup=False, highlight=False)


class SearchModeName(StrEnum):
    """The retrieval modes `twin search --mode` accepts (those of `twin.rag.retrieve.SearchMode`,
    which the CLI does not import at start-up)."""

    hybrid = "hybrid"
    dense = "dense"
    fulltext = "fulltext"


@app.command("search")
def search(
    question: str = typer.Argument(..., help="A question, e.g. 'what did I write about HNSW?'"),
    k: int = typer.Option(5, min=1, max=50, help="How many passages."),
    mode: SearchModeName = typer.Option(SearchModeName.hybrid, help="The retrieval mode."),
    rerank: bool = typer.Option(True, help="Rerank the fused candidates (MMR by default)."),
    expand: bool = typer.Option(False, help="Add rule-based query expansions."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print the passages of the author's work that best answer a question, with their sources."""
    from twin.rag.evaluate import search_passages
    from twin.settings import load_settings

    if not question.strip():
        console.print("[red]error:[/] the question is empty")
        raise typer.Exit(2)
    quiet_model_loading()
    passages = search_passages(
        question, load_settings(), k, mode=mode.value, rerank=rerank, expand=expand
    )
    if as_json:
        out.print_json(json.dumps(passages, default=str))
        return
    if not passages:
        out.print("no passage found")
        raise typer.Exit(1)
    for rank, p in enumerate(passages, start=1):
        snippet = " ".join(p["content"].split())[:320]
        # Titles and URLs are the author's text: never read them as Rich markup.
        title = escape(f"{rank}. {p['title']}")
        out.print(f"[bold]{title}[/] ({escape(p['platform'])}, score {p['score']:.4f})")
        out.print(f"   {p['url']}", markup=False, highlight=False)
        out.print(f"   {snippet}{'…' if len(p['content']) > 320 else ''}", markup=False)


eval_app = typer.Typer(help="Evaluations of the platform's stages.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(datasets_app, name="datasets")
app.add_typer(deployments_app, name="deployments")
app.add_typer(serving_app)  # twin ask, twin serve
app.add_typer(models_app, name="models")  # twin models list|show|approve|reject|train


@eval_app.command("retrieval")
def eval_retrieval(
    questions: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="A hand-written labelled question set (YAML); default: the author's question set "
        "in ml (built by twin_datasets).",
    ),
    author: str | None = typer.Option(None, help="Whose question set (default: settings)."),
) -> None:
    """recall@5, recall@10, MRR and nDCG@10 of dense, full-text, hybrid and hybrid + rerank."""
    import yaml

    from twin.rag.evaluate import load_questions, run_retrieval_eval
    from twin.settings import load_settings

    if questions is not None:
        try:
            load_questions(questions)  # a malformed set is named before any service is asked
        except (ValueError, yaml.YAMLError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            console.print(
                f"[red]error:[/] invalid question set {escape(str(questions))}: {escape(first)}"
            )
            raise typer.Exit(2) from err
    quiet_model_loading()
    try:
        result = run_retrieval_eval(load_settings(), path=questions, author=author)
    except LookupError as err:
        console.print(f"[red]error:[/] {escape(str(err))}")
        raise typer.Exit(1) from err
    out.print(f"question set: {result['labelled_set']}", markup=False, highlight=False)
    out.print(result["table"], markup=False, highlight=False)
    if result.get("unresolved"):
        console.print(
            f"[yellow]{len(result['unresolved'])} labelled document(s) not found in "
            f"marts.documents:[/] {escape(', '.join(map(str, result['unresolved'][:10])))}"
        )


def main() -> None:
    """The console entry point: ordinary failures (bad settings, a service that is down) end with
    one readable line and a non-zero status instead of a traceback."""
    from twin.errors import describe_failure

    try:
        app()
    except SystemExit:
        raise
    except Exception as err:
        message, code = describe_failure(err)
        if message is None and type(err).__name__ == "UndefinedTable":  # psycopg: not built yet
            first = str(err).strip().splitlines()[0]
            message = (
                f"{first}: the warehouse is not built yet (run twin_warehouse, then twin_features:"
                " `make dag DAG=twin_warehouse`)"
            )
        if message is None:
            raise
        console.print(f"[red]error:[/] {escape(message)}", highlight=False)
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
