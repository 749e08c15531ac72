"""The web form in headless Chromium, and the OpenAPI schema under fuzzing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import RunningServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Debian's Chromium driven by Playwright; never a downloaded browser."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield context
        context.close()


def test_form_submits_and_shows_the_decision(
    browser: object, server: RunningServer, tmp_path: Path
) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{server.url}/")
    page.fill("input[name=loan_percent_income]", "0.45")
    page.select_option("select[name=cb_person_default_on_file]", "Y")
    page.click("#submit")
    page.wait_for_selector("#result", state="visible", timeout=15_000)

    decision = page.inner_text("#decision")
    default_probability = page.inner_text("#default-probability")
    reasons = page.locator("#reasons .reason").count()
    page.screenshot(path=str(tmp_path / "form.png"))

    assert decision in ("Approved", "Declined")
    assert default_probability.endswith("%")
    assert reasons >= 1


def test_form_shows_validation_errors(browser: object, server: RunningServer) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{server.url}/")
    # Bypass the browser's own range check to reach the server's.
    page.eval_on_selector("input[name=person_age]", "e => { e.removeAttribute('min'); }")
    page.fill("input[name=person_age]", "12")
    page.click("#submit")
    page.wait_for_function("document.getElementById('error').textContent.length > 0")

    assert "person_age" in page.inner_text("#error")


def test_openapi_schema_holds_under_fuzzing(server: RunningServer) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    checks = [
        schemathesis.checks.not_a_server_error,
        schemathesis.checks.response_schema_conformance,
    ]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/predict/batch", "/explain"}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=checks)

        check()
