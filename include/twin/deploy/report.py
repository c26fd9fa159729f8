"""The evidence behind a deployment decision, as a report a reviewer can open in MLflow.

When a deployment is checked, its figures, the thresholds they were held to, and plots of what
was compared are written to a folder and logged as artifacts of the version's training run under
`deployments/v<N>/`:

- `report.html` (self-contained, plots inline) and `report.md` (the same, PNGs beside it);
- `lengths.png`: answer-length distributions (words), champion vs challenger;
- `drift.png`: embedding drift, a 2-D PCA projection of champion and challenger answers;
- `latency.png`: latency distributions;
- `figures.json`: the figures, thresholds, verdict and reason;
- a few answer pairs side by side (a first deployment: its own answers, their labelled
  documents and sources).

The version is tagged `deployment_report` with the report's artifact URI, and the deployment
record keeps it (`twin deployments` shows it). A report that cannot be written or logged never
changes the decision: the record keeps `report_error` instead.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.deploy.checks import CheckReport, ShadowPair, VersionAnswer, answer_length

log = logging.getLogger(__name__)
REPORT_TAG = "deployment_report"
ARTIFACT_ROOT = "deployments"
PAIRS_SHOWN = 5
QUESTION_TAIL = 400  # a replayed pair's prompt ends with the question
Embed = Callable[[Sequence[str]], Any]


@dataclass
class Evidence:
    """What a decision was made on, for its report."""

    title: str
    verdict: str
    reason: str
    checks: list[dict[str, Any]]
    figures: dict[str, Any]
    thresholds: dict[str, Any]
    pairs: Sequence[ShadowPair] = ()
    answers: Sequence[VersionAnswer] = ()
    problems: list[str] = field(default_factory=list)


def write_report(folder: Path, evidence: Evidence, embed: Embed | None = None) -> list[Path]:
    """Write the report's files into `folder`; returns them. A plot that cannot be drawn is
    named in the report instead."""
    folder.mkdir(parents=True, exist_ok=True)
    first = not evidence.pairs
    if first:
        series = {"version": [a.answer for a in evidence.answers if a.error is None]}
        latency = {"version": [a.latency_ms for a in evidence.answers if a.latency_ms]}
    else:
        answered = [p for p in evidence.pairs if p.challenger_error is None]
        series = {
            "champion": [p.champion_answer for p in answered],
            "challenger": [p.challenger_answer for p in answered],
        }
        latency = {
            "champion": [p.champion_latency_ms for p in answered if p.champion_latency_ms],
            "challenger": [p.challenger_latency_ms for p in answered if p.challenger_latency_ms],
        }
    plots: dict[str, Path] = {}
    for name, draw in (
        ("lengths", lambda path: _lengths_plot(path, series)),
        ("drift", lambda path: _drift_plot(path, series, embed)),
        ("latency", lambda path: _latency_plot(path, latency)),
    ):
        try:
            plots[name] = draw(folder / f"{name}.png")
        except Exception as err:  # one plot's failure never hides the others
            evidence.problems.append(f"{name} plot not drawn: {type(err).__name__}: {err}")
    summary = {
        "title": evidence.title,
        "verdict": evidence.verdict,
        "reason": evidence.reason,
        "checks": evidence.checks,
        "figures": evidence.figures,
        "thresholds": evidence.thresholds,
        "problems": evidence.problems,
    }
    (folder / "figures.json").write_text(json.dumps(summary, indent=2, default=str))
    rows = _answer_rows(evidence)
    (folder / "report.md").write_text(_markdown(evidence, plots, rows))
    (folder / "report.html").write_text(_html(evidence, plots, rows))
    return sorted(folder.iterdir())


# --- plots (matplotlib's Figure API: the Agg canvas, no display, no global state) -------------


def _figure():
    from matplotlib.figure import Figure

    return Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")


def _lengths_plot(path: Path, series: dict[str, list[str]]) -> Path:
    fig = _figure()
    ax = fig.subplots()
    for label, texts in series.items():
        ax.hist([answer_length(t) for t in texts], bins=20, alpha=0.6, label=label)
    ax.set(title="Answer lengths", xlabel="words", ylabel="answers")
    ax.legend()
    fig.savefig(path)
    return path


def _drift_plot(path: Path, series: dict[str, list[str]], embed: Embed | None) -> Path:
    from sklearn.decomposition import PCA

    if embed is None:
        raise ValueError("no embedding function")
    texts = [t for texts in series.values() for t in texts]
    if len(texts) < 3:
        raise ValueError(f"{len(texts)} answers: too few to project")
    vectors = np.asarray(embed(texts), dtype=np.float64)
    points = PCA(n_components=2, random_state=0).fit_transform(vectors)
    fig = _figure()
    ax = fig.subplots()
    start = 0
    for label, group in series.items():
        chunk = points[start : start + len(group)]
        ax.scatter(chunk[:, 0], chunk[:, 1], alpha=0.7, label=label, s=18)
        start += len(group)
    ax.set(title="Answer embeddings, 2-D PCA", xlabel="PC 1", ylabel="PC 2")
    ax.legend()
    fig.savefig(path)
    return path


def _latency_plot(path: Path, series: dict[str, list[float]]) -> Path:
    if not any(series.values()):
        raise ValueError("no timed answer")
    fig = _figure()
    ax = fig.subplots()
    for label, values in series.items():
        ax.hist(values, bins=20, alpha=0.6, label=label)
    ax.set(title="Latency", xlabel="ms", ylabel="answers")
    ax.legend()
    fig.savefig(path)
    return path


# --- the documents ------------------------------------------------------------------------


def _answer_rows(evidence: Evidence) -> tuple[list[str], list[list[str]]]:
    if evidence.pairs:
        rows = [
            [
                p.query[-QUESTION_TAIL:],
                p.champion_answer,
                p.challenger_error or p.challenger_answer,
            ]
            for p in evidence.pairs[:PAIRS_SHOWN]
        ]
        return ["prompt (end)", "champion", "challenger"], rows
    rows = [
        [
            a.question,
            a.error or a.answer,
            ", ".join(a.expected_documents),
            ", ".join(a.source_documents) or "-",
        ]
        for a in list(evidence.answers)[: PAIRS_SHOWN * 2]
    ]
    return ["question", "answer", "labelled document", "sources"], rows


def _check_lines(evidence: Evidence) -> list[tuple[str, str, str]]:
    return [
        (c["name"], "passed" if c["passed"] else "FAILED", c["detail"]) for c in evidence.checks
    ]


def _markdown(
    evidence: Evidence, plots: dict[str, Path], rows: tuple[list[str], list[list[str]]]
) -> str:
    def cell(text: str) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    lines = [
        f"# {evidence.title}",
        "",
        f"**Decision: {evidence.verdict}** ({evidence.reason})",
        "",
        "| check | result | figures and threshold |",
        "|---|---|---|",
        *[f"| {n} | {r} | {cell(d)} |" for n, r, d in _check_lines(evidence)],
        "",
        "| figure | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(evidence.figures.items())],
        "",
        "| threshold | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(evidence.thresholds.items())],
        "",
        *[f"![{name}]({path.name})" for name, path in plots.items()],
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
        *["| " + " | ".join(cell(c) for c in row) + " |" for row in rows[1]],
        "",
        *[f"- {p}" for p in evidence.problems],
    ]
    return "\n".join(lines) + "\n"


def _html(
    evidence: Evidence, plots: dict[str, Path], rows: tuple[list[str], list[list[str]]]
) -> str:
    e = html.escape

    def table(header: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
        head = "".join(f"<th>{e(str(h))}</th>" for h in header)
        cells = "".join(
            "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in body
        )
        return f"<table><tr>{head}</tr>{cells}</table>"

    images = "".join(
        f'<figure><img alt="{e(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"/></figure>'
        for name, path in plots.items()
    )
    problems = "".join(f"<li>{e(p)}</li>" for p in evidence.problems)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{e(evidence.title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;
vertical-align:top;white-space:pre-wrap}}figure{{display:inline-block;margin:0.5em}}</style>
</head><body><h1>{e(evidence.title)}</h1>
<p><b>Decision: {e(evidence.verdict)}</b> ({e(evidence.reason)})</p>
{table(["check", "result", "figures and threshold"], _check_lines(evidence))}
{table(["figure", "value"], sorted(evidence.figures.items()))}
{table(["threshold", "value"], sorted(evidence.thresholds.items()))}
{images}
<h2>Answers</h2>{table(rows[0], rows[1])}
<ul>{problems}</ul></body></html>
"""


# --- MLflow -------------------------------------------------------------------------------


def publish_report(
    settings: Any,
    deployment: Any,
    report: CheckReport,
    *,
    pairs: Sequence[ShadowPair] = (),
    answers: Sequence[VersionAnswer] = (),
    embed: Embed | None = None,
) -> dict[str, Any]:
    """Write the decision's report and log it to the version's run; the links for the record
    (`report_uri`, `report_url`), or `report_error` when it could not be published."""
    from twin.deploy.registry import run_url

    name, version, client = deployment.registered_model, deployment.version, deployment.client
    verdict = "promote" if report.passed else "rollback"
    evidence = Evidence(
        title=f"Deployment of {name} version {version}"
        + (" (first deployment)" if not pairs else ""),
        verdict=verdict,
        reason=report.reason,
        checks=report.as_dict()["checks"],
        figures=report.figures,
        thresholds=deployment.thresholds.model_dump(),
        pairs=pairs,
        answers=answers,
    )
    try:
        run_id = client.get_model_version(name, str(version)).run_id
        own = run_id is None
        run_id = run_id or _own_run(client, name)
        artifact_path = f"{ARTIFACT_ROOT}/v{version}"
        with tempfile.TemporaryDirectory(prefix="twin-report-") as tmp:
            write_report(Path(tmp), evidence, embed)
            client.log_artifacts(run_id, tmp, artifact_path=artifact_path)
        if own:
            client.set_terminated(run_id)
        uri = f"runs:/{run_id}/{artifact_path}/report.html"
        client.set_model_version_tag(name, str(version), REPORT_TAG, uri)
        experiment = client.get_run(run_id).info.experiment_id
        url = run_url(settings.require("mlflow_tracking_uri"), experiment, run_id) + "/artifacts"
    except Exception as err:  # the evidence is missing, the decision stands
        log.warning("deployment report of %s/%s not published: %s", name, version, err)
        return {"report_error": f"{type(err).__name__}: {err}"[:300]}
    log.info("deployment report of %s/%s: %s", name, version, uri)
    return {"report_uri": uri, "report_url": url}


def _own_run(client: Any, name: str) -> str:
    """A run in experiment `twin-deployments` for a version registered without one."""
    experiment = client.get_experiment_by_name("twin-deployments")
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment("twin-deployments")
    )
    return client.create_run(experiment_id, tags={"registered_model": name}).info.run_id


def report_publisher(
    settings: Any,
    deployment: Any,
    *,
    pairs: Sequence[ShadowPair] = (),
    answers: Sequence[VersionAnswer] = (),
    embed: Embed | None = None,
) -> Callable[[CheckReport], dict[str, Any]]:
    """The `publish` hook of `Deployment.check` for this deployment's pairs or answers."""
    return lambda report: publish_report(
        settings, deployment, report, pairs=pairs, answers=answers, embed=embed
    )
