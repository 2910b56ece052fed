"""`make gpu-check` (tests/gpu_check.py) on a machine without a GPU: it says so plainly and
exits 0; its checks' own code runs and passes on the CPU (``--device cpu --quick``); and it
needs nothing a bare GPU machine lacks (only the standard library, torch, numpy, pytest and
scikit-learn, besides the repository's own files).
"""

from __future__ import annotations

import ast
import json
import os
import re
import site
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from conftest import ROOT

SCRIPT = ROOT / "tests" / "gpu_check.py"
#: What a GPU machine is promised besides the standard library.
THIRD_PARTY = {"torch", "numpy", "sklearn", "pytest"}
DISTRIBUTIONS = {"torch", "numpy", "scikit-learn", "pytest"}
#: The repository's own modules the script may import (from its checkout, not installed).
REPOSITORY = {"convcourse", "bench"}
#: Installed here for the course, absent from a bare GPU machine.
FORBIDDEN = {"nbformat", "nbgrader", "nbconvert", "jupyter_core", "jupyter_client",
             "IPython", "traitlets", "matplotlib", "yaml", "autograder"}
MARK = "modules imported: "


def run_script(*args: str, driver: str | None = None) -> subprocess.CompletedProcess:
    """The script (or a driver that runs it) as a user runs it: its own process, this
    environment's Python, no GPU visible even where one is."""
    command = [sys.executable, "-c", driver, str(SCRIPT), *args] if driver else \
        [sys.executable, str(SCRIPT), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, check=False)


#: Runs the script as __main__, then prints as JSON the modules it imported (name: file)
#: and, for each new top-level module, the file of the code that first asked for it.
DRIVER = f"""
import json, runpy, sys
before, importers = set(sys.modules), {{}}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if "." not in name and name not in sys.modules and name not in importers:
            frame = sys._getframe(1)
            while frame and ("importlib" in frame.f_code.co_filename
                             or frame.f_code.co_filename.startswith("<frozen")):
                frame = frame.f_back
            importers[name] = frame.f_code.co_filename if frame else None
        return None

sys.meta_path.insert(0, Watch())
sys.argv = sys.argv[1:]
code = 0
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit:
    code = exit.code
new = {{name: getattr(sys.modules[name], "__file__", None) for name in set(sys.modules) - before}}
print({MARK!r} + json.dumps({{"modules": new, "importers": importers}}))
sys.exit(code)
"""


@pytest.fixture(scope="module")
def dry_run() -> tuple[subprocess.CompletedProcess, dict]:
    """One quick run of every check on the CPU, and what it imported (the driver's JSON)."""
    result = run_script("--device", "cpu", "--quick", driver=DRIVER)
    line = next((line for line in result.stdout.splitlines() if line.startswith(MARK)), None)
    assert line, result.stdout[-3000:] + result.stderr[-3000:]
    return result, json.loads(line.removeprefix(MARK))


def test_without_a_gpu_it_says_so_at_the_top_and_the_end_and_exits_0():
    result = run_script()
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no GPU found" in lines[0] and "no GPU found" in lines[-1], result.stdout
    assert "skipped, needing a GPU:" in result.stdout
    for skipped in ("conv2d_torch values", "ScratchConv2d", "NumpyConv2dFunction", "bench",
                    "notebook 03-torch/conv2d-torch.ipynb runs", "TF32 on"):
        assert re.search(rf"^  - .*{re.escape(skipped)}", result.stdout, re.M), skipped
    assert re.search(r"^PASS  solutions load", result.stdout, re.M), result.stdout


@pytest.mark.slow
def test_every_check_passes_in_a_quick_dry_run_on_the_cpu(dry_run):
    """The checks' own code (comparisons, training, the bench's rows) runs and passes with
    the device set to the CPU, so the GPU run meets no slip of its own."""
    result, _ = dry_run
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    verdicts = re.findall(r"^(PASS|FAIL)  (.+?) \(", result.stdout, re.M)
    assert len(verdicts) >= 10 and all(v == "PASS" for v, _ in verdicts), verdicts
    assert re.search(r"^gpu-check on cpu: (\d+) of \1 checks passed", result.stdout, re.M)
    for row in ("TF32 off      conv2d_torch ", "channels_last F.conv2d "):
        assert row in result.stdout, row
    assert "TF32 on      " not in result.stdout  # a CUDA-only row


def distribution_closure(names: set[str]) -> set[str]:
    """The distributions ``names`` need, transitively (extras left out), normalised."""
    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    seen, todo = set(), [normal(name) for name in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            requirements = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        todo += [normal(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requirements
                 if "extra ==" not in r]
    return seen


def modules_of(distributions: set[str]) -> set[str]:
    """The top-level modules those distributions install."""
    return {module for module, owners in metadata.packages_distributions().items()
            if any(re.sub(r"[-_.]+", "-", owner).lower() in distributions
                   for owner in owners)}


def origin(file: str | None) -> str:
    """Where a module comes from: 'built in' (no file), 'standard library', 'repository',
    or the top-level module it belongs to in site-packages (extension modules that register
    odd names, such as Cython's, are judged by their file)."""
    if file is None:
        return "built in"
    path = Path(file).resolve()
    if path.is_relative_to(ROOT) and not path.is_relative_to(ROOT / ".venv"):
        return "repository"
    sites = [Path(p).resolve() for p in (*site.getsitepackages(), site.getusersitepackages())]
    for folder in sites:
        if path.is_relative_to(folder):
            return path.relative_to(folder).parts[0].split(".")[0]
    stdlib = {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib")}
    if any(path.is_relative_to(folder) for folder in stdlib):
        return "standard library"
    return f"elsewhere ({path})"


@pytest.mark.slow
def test_the_dry_run_imports_only_the_standard_library_torch_numpy_and_sklearn(dry_run):
    """What the run imported, beyond what the interpreter starts with: the standard library,
    the repository's own modules, and the four promised libraries with what they need. A
    library's own optional imports (numpy.f2py trying charset_normalizer, joblib trying
    psutil) are its business: where they are missing, it goes on without them."""
    _, seen = dry_run
    imported, importers = seen["modules"], seen["importers"]
    tops = {name.split(".")[0] for name in imported}
    assert not tops & FORBIDDEN, tops & FORBIDDEN
    libraries = modules_of(distribution_closure(DISTRIBUTIONS))
    allowed = {"built in", "standard library", "repository"} | libraries
    outside = {}
    for name, file in imported.items():
        importer = importers.get(name.split(".")[0])
        if origin(file) not in allowed and origin(importer) not in libraries:
            outside[name] = f"{file}, first asked for by {importer}"
    assert outside == {}
    assert {"torch", "numpy", "sklearn", "convcourse", "bench"} <= tops


def imports_of(tree: ast.AST, *, anywhere: bool) -> set[str]:
    """Dotted names of the modules a tree imports: at module level, or anywhere."""
    nodes = ast.walk(tree) if anywhere else getattr(tree, "body", [])
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def repository_file(name: str) -> Path | None:
    """The file of a repository module (``bench`` is tests/bench.py), or None."""
    parts = name.split(".")
    if parts == ["bench"]:
        return ROOT / "tests" / "bench.py"
    if parts[0] != "convcourse":
        return None
    base = ROOT.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def notebook_imports() -> set[str]:
    """Every import of the solution notebooks' code cells (the script runs them all)."""
    names = set()
    for notebook in sorted((ROOT / "solutions").glob("0[234]-*/*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] == "code":
                try:
                    names |= imports_of(ast.parse("".join(cell["source"])), anywhere=True)
                except SyntaxError:
                    pass  # no IPython syntax in these notebooks; the dry run would say
    return names


def test_the_script_and_what_it_imports_name_no_other_library():
    """Statically: every import in the script, in the notebooks it runs, and at module level
    in the repository modules those import (which is what importing them runs), is the
    standard library, the four promised libraries, or the repository's own."""
    names = imports_of(ast.parse(SCRIPT.read_text()), anywhere=True) | notebook_imports()
    seen, outside = set(), set()
    todo = sorted(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        if parts[0] in REPOSITORY:  # importing a.b.c runs a, a.b and a.b.c
            for path in filter(None, (repository_file(".".join(parts[:i]))
                                      for i in range(1, len(parts) + 1))):
                todo += sorted(imports_of(ast.parse(path.read_text()), anywhere=False))
        elif parts[0] not in THIRD_PARTY | set(sys.stdlib_module_names) | {"__future__"}:
            outside.add(name)
    assert outside == set()
