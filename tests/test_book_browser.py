"""The built book read from disk in headless Chromium, with no network: math typesets, every
image loads, and every exercise's solution is hidden until its title is clicked. Screenshots of
each page are kept in book/_build/screenshots/."""

from __future__ import annotations

import shutil

import pytest
from conftest import BOOK, toc_pages
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = "screenshots"
pytestmark = [pytest.mark.book, pytest.mark.browser]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-quic", "--window-size=1280,1600",
        # No network: every host name fails to resolve, and every request, even to a literal
        # address, goes to a proxy on a closed local port. Only file: and data: URLs load.
        "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


# Resolves once MathJax has typeset the page (or at once where the page has no math).
WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const start = Date.now();
(function poll() {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(() => done('typeset'), e => done('failed: ' + e));
  } else if (Date.now() - start > 20000) {
    done(window.MathJax ? 'not started' : 'no MathJax');
  } else { setTimeout(poll, 50); }
})();
"""

WAIT_FOR_IMAGES = """
const done = arguments[arguments.length - 1];
Promise.all([...document.images].map(img => img.complete ? null :
    new Promise(r => { img.onload = img.onerror = r; }))).then(() => done(true));
"""

INSPECT = """
return {
  math: document.querySelectorAll('.math').length,
  typeset: document.querySelectorAll('mjx-container').length,
  typesetAsSvg: document.querySelectorAll('mjx-container > svg').length,
  mathErrors: document.querySelectorAll('mjx-merror').length,
  images: [...document.images].map(i => ({src: i.src.slice(0, 80), ok: i.naturalWidth > 0})),
  resources: performance.getEntriesByType('resource').map(e => e.name),
};
"""


@pytest.mark.parametrize("page", toc_pages())
def test_page_renders_offline(built_book, browser, page):
    browser.get(built_book.page(page).as_uri())
    has_math = browser.execute_script("return document.querySelectorAll('.math').length > 0")
    # Sphinx loads MathJax only where it may be needed; where it loads, it must finish.
    mathjax = browser.execute_async_script(WAIT_FOR_MATHJAX)
    assert mathjax == "typeset" if has_math else mathjax in ("typeset", "no MathJax"), mathjax
    browser.execute_async_script(WAIT_FOR_IMAGES)
    state = browser.execute_script(INSPECT)

    shots = built_book.html.parent / SCREENSHOTS
    shots.mkdir(exist_ok=True)
    browser.save_screenshot(str(shots / f"{page.replace('/', '--')}.png"))

    remote = [r for r in state["resources"] if not r.startswith(("file:", "data:", "blob:"))]
    assert not remote, f"{page} requested resources from the network: {remote}"
    broken = [i["src"] for i in state["images"] if not i["ok"]]
    assert not broken, f"{page}: images that did not load: {broken}"
    assert state["mathErrors"] == 0, f"{page}: MathJax reported errors"
    # Every math element is typeset, as SVG (which needs no web font).
    assert state["typeset"] >= state["math"], state
    assert state["typesetAsSvg"] == state["typeset"], state
    failures = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not failures, f"{page}: console errors: {failures}"


# Each exercise (by its label) with the solution that answers it, the solution's title, and
# whether its body is shown: hidden at first, and shown once the title is clicked.
EXERCISES = """
return [...document.querySelectorAll('div.exercise')].map(exercise => {
  const solutions = [...document.querySelectorAll('div.solution')].filter(s =>
      s.querySelector('.admonition-title a[href="#' + CSS.escape(exercise.id) + '"]'));
  return {label: exercise.id, solutions: solutions.map(s => s.id)};
});
"""
SOLUTION_SHOWN = """
const body = document.getElementById(arguments[0]).querySelector('section');
return body.offsetParent !== null && body.innerText.trim().length > 0;
"""


def pages_with_exercises() -> list[str]:
    return [p for p in toc_pages() if ":::{exercise}" in (BOOK / f"{p}.md").read_text("utf-8")]


@pytest.mark.parametrize("page", pages_with_exercises())
def test_every_exercise_has_a_solution_that_opens_on_click(built_book, browser, page):
    browser.get(built_book.page(page).as_uri())
    exercises = browser.execute_script(EXERCISES)
    source = (BOOK / f"{page}.md").read_text("utf-8")
    assert len(exercises) == source.count(":::{exercise}"), exercises
    for exercise in exercises:
        assert len(exercise["solutions"]) == 1, f"{page}: {exercise}"
        solution = exercise["solutions"][0]
        assert not browser.execute_script(SOLUTION_SHOWN, solution), f"{page}: {solution} open"
        browser.execute_script(
            "document.getElementById(arguments[0]).querySelector('.admonition-title').click()",
            solution)
        assert browser.execute_script(SOLUTION_SHOWN, solution), f"{page}: {solution} stays shut"
