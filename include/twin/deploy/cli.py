"""`twin deployments`: the deployment decisions recorded in `serving.deployments`, with figures,
the monitor's alerts, and `retry` to judge a decided version again."""

from __future__ import annotations

import getpass
import json
import sys

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    help="Deployments of registered versions: decisions, figures, alerts.",
    invoke_without_command=True,
)
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)

# Figures shown in the table, in order, with their column titles.
COLUMNS = {
    "questions_asked": "asked",
    "samples": "pairs",
    "mmd_p_value": "MMD p",
    "classifier_auc": "AUC",
    "length_ks_p_value": "len KS p",
    "style_similarity": "style",
    "latency_p95_ratio": "p95 ratio",
    "latency_p_value": "slower p",
    "error_rate": "errors",
    "guardrail_rate": "guardrails",
    "empty_rate": "empty",
    "repeat_rate": "loops",
    "wrong_source_rate": "wrong src",
}
COLOUR = {"promoted": "green", "rolled_back": "red", "failed": "yellow"}


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _records(model: str | None, limit: int):
    from twin.settings import load_settings
    from twin.store.deployments import ensure_schema, list_deployments
    from twin.store.warehouse import warehouse_connection

    settings = load_settings()
    with warehouse_connection(settings, autocommit=True) as conn:
        ensure_schema(conn)
        return list_deployments(conn, model or settings.registered_model, limit)


@app.callback()
def deployments(
    ctx: typer.Context,
    model: str | None = typer.Option(None, help="Registered model (default: settings)."),
    limit: int = typer.Option(20, min=1, max=1000, help="How many deployments."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List deployments, newest first: state, decision, reason and every figure."""
    if ctx.invoked_subcommand is not None:
        return
    records = _records(model, limit)
    if as_json:
        rows = [
            {
                k: getattr(r, k)
                for k in ("version", "state", "backend", "decision", "reason", "figures")
            }
            | {"updated_at": r.updated_at.isoformat() if r.updated_at else None}
            for r in records
        ]
        out.print_json(json.dumps(rows, default=str))
        return
    if not records:
        err.print("no deployment recorded yet: run the twin_deploy DAG")
        raise typer.Exit(1)
    table = Table(title="serving.deployments")
    columns = ("version", "state", "backend", "champion before", *COLUMNS.values())
    for column in (*columns, "reason", "when"):
        table.add_column(column, overflow="fold")
    for r in records:
        colour = COLOUR.get(r.state, "cyan")
        table.add_row(
            r.version,
            f"[{colour}]{r.state}[/]",
            r.backend or "-",
            r.previous_champion or "-",
            *(_fmt(r.figures.get(key)) for key in COLUMNS),
            escape((r.reason or "")[:160]),
            f"{r.updated_at:%Y-%m-%d %H:%M}" if r.updated_at else "-",
        )
    out.print(table)
    for r in records:
        link = r.figures.get("report_url") or r.figures.get("report_error")
        if r.figures.get("report_uri"):
            out.print(
                f"report of version {r.version}: {r.figures['report_uri']} ({link})", markup=False
            )
        elif link:
            out.print(f"report of version {r.version} not published: {link}", markup=False)


@app.command("alerts")
def alerts(limit: int = typer.Option(20, min=1, max=1000)) -> None:
    """The latest alerts raised by twin_monitor."""
    from twin.settings import load_settings
    from twin.store.deployments import ensure_schema, list_alerts
    from twin.store.warehouse import warehouse_connection

    with warehouse_connection(load_settings(), autocommit=True) as conn:
        ensure_schema(conn)
        rows = list_alerts(conn)[:limit]
    table = Table(title="serving.alerts")
    for column in ("raised", "check", "severity", "window end", "message"):
        table.add_column(column, overflow="fold")
    for a in rows:
        table.add_row(
            f"{a['raised_at']:%Y-%m-%d %H:%M}",
            escape(a["check_name"]),
            escape(a["severity"]),
            f"{a['window_end']:%Y-%m-%d %H:%M}",
            escape(a["message"]),
        )
    out.print(table)


@app.command("retry")
def retry(
    version: int = typer.Argument(..., min=1, help="Registered version to deploy again."),
    reason: str = typer.Option(..., "--reason", help="Why it deserves another run (recorded)."),
    by: str | None = typer.Option(None, "--by", help="Who asks (default: the OS user)."),
    model: str | None = typer.Option(None, help="Registered model (default: settings)."),
) -> None:
    """Restart a decided deployment (a rollback for a transient failure, say): its record goes
    back to planned, with who asked and why; the next twin_deploy run of VERSION judges it again
    against today's champion."""
    from twin.deploy.deployment import DeploymentError
    from twin.deploy.registry import RegistryUnavailable
    from twin.deploy.tasks import open_deployment
    from twin.settings import load_settings

    settings = load_settings()
    if model:
        settings = settings.model_copy(update={"registered_model": model})
    who = by or getpass.getuser()
    try:
        with open_deployment(version, None, settings) as deployment:
            row = deployment.retry(reason, who)
    except (DeploymentError, RegistryUnavailable) as error:
        err.print(f"[red]retry refused:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    out.print(
        f"deployment {escape(row.deployment_id)} is planned again (attempt {row.attempts}, "
        f"asked by {escape(who)}); run twin_deploy with version={version} to judge it",
        highlight=False,
    )
