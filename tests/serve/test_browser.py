"""The web page in headless Chromium (Debian's package), driven by Playwright: search, rate
three movies, see ten recommendations, open similar movies. Saves a screenshot."""

import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("EMBEDREC_SKIP_BROWSER"):
            pytest.skip("EMBEDREC_SKIP_BROWSER is set and no chromium is installed")
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        yield browser
        browser.close()


def _until(page, expression: str, arg=None, timeout: float = 60.0) -> None:
    """Poll a JS expression from Python (page.wait_for_function evaluates strings inside the
    page, which the app's Content-Security-Policy rightly forbids); gives up after ``timeout``
    seconds (generous: a loaded machine is slow, and this is a bound, not a speed check)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.evaluate(expression, arg):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"never true: {expression}")


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}],
                         ids=["laptop", "phone"])
def test_rate_three_movies_and_get_ten_recommendations(browser, live, viewport):
    page = browser.new_page(viewport=viewport)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text)
            if "Content Security Policy" in msg.text else None)  # the page obeys its own CSP
    page.goto(live.url + "/")
    page.wait_for_selector("#results li.movie")
    assert "biased model" in page.inner_text("#model-info")
    first_word = page.inner_text("#results li.movie .title").split()[0]
    page.fill("#search", first_word.lower())
    _until(page, "w => [...document.querySelectorAll('#results li.movie .title')]"
           ".every(t => t.textContent.toLowerCase().includes(w))", arg=first_word.lower())
    rows = page.locator("#results li.movie")
    assert rows.count() >= 1
    page.fill("#search", "")
    _until(page, "() => document.querySelectorAll('#results li.movie').length >= 3")
    for i, stars in enumerate((5, 4, 1)):
        page.locator("#results li.movie").nth(i).locator(f".star[data-value='{stars}']").click()
    _until(page,  # the answer to the third rating, not an earlier one
           "() => document.querySelector('#recs-status').textContent.includes('From 3 of your 3')")
    assert page.locator("#recommendations li.movie").count() == 10
    assert page.locator("#rated li.movie").count() == 3
    titles = page.locator("#recommendations .title").all_inner_texts()
    assert len(set(titles)) == 10 and all(titles)
    ARTIFACTS.mkdir(exist_ok=True)
    name = "laptop" if viewport["width"] > 700 else "phone"
    page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"), full_page=True)
    page.locator("#recommendations .title").first.click()
    _until(page, "() => document.querySelectorAll('#similar-list li.movie').length === 10")
    assert page.is_visible("#similar") and "Movies like" in page.inner_text("#similar-title")
    page.screenshot(path=str(ARTIFACTS / f"page-{name}-similar.png"))
    page.click("#close-similar")
    assert not page.is_visible("#similar")
    assert errors == []
    page.close()
