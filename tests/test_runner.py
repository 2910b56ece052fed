"""The learner's side (autograder/sandboxed/runner.py), without bubblewrap: the runner lowers
its own limits for good, imports nothing from outside its folder but what the sandbox holds,
and, started as a plain subprocess (the grader's --unsafe mode), runs the cells and answers
requests through a session (autograder/session.py), which notes deaths and timeouts."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import SANDBOXED
from autograder.remote import RemoteClass, RemoteFunction
from autograder.sandbox import Limits, SandboxDied, SandboxTimeout
from autograder.session import Session

#: What the sandbox holds besides the sandboxed folder: the standard library, the
#: environment's torch, numpy and IPython (for magics), and convcourse's grading part.
ALLOWED = {"torch", "numpy", "IPython", "convcourse.grading", "convcourse.reference"}

LIMIT_MYSELF = """
import json, os, resource, sys
sys.path.insert(0, sys.argv[1])
import runner

limits = json.loads(sys.argv[2])
alone = runner.limit_myself(limits)
names = ("RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_NPROC")
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))
    raised = True
except (ValueError, OSError):
    raised = False
print(json.dumps({"alone": alone, "uid": os.getuid(), "path": sys.path[0], "raised": raised,
                  **{name: resource.getrlimit(getattr(resource, name)) for name in names}}))
"""


def limited(limits: dict) -> dict:
    done = subprocess.run([sys.executable, "-I", "-c", LIMIT_MYSELF, str(SANDBOXED),
                           json.dumps(limits)], capture_output=True, text=True, check=True,
                          timeout=60)
    return json.loads(done.stdout)


def test_the_runner_lowers_its_resource_limits():
    before = limited({"uid": -1, "alone": False, "sys_path": ["/nowhere"], "RLIMIT_NPROC": 0,
                      "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 0, "RLIMIT_NOFILE": 0, "RLIMIT_CORE": 0})
    after = limited({"uid": -1, "alone": True, "sys_path": ["/nowhere"], "RLIMIT_NPROC": 0,
                     "RLIMIT_CPU": 30, "RLIMIT_FSIZE": 1 << 20, "RLIMIT_NOFILE": 100,
                     "RLIMIT_CORE": 0})
    assert after["alone"] is True and after["path"] == "/nowhere"
    assert after["RLIMIT_CPU"] == [30, 30] and after["RLIMIT_FSIZE"] == [1 << 20, 1 << 20]
    assert after["RLIMIT_NOFILE"] == [100, 100] and after["RLIMIT_CORE"] == [0, 0]
    assert after["RLIMIT_NPROC"] == before["RLIMIT_NPROC"]  # 0: left alone
    assert before["RLIMIT_CPU"] != [30, 30]


@pytest.mark.skipif(os.getuid() != 0, reason="only root can become another user")
def test_as_root_the_runner_becomes_its_own_user_and_cannot_raise_its_limits_again():
    after = limited({"uid": 61999, "alone": True, "sys_path": [], "RLIMIT_NPROC": 32,
                     "RLIMIT_CPU": 30, "RLIMIT_FSIZE": 1 << 20, "RLIMIT_NOFILE": 100,
                     "RLIMIT_CORE": 0})
    assert after["uid"] == 61999 and after["RLIMIT_NPROC"] == [32, 32]
    assert after["raised"] is False


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (absolute names)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_sandboxed_code_imports_only_what_the_sandbox_holds():
    neighbours = {path.stem for path in SANDBOXED.glob("*.py")}
    outside = {}
    for path in SANDBOXED.rglob("*.py"):
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in neighbours or top == "__future__" \
                    or any(name == ok or name.startswith(f"{ok}.") for ok in ALLOWED):
                continue
            outside.setdefault(path.name, []).append(name)
    assert outside == {}
    assert "seal" in imported_modules(SANDBOXED / "runner.py")  # the check sees imports


CELLS = [
    {"label": "imports", "source": "import numpy as np\nfrom torch import nn\n"},
    {"label": "double", "source": "def double(x):\n    print('doubling')\n    return 2 * x\n"},
    {"label": "timing", "source": "%timeit double(1)\nN = 3\n"},
    {"label": "Box", "source": "class Box(nn.Module):\n    def __init__(self, n):\n"
                               "        super().__init__()\n        self.n = n\n"},
    {"label": "broken", "source": "def broken(:\n"},
    {"label": "scratch", "source": "raise KeyError('scratch')\n"},
    {"label": "leave", "source": "import os\n\ndef leave():\n    os._exit(3)\n"},
]


@pytest.fixture(scope="module")
def session():
    names = ["double", "Box", "N", "broken", "absent", "leave"]
    limits = Limits(call_seconds=20, restarts=2)
    with Session(CELLS, names, slot=0, limits=limits, isolated=False) as session:
        yield session


def test_the_cells_run_and_each_name_is_reported_with_its_kind(session):
    assert session.kinds == {"double": "function", "Box": "class", "N": "other",
                             "broken": "missing", "absent": "missing", "leave": "function"}
    assert session.errors["broken"].type == "SyntaxError"
    scratch = session.errors["scratch"]
    assert (scratch.type, scratch.message) == ("KeyError", "'scratch'")
    assert scratch.bases == ("KeyError", "LookupError", "Exception", "BaseException", "object")
    assert "<cell scratch>" in session.errors["scratch"].traceback
    assert set(session.errors) == {"broken", "scratch"}  # the magic cell ran


def test_a_call_is_answered_and_its_printing_kept(session):
    assert RemoteFunction(session, "double")(21) == 42
    assert RemoteClass(session, "Box")(4).n == 4
    session.stop()  # printing is collected when the process ends
    assert "doubling" in session.printed


def test_a_death_is_noted_and_after_two_the_function_is_not_called_again(session):
    for _ in range(2):
        with pytest.raises(SandboxDied, match="exited with status 3"):
            RemoteFunction(session, "leave")()
    with pytest.raises(SandboxDied, match="is not called again"):
        RemoteFunction(session, "leave")()
    assert sum("while running leave" in note for note in session.notes) == 2
    assert RemoteFunction(session, "double")(1) == 2  # a new process for the others


def test_a_call_that_does_not_answer_in_time_is_stopped():
    cells = [{"label": "wait", "source": "import time\n\ndef wait():\n    time.sleep(60)\n"}]
    with Session(cells, ["wait"], slot=0, limits=Limits(call_seconds=1),
                 isolated=False) as session:
        with pytest.raises(SandboxTimeout, match="did not answer within 1 s"):
            RemoteFunction(session, "wait")()
    assert session.deaths["wait"] == 1
