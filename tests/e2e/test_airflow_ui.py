"""The Airflow UI in a real browser: the `twin_crawl` trigger form, as a person fills it.

Debian's chromium driven by Playwright opens the embedded stack's UI (`airflow standalone`),
opens the trigger form, checks that the Params render as one field per platform with their
titles, that a bad link is refused with a message naming the Param, and that a typed link
starts a run that crawls the new page. Runs with `make test-ui` (CI calls it after `make test`);
it needs `chromium` on PATH (`apt-get install -y chromium`) or `TWIN_CHROMIUM` naming a binary.
"""

from __future__ import annotations

import os
import shutil

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


def open_trigger_form(browser, af: AirflowUnderTest):
    """Sign in as the stack's admin (its password is a stack secret), open twin_crawl's form."""
    airflow = af.stack.services["airflow"]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)  # a loaded laptop renders the first page slowly
    page.goto(f"{airflow.url}/auth/login?next={airflow.url}/dags/twin_crawl")
    page.locator("input[name=username]").fill(ADMIN_USER)
    page.locator("input[name=password]").fill(airflow.admin_password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").wait_for()
    return page, dialog


def test_the_trigger_form_shows_one_field_per_platform_and_refuses_a_bad_link(
    airflow_standalone: AirflowUnderTest, browser
) -> None:
    af = airflow_standalone
    page, dialog = open_trigger_form(browser, af)
    assert page.locator("#element_author").input_value() == "Ada Lindqvist"
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
    assert run["state"] == "success", af.task_states("twin_crawl", run["dag_run_id"])
    report = af.xcom("twin_crawl", run["dag_run_id"], "crawl_source", map_index=0)
    assert isinstance(report, dict) and report["new"] == 1, report
