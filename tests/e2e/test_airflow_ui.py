"""The Airflow UI in a real browser: the trigger forms, as a person fills them.

Debian's chromium driven by Playwright opens the embedded stack's UI (`airflow standalone`),
opens the trigger form, checks that the Params render as one field per platform with their
titles, that a bad link is refused with a message naming the Param, and that a typed link
starts a run that crawls the new page. Then every DAG's form opens with no field marked invalid
and triggers with its defaults (the Params left empty mean the platform's author and base model);
with `TWIN_UI_CHAIN=1` the runs of `twin_datasets` and `twin_training` (tiny model) started that
way must succeed too. Runs
with `make test-ui` (CI calls it after `make test`); it needs `chromium` on PATH
(`apt-get install -y chromium`) or `TWIN_CHROMIUM` naming a binary.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tests.e2e import test_airflow_scheduler as scheduler
from tests.e2e.test_airflow_scheduler import CHAIN_TIMEOUT_S, AirflowUnderTest
from twin.stack.airflow import ADMIN_USER

# The same stack fixtures as the scheduler test (a stack of this module's own).
airflow_standalone = scheduler.airflow_standalone
new_page = scheduler.new_page

CHROMIUM = (
    os.environ.get("TWIN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
# The DAGs whose trigger form shows Params (the others only a Trigger button).
WITH_PARAMS = ("twin_crawl", "twin_datasets", "twin_training", "twin_deploy")
PLATFORM_TITLES = {
    "linkedin": "LinkedIn links",
    "medium": "Medium links",
    "substack": "Substack links",
    "github": "GitHub links",
    "blog": "Blog links",
}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("TWIN_UI_TESTS") != "1", reason="browser test: run it with `make test-ui`"
    ),
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="browser test: no chromium on PATH (apt-get install -y chromium, or set "
        "TWIN_CHROMIUM to a Chromium binary)",
    ),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser test: playwright is not installed (make setup)"
    )
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox cannot start as root (CI containers).
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def open_trigger_form(browser, af: AirflowUnderTest, dag_id: str = "twin_crawl"):
    """Sign in as the stack's admin (its password is a stack secret), open the DAG's form."""
    airflow = af.stack.services["airflow"]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(300_000)  # a loaded machine renders a page slowly
    page.goto(f"{airflow.url}/auth/login?next={airflow.url}/dags/{dag_id}")
    page.locator("input[name=username]").fill(ADMIN_USER)
    page.locator("input[name=password]").fill(airflow.admin_password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    if dag_id in WITH_PARAMS:
        dialog.get_by_text("Run Parameters").wait_for()
    else:  # a DAG without Params has no Run Parameters section
        dialog.get_by_role("button", name="Trigger").wait_for()
    return page, dialog


def test_the_trigger_form_shows_one_field_per_platform_and_refuses_a_bad_link(
    airflow_standalone: AirflowUnderTest, browser
) -> None:
    af = airflow_standalone
    page, dialog = open_trigger_form(browser, af)
    # Left empty, the run crawls for the platform's author (TWIN_AUTHOR)
    assert page.locator("#element_author").input_value() == ""
    for platform, title in PLATFORM_TITLES.items():
        assert dialog.get_by_text(title, exact=True).is_visible()
        field = page.locator(f"#element_{platform}")
        assert field.evaluate("e => e.tagName") == "TEXTAREA", platform
    assert dialog.get_by_text("One URL per line: a personal site").is_visible()

    runs_before = len(af.runs("twin_crawl"))
    page.locator("#element_blog").fill("ftp://example.org/x")
    dialog.get_by_role("button", name="Trigger").click()
    message = page.get_by_text("Invalid input for param blog", exact=False)
    message.first.wait_for()
    assert "ftp://example.org/x" in message.first.inner_text()
    assert len(af.runs("twin_crawl")) == runs_before
    page.close()


def test_links_typed_in_the_form_start_a_run_that_crawls_them(
    airflow_standalone: AirflowUnderTest, browser, new_page: str
) -> None:
    af = airflow_standalone
    known = {r["dag_run_id"] for r in af.runs("twin_crawl")}
    page, dialog = open_trigger_form(browser, af)
    # A trailing empty line, as people type: the form and the task ignore it.
    page.locator("#element_blog").fill(f"{new_page}\n")
    dialog.get_by_role("button", name="Trigger").click()
    run = af.wait_for("twin_crawl", known, CHAIN_TIMEOUT_S)
    page.close()

    assert run["conf"].get("blog", [])[:1] == [new_page], run["conf"]
    assert run["state"] == "success", af.failure_report("twin_crawl", run["dag_run_id"])
    report = af.xcom("twin_crawl", run["dag_run_id"], "crawl_source", map_index=0)
    assert isinstance(report, dict) and report["new"] == 1, report


# Every DAG, in the order a chain needs: the crawl (the sample author's recorded links) first, so
# the later forms' default runs have marts, a dataset and a model to work on.
FORM_DAGS = (
    "twin_healthcheck",
    "twin_crawl",
    "twin_warehouse",
    "twin_features",
    "twin_datasets",
    "twin_training",
    "twin_deploy",
    "twin_monitor",
)
MUST_SUCCEED = ("twin_crawl", "twin_datasets", "twin_training")


def trigger_with_defaults(browser, af: AirflowUnderTest, dag_id: str) -> str:
    """Open the DAG's form, check no field is marked invalid, press Trigger; the new run's id."""
    known = {r["dag_run_id"] for r in af.runs(dag_id)}
    page, dialog = open_trigger_form(browser, af, dag_id)
    invalid = dialog.locator("[aria-invalid=true], [data-invalid]")
    assert invalid.count() == 0, (
        dag_id,
        [invalid.nth(i).get_attribute("id") for i in range(invalid.count())],
    )
    button = dialog.get_by_role("button", name="Trigger")
    assert button.is_enabled(), f"{dag_id}: the form cannot be submitted with its defaults"
    button.click()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = [r["dag_run_id"] for r in af.runs(dag_id) if r["dag_run_id"] not in known]
        if new:
            page.close()
            return new[0]
        time.sleep(1)
    raise AssertionError(f"{dag_id}: Trigger with the form's defaults started no run")


def wait_until_quiet(af: AirflowUnderTest, timeout_s: float) -> None:
    """Until no chain DAG has a queued or running run (the assets' runs have all finished)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        busy = [
            d for d in FORM_DAGS if any(r["state"] in ("queued", "running") for r in af.runs(d))
        ]
        if not busy:
            return
        time.sleep(5)
    raise AssertionError(f"runs still going after {timeout_s} s: {busy}")


# Waiting for the default runs to succeed trains and deploys the tiny model through the asset chain
# (a real retrain by the training form's defaults): tens of minutes on 2 cores, so it is opt-in.
WAIT_FOR_CHAIN = os.environ.get("TWIN_UI_CHAIN") == "1"


def test_every_form_triggers_with_its_defaults_and_the_chain_runs_succeed(
    airflow_standalone: AirflowUnderTest, browser
) -> None:
    """Every form submits with its defaults; with TWIN_UI_CHAIN=1 the crawl, datasets and
    training runs started that way must also succeed."""
    from twin.crawl.run import record_author_links
    from twin.settings import load_settings
    from twin.stack.demo_site import describe_demo_site

    af = airflow_standalone
    # What `twin stack up --sample` does: the crawl form's default run (no links) reads these.
    site = describe_demo_site(af.stack.services["sample"].url)
    record_author_links(site.author, site.links, load_settings(af.stack.home))
    af.api.patch("/dags/twin_monitor", json={"is_paused": False})
    af.api.patch("/dags/twin_healthcheck", json={"is_paused": False})
    started: dict[str, str] = {}
    for dag_id in FORM_DAGS:
        if WAIT_FOR_CHAIN and dag_id in MUST_SUCCEED:
            # the crawl's assets start the rest of the chain: let it finish first, so these
            # default runs have the sample author's marts, dataset and model to work on
            wait_until_quiet(af, CHAIN_TIMEOUT_S)
        started[dag_id] = trigger_with_defaults(browser, af, dag_id)
        if WAIT_FOR_CHAIN and dag_id in MUST_SUCCEED:
            run = af.wait_for(dag_id, set(), CHAIN_TIMEOUT_S, run_id=started[dag_id])
            assert run["state"] == "success", af.failure_report(dag_id, started[dag_id])
    assert set(started) == set(FORM_DAGS)
