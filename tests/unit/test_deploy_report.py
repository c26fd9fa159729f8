"""A deployment decision's report: figures, thresholds, the three plots and answers side by side,
written for a shadow comparison and for a first deployment (embeddings by the packaged MiniLM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_deploy_checks import answers, pairs, version_answers
from twin.deploy.checks import Thresholds, evaluate_shadow, first_deployment_report
from twin.deploy.report import Evidence, write_report

FILES = {"report.html", "report.md", "figures.json", "lengths.png", "drift.png", "latency.png"}


@pytest.fixture(scope="module")
def embed():
    from twin.features.embed import Embedder

    embedder = Embedder.get()
    return lambda texts: embedder.encode(list(texts))


def evidence_of(report, thresholds, **kw) -> Evidence:
    return Evidence(
        title="Deployment of twin-llm version 7",
        verdict="promote" if report.passed else "rollback",
        reason=report.reason,
        checks=report.as_dict()["checks"],
        figures=report.figures,
        thresholds=thresholds.model_dump(),
        **kw,
    )


def test_a_shadow_decision_report_has_figures_plots_and_answer_pairs(tmp_path: Path, embed):
    t = Thresholds(min_samples=40)
    shadow = pairs(answers(9, 50), slow=10.0)
    report = evaluate_shadow(shadow, t, embed, embed(answers(3, 20)))

    written = write_report(tmp_path, evidence_of(report, t, pairs=shadow), embed)

    assert {p.name for p in written} == FILES
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "Decision: rollback" in page and "p95 latency ratio" in page
    assert shadow[0].challenger_answer.split(".")[0] in page  # an answer pair, side by side
    summary = json.loads((tmp_path / "figures.json").read_text())
    assert summary["thresholds"]["max_latency_p95_ratio"] == 2.0
    assert summary["figures"]["latency_p95_ratio"] > 5 and summary["problems"] == []
    assert "![drift](drift.png)" in (tmp_path / "report.md").read_text()


def test_a_first_deployment_report_shows_its_own_answers(tmp_path: Path, embed):
    t = Thresholds()
    own = version_answers(12, wrong=2)
    report = first_deployment_report(own, t)

    write_report(tmp_path, evidence_of(report, t, answers=own), embed)

    page = (tmp_path / "report.html").read_text()
    assert "Decision: promote" in page and "wrong_source_rate" in page
    assert own[0].question in page and "doc-0" in page
    assert page.count("data:image/png;base64,") == 3
