"""A class on a real JupyterHub (autograder/JUPYTERHUB.md), end to end, through nbgrader's
exchange: the instructor releases 02-numpy; Ada fetches and submits it in JupyterLab's
Assignment List, in headless Chromium, after writing her answers; Alan, in a terminal of his
server, with the nbgrader commands; the instructor collects, grades in the sandbox (make
grade's code, ``python -m autograder.grade``) and releases the feedback; Ada fetches hers in
the Assignment List, Alan his with ``nbgrader fetch_feedback``. Checked: the gradebook holds
each learner's score and submission time, and the feedback page each learner fetched shows
their score. Everything runs as the hub's system users, in their own servers.
"""

from __future__ import annotations

import base64
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from shlex import quote

import nbformat
import pytest
from course import NOTEBOOKS, SOLUTIONS
from hub import ROOT, Hub, chromium, hub_problem
from nbgrader.api import Gradebook
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from test_check import learners_notebook, points

from autograder import grader_files
from autograder.notebook import answer_names

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.sandbox]
ASSIGNMENT, NOTEBOOK = "02-numpy", "conv2d-numpy"
COURSE_ID = "conv2d-course"  # as the guide's hub settings name it
COURSE = "~/conv2d-course"  # the instructor's clone


@pytest.fixture(scope="module")
def hub():
    if why := hub_problem():
        pytest.skip(f"needs a JupyterHub of system users: {why}")
    running = Hub.start(["ada", "alan", "grace"])
    try:
        running.spawn(*running.users)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def course_repository(hub: Hub) -> Path:
    """What the instructor clones: the grader, and the assignment's source and release."""
    folder = hub.folder / "repository"
    files = dict(grader_files(ROOT))
    for kind, top in (("solutions", SOLUTIONS), ("notebooks", NOTEBOOKS)):
        files[f"{kind}/{ASSIGNMENT}/{NOTEBOOK}.ipynb"] = top / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    for name, path in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(path.read_bytes())
    return folder


def instructor_set_up(repository: Path) -> str:
    """The guide's set-up of the instructor's course folder (a copy in place of ``git
    clone``): their nbgrader commands then use the course in it."""
    return (f"cp -r {quote(str(repository))} {COURSE} && mkdir -p ~/.jupyter && echo "
            "\"load_subconfig('$HOME/conv2d-course/autograder/nbgrader_config.py')\" "
            ">> ~/.jupyter/nbgrader_config.py")


def shell(hub: Hub, user: str, command: str, timeout: float = 120) -> str:
    """``command`` in a terminal of ``user``'s server; what it printed (it must succeed)."""
    status, shown = hub.terminal(user, command, timeout)
    assert status == 0, f"{user}$ {command}\nexit status {status}:\n{shown[-6000:]}"
    return shown


# --- Ada, in JupyterLab ---------------------------------------------------------------------

def element(browser, css: str, text: str = "", timeout: float = 90):
    """The first element matching ``css`` whose text contains ``text``, once there is one."""
    def found(driver):
        return next((e for e in driver.find_elements(By.CSS_SELECTOR, css)
                     if text in e.text and e.is_displayed()), None)
    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.25,  # a list redrawn meanwhile:
                             ignored_exceptions=[StaleElementReferenceException]).until(found)
    except TimeoutException as error:
        page = browser.find_element(By.TAG_NAME, "body").text[-3000:]
        raise AssertionError(f"no {css} showing {text!r} after {timeout} s; the page:\n"
                             f"{page}") from error


def log_in_to_the_assignment_list(browser, hub: Hub, user: str) -> None:
    browser.get(f"{hub.url}/hub/login")
    element(browser, "#username_input").send_keys(user)
    element(browser, "#password_input").send_keys(hub.users[user])
    element(browser, "#login_submit").click()
    element(browser, ".lm-MenuBar-itemLabel", "Nbgrader").click()
    element(browser, 'li.lm-Menu-item[data-command="nbgrader:open-assignment-list"]').click()


def assignment_button(browser, listing: str, label: str):
    return element(browser, f"#{listing}_assignments_list .list_item button", label)


# --- the round trip -----------------------------------------------------------------------------

def test_a_class_on_jupyterhub_hands_out_grades_and_feedback(hub, browser, tmp_path):
    ada, alan, grace = hub.users
    began = utc_now()
    shell(hub, grace, f"{instructor_set_up(course_repository(hub))} && cd {COURSE} && "
                      f"nbgrader release_assignment {ASSIGNMENT}")

    with ThreadPoolExecutor(1) as alans_terminal:  # Alan works while Ada is in the browser
        alan_submits = alans_terminal.submit(
            shell, hub, alan, "python -c 'import convcourse.grading' && "
            f"nbgrader fetch_assignment {ASSIGNMENT} && nbgrader submit {ASSIGNMENT}")
        log_in_to_the_assignment_list(browser, hub, ada)
        assignment_button(browser, "released", "Fetch").click()
        assignment_button(browser, "fetched", "Submit")
        solution = nbformat.read(SOLUTIONS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
        answers = learners_notebook(tmp_path / "ada", dict.fromkeys(answer_names(solution)))
        hub.contents(ada, f"{ASSIGNMENT}/{NOTEBOOK}.ipynb", {
            "type": "notebook", "format": "json",
            "content": nbformat.read(answers, as_version=4)})
        ada_submits = utc_now()
        assignment_button(browser, "fetched", "Submit").click()
        element(browser, "#submitted_assignments_list .list_item", ASSIGNMENT)
        assert "Submitted as:" in alan_submits.result()

    collected = utc_now()
    shell(hub, grace, f"cd {COURSE} && nbgrader collect {ASSIGNMENT}")
    shell(hub, grace, f"cd {COURSE} && python -m autograder.grade {ASSIGNMENT} "
                      "autograder/submitted --workers 2", timeout=300)
    shell(hub, grace, f"cd {COURSE} && nbgrader release_feedback {ASSIGNMENT}")

    element(browser, "#refresh_assignments_list").click()
    element(browser, "#submitted_assignments_list .list_item", "feedback available to fetch")
    assignment_button(browser, "submitted", "Fetch Feedback").click()
    element(browser, "#submitted_assignments_list .list_item", "view feedback")
    shell(hub, alan, f"nbgrader fetch_feedback {ASSIGNMENT}")

    full = sum(points().values())
    book = gradebook(hub, grace, tmp_path)
    assert {learner: score for learner, (score, _) in book.items()} == {ada: full, alan: 0}
    # Each submission's time is when that learner handed it in, not when it was collected.
    assert ada_submits <= book[ada][1] <= collected, (ada_submits, book[ada][1], collected)
    assert began <= book[alan][1] <= collected, (began, book[alan][1], collected)
    for learner, (score, _) in book.items():
        shown = feedback_score(hub, learner)
        assert shown == (score, full), f"{learner}'s feedback shows {shown}, not {score}"


def utc_now() -> datetime:
    """Now, as nbgrader keeps times: naive, in UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def gradebook(hub: Hub, instructor: str, folder: Path) -> dict[str, tuple[float, datetime]]:
    """Each learner's score and submission time in the instructor's gradebook (a copy of
    it, read through their server)."""
    path = "conv2d-course/autograder/gradebook.db?type=file&format=base64&content=1"
    copy = folder / "gradebook.db"
    copy.write_bytes(base64.b64decode(hub.contents(instructor, path)["content"]))
    with Gradebook(f"sqlite:///{copy}", COURSE_ID) as book:
        return {s.student.id: (s.score, s.timestamp)
                for s in book.assignment_submissions(ASSIGNMENT)}


SCORE = re.compile(r"Score:\s*([0-9.]+)\s*/\s*([0-9.]+)")


def feedback_score(hub: Hub, learner: str) -> tuple[float, float]:
    """The score the feedback page that ``learner`` fetched shows (the only one there)."""
    fetched = hub.contents(learner, f"{ASSIGNMENT}/feedback")["content"]
    assert len(fetched) == 1, f"{learner} fetched {[f['name'] for f in fetched]}"
    page = hub.contents(learner, f"{fetched[0]['path']}/{NOTEBOOK}.html")["content"]
    text = re.sub(r"<[^>]+>", " ", page)
    found = SCORE.search(text)
    assert found, f"{learner}'s feedback shows no score:\n{text[:3000]}"
    return float(found.group(1)), float(found.group(2))
