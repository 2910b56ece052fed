"""`make gpu-check`: the course on a GPU, checked and timed in one run, for the issue note.

No GPU has run the course before: assignment 3 (tensor operations on the GPU) and the
performance chapter's CUDA numbers were only ever tried on a CPU. This script runs the
reference solutions of assignments 2-4 on CUDA against cuDNN (``F.conv2d``) and autograd with
TF32 off, at the design's tolerances, over the course's seeded case grid; trains the
assignment-4 network on CUDA; runs the solution notebooks top to bottom (their graded tests,
hidden ones included, then meet CUDA cases); and times conv2d_torch against cuDNN with TF32
off and on and in channels_last. It prints the device, the library versions, every check
with PASS or FAIL and its numbers, and the timings, and exits non-zero when a check fails.

A GPU machine may offer only a system Python with a CUDA build of torch: the script needs
nothing but the standard library, torch, numpy and scikit-learn (no nbgrader, no Jupyter, no
.venv, no network). It reads the solution notebooks as JSON and imports the repository's own
``convcourse`` package and ``tests/bench.py`` from the checkout it sits in.

Without a GPU it says "no GPU found" at the top and at the end, lists what it skipped, loads
the solutions (the one part that needs no GPU) and exits 0. ``--device cpu`` runs every check
on the CPU instead (the CUDA-only rows skipped): a dry run of the checks' own code on a
machine without a GPU; ``--quick`` makes the run short (no notebooks, tiny bench layers).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
#: The notebooks whose solutions the checks run, and the names each must define.
NEEDED = {
    "02-numpy/conv2d-numpy.ipynb": ("conv2d_numpy", "conv2d_numpy_fast"),
    "03-torch/conv2d-torch.ipynb": ("conv2d_torch", "conv2d_torch_fast", "ScratchConv2d"),
    "04-gradients/conv2d-backward.ipynb": ("conv2d_backward", "NumpyConv2dFunction"),
}
#: The design's tolerances against torch (convcourse.reference.TOLERANCES, restated here so
#: that the report can name them before the package is imported).
TOLERANCES = {torch.float64: {"rtol": 1e-7, "atol": 1e-9},
              torch.float32: {"rtol": 1e-4, "atol": 1e-5}}
#: Seeds of the case grids (convcourse.grading.cases): every run checks the same numbers.
GRID_SEED, GRAD_SEED, TRAIN_SEED = 1600, 1601, 1602


class Failed(AssertionError):
    """A check found something wrong; its message is the report's detail line."""


@dataclass
class Context:
    """What every check is given: where to compute, how much, and the loaded solutions."""

    device: torch.device
    quick: bool
    solutions: dict[str, object] = field(default_factory=dict)
    #: TF32 for cuDNN convolutions and for matrix products as torch started: what a
    #: learner's kernel has (the checks switch both off, the notebooks run with these).
    tf32_defaults: tuple[bool, bool] = field(
        default_factory=lambda: (torch.backends.cudnn.allow_tf32,
                                 torch.backends.cuda.matmul.allow_tf32))

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        """Wait for queued GPU work, so that a clock read after it measures that work."""
        if self.cuda:
            torch.cuda.synchronize(self.device)


@dataclass(frozen=True)
class Check:
    """One line of the report: ``run(context)`` returns the detail, or raises Failed."""

    name: str
    run: Callable[[Context], str]
    quick: bool = True  # also runs under --quick


# ---- Reading the solution notebooks (JSON only: no nbformat, no nbgrader) --------------------

def code_cells(path: Path) -> list[dict]:
    """The notebook's code cells, each with its source joined into one string."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = cell["source"]
            cells.append({**cell, "source": "".join(source) if isinstance(source, list)
                          else source})
    return cells


def nbgrader_metadata(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def import_statements(cells: list[dict]) -> ast.Module:
    """Every import of the notebook's ungraded cells: what its solution cells rely on."""
    nodes = []
    for cell in cells:
        if nbgrader_metadata(cell).get("grade"):
            continue
        try:
            tree = ast.parse(cell["source"])
        except SyntaxError:
            continue  # IPython syntax: holds no import a solution needs
        nodes += [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    return ast.Module(nodes, [])


def solution_namespace(path: Path) -> dict:
    """The notebook's imports and solution cells, run as a module.

    The solution cells of solutions/ are complete code: nbgrader's ``### BEGIN SOLUTION``
    markers are comments, so nothing is stripped. Demonstrations and tests do not run.
    """
    cells = code_cells(path)
    namespace: dict = {"__name__": f"solutions_{path.stem.replace('-', '_')}"}
    exec(compile(import_statements(cells), str(path), "exec"), namespace)  # noqa: S102 (the course's own notebooks)
    for cell in cells:
        if nbgrader_metadata(cell).get("solution"):
            name = nbgrader_metadata(cell).get("grade_id", "?")
            exec(compile(cell["source"], f"{path}:{name}", "exec"), namespace)  # noqa: S102 (idem)
    return namespace


def load_solutions(context: Context) -> str:
    """Define the solutions every later check calls; fail naming what a notebook lacks."""
    counts = []
    for notebook, names in NEEDED.items():
        namespace = solution_namespace(SOLUTIONS / notebook)
        missing = [name for name in names if name not in namespace]
        if missing:
            raise Failed(f"{notebook} defines no {', '.join(missing)}")
        context.solutions.update({name: namespace[name] for name in names})
        counts.append(f"{', '.join(names)} from {notebook}")
    return "; ".join(counts)


# ---- Comparing with torch ---------------------------------------------------------------------

def tolerance_used(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / (atol + rtol |want|) at the design's tolerance for want's dtype:
    at most 1 exactly where torch.allclose holds."""
    tolerance = TOLERANCES[want.dtype]
    got, want = (t.detach().to("cpu", torch.float64) for t in (got, want))
    if want.numel() == 0:
        return 0.0
    allowed = tolerance["atol"] + tolerance["rtol"] * want.abs()
    return float(((got - want).abs() / allowed).max())


class Tally:
    """Many comparisons of one check: how many per dtype, the worst of each, the first few
    problems (a check reports them all at once rather than stopping at the first)."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.worst: dict[str, float] = {}
        self.problems: list[str] = []

    def compare(self, what: str, got, want: torch.Tensor, *, device: bool = True) -> None:
        """One result against torch's: type, shape, dtype, device (unless ``device=False``,
        for NumPy results) and values within the tolerance."""
        dtype = str(want.dtype).removeprefix("torch.")
        self.count[dtype] = self.count.get(dtype, 0) + 1
        if isinstance(got, np.ndarray):
            got = torch.from_numpy(np.ascontiguousarray(got))
        if not isinstance(got, torch.Tensor):
            return self.problem(f"{what}: returned {type(got).__name__}, not a tensor")
        if got.shape != want.shape:
            return self.problem(f"{what}: shape {tuple(got.shape)}, expected "
                                f"{tuple(want.shape)}")
        if got.dtype != want.dtype:
            return self.problem(f"{what}: dtype {got.dtype}, expected {want.dtype}")
        if device and got.device != want.device:
            return self.problem(f"{what}: on {got.device}, expected {want.device}")
        used = tolerance_used(got, want)
        self.worst[dtype] = max(self.worst.get(dtype, 0.0), used)
        if not used <= 1.0:
            self.problem(f"{what}: {used:.3g} times the {dtype} tolerance")
        return None

    def same_kind(self, what: str, got: torch.Tensor, want: torch.Tensor) -> None:
        """A tensor whose values do not matter (a fresh parameter): shape, dtype, device."""
        seen = (tuple(got.shape), got.dtype, got.device)
        expected = (tuple(want.shape), want.dtype, want.device)
        if seen != expected:
            self.problem(f"{what}: shape, dtype, device {seen}, expected {expected}")

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def summary(self) -> str:
        """The detail line: comparisons and worst error per dtype; raises Failed if any
        comparison failed."""
        parts = [f"{dtype}: {count} compared, worst {self.worst.get(dtype, float('nan')):.3g} "
                 "of the tolerance" for dtype, count in self.count.items()]
        text = "; ".join(parts)
        if self.problems:
            shown = "; ".join(self.problems[:3])
            raise Failed(f"{len(self.problems)} problems ({text}): {shown}")
        return text


def grid(context: Context, *, zeros_only: bool = False) -> list:
    """The course's seeded case grid (every spec and awkward case, float64 and float32) on
    the checked device; ``zeros_only`` for assignment 4, whose functions pad with zeros."""
    from convcourse.grading.cases import conv2d_cases

    modes = ("zeros",) if zeros_only else ("zeros", "reflect", "replicate", "circular")
    return sample(context, conv2d_cases(GRID_SEED, devices=[str(context.device)],
                                        padding_modes=modes))


def sample(context: Context, items: list) -> list:
    """All of them; under --quick every third (both dtypes still, fewer of each)."""
    return items[::3] if context.quick else items


def grad_out_for(out: torch.Tensor, seed: int = GRAD_SEED) -> torch.Tensor:
    """A seeded upstream gradient of out's shape, dtype and device."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(out.shape, generator=generator, dtype=torch.float64).to(out.device,
                                                                              out.dtype)


def autograd_reference(case) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """nn.Conv2d's output for the case on its device, the upstream gradient, and the
    gradients autograd gives for x, weight and bias (where there is a bias)."""
    from convcourse.reference import conv2d_forward

    leaves = [t.requires_grad_() for t in case.inputs() if t is not None]
    out = conv2d_forward(case, *leaves)
    grad_out = grad_out_for(out)
    return out.detach(), list(torch.autograd.grad(out, leaves, grad_out)), grad_out


# ---- TF32 -------------------------------------------------------------------------------------

def tf32_flags() -> tuple[bool, bool]:
    """TF32 for cuDNN convolutions and for matrix products, as torch has them now."""
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


@contextlib.contextmanager
def tf32(convolutions: bool, matmul: bool | None = None):
    """TF32 for cuDNN convolutions and (the same unless given) for matrix products inside
    the block, restored after it."""
    saved = tf32_flags()
    torch.backends.cudnn.allow_tf32 = convolutions
    torch.backends.cuda.matmul.allow_tf32 = convolutions if matmul is None else matmul
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def check_tf32_off(context: Context) -> str:
    """The checks' references are exact float32 only with TF32 off: switch it off for the
    rest of the run, and measure how far cuDNN's default TF32 is from exact float32."""
    from convcourse.reference import exact_float32

    defaults = context.tf32_defaults
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    with exact_float32():
        inside = tf32_flags()
    if tf32_flags() != (False, False) or inside != (False, False):
        raise Failed(f"TF32 flags still {tf32_flags()} after switching them off")
    detail = (f"torch's defaults: cudnn.allow_tf32={defaults[0]}, "
              f"cuda.matmul.allow_tf32={defaults[1]}; both off from here on")
    if not context.cuda:
        return detail + " (TF32 exists on CUDA only: nothing to measure here)"
    generator = torch.Generator().manual_seed(GRID_SEED)
    x, weight = (torch.randn(shape, generator=generator).to(context.device)
                 for shape in ((8, 64, 28, 28), (64, 64, 3, 3)))
    with torch.no_grad():
        exact = F.conv2d(x, weight, padding=1)
        with tf32(True):
            rounded = F.conv2d(x, weight, padding=1)
    return (detail + f"; F.conv2d 8x64x28x28 -> 64, k3, float32 with TF32 on: "
            f"{tolerance_used(rounded, exact):.3g} times the float32 tolerance from TF32 off")


# ---- Assignment 2: NumPy, against references computed on the device ---------------------------

def check_numpy_grid(context: Context) -> str:
    """conv2d_numpy (and its fast version) against nn.Conv2d's output computed on the
    device: where the hidden tests of assignment 2 take their references on a GPU machine."""
    from convcourse.reference import reference_conv2d

    tally = Tally()
    for case in grid(context):
        expected = reference_conv2d(case)
        for name in ("conv2d_numpy", "conv2d_numpy_fast"):
            got = context.solutions[name](*case.inputs("numpy"), **case.arguments())
            tally.compare(f"{name}({case.describe()})", got, expected.cpu(), device=False)
    return tally.summary()


# ---- Assignment 3: tensor operations on the device ---------------------------------------------

def check_torch_values(context: Context) -> str:
    """conv2d_torch (and its fast version) on the device: nn.Conv2d's values, on x's device,
    in x's dtype, over the whole grid (every padding mode)."""
    from convcourse.reference import reference_conv2d

    tally = Tally()
    for case in grid(context):
        expected = reference_conv2d(case)
        for name in ("conv2d_torch", "conv2d_torch_fast"):
            with torch.no_grad():
                got = context.solutions[name](*case.inputs(), **case.arguments())
            tally.compare(f"{name}({case.describe()})", got, expected)
    return tally.summary()


def check_torch_gradients(context: Context) -> str:
    """conv2d_torch is differentiable on the device: its gradients for x, weight and bias
    are autograd's of F.conv2d (nn.Conv2d's padding modes included), on x's device."""
    conv2d_torch = context.solutions["conv2d_torch"]
    tally = Tally()
    for case in grid(context):
        _, expected, grad_out = autograd_reference(case)
        leaves = [t.requires_grad_() for t in case.inputs() if t is not None]
        x, weight, *bias = leaves
        out = conv2d_torch(x, weight, bias[0] if bias else None, **case.arguments())
        got = torch.autograd.grad(out, leaves, grad_out)
        for name, g, e in zip(("x", "weight", "bias"), got, expected, strict=False):
            tally.compare(f"grad {name} of conv2d_torch({case.describe()})", g, e)
    return tally.summary()


def layer_arguments(spec, mode: str) -> tuple[tuple, dict]:
    """nn.Conv2d's arguments for a spec of the case grid, in a padding mode."""
    return ((spec.c_in, spec.c_out, spec.kernel_size),
            {"stride": spec.stride, "padding": spec.padding, "dilation": spec.dilation,
             "groups": spec.groups, "bias": spec.bias, "padding_mode": mode})


def scratch_configurations(context: Context) -> list[tuple[str, tuple, dict, object]]:
    """(label, args, kwargs, spec) for every spec of the grid, every padding mode of the
    padded specs, float64 and float32, made with device= and dtype= on the checked device."""
    from convcourse.grading.cases import PADDED, SPECS

    configurations = []
    for dtype in (torch.float64, torch.float32):
        for name, spec in SPECS.items():
            for mode in (("zeros", "reflect", "replicate", "circular") if name in PADDED
                         else ("zeros",)):
                args, kwargs = layer_arguments(spec, mode)
                kwargs.update(device=context.device, dtype=dtype)
                configurations.append((f"{name}, {mode}, {dtype}", args, kwargs, spec))
    return sample(context, configurations)


def compare_layers(tally: Tally, label: str, layer: nn.Module, reference: nn.Conv2d,
                   x: torch.Tensor) -> None:
    """Parameters (names, shapes, dtypes, devices), then, with nn.Conv2d's state_dict loaded,
    the outputs and the gradients for x and every parameter."""
    mine, theirs = dict(layer.named_parameters()), dict(reference.named_parameters())
    if mine.keys() != theirs.keys():
        return tally.problem(f"{label}: parameters {sorted(mine)}, expected {sorted(theirs)}")
    for name, parameter in theirs.items():
        tally.same_kind(f"{label}: {name}", mine[name], parameter)
    layer.load_state_dict(reference.state_dict())
    x_mine, x_theirs = (x.detach().clone().requires_grad_() for _ in range(2))
    out, expected = layer(x_mine), reference(x_theirs)
    tally.compare(f"{label}: output", out.detach(), expected.detach())
    grad_out = grad_out_for(expected)
    got = torch.autograd.grad(out, [x_mine, *mine.values()], grad_out)
    want = torch.autograd.grad(expected, [x_theirs, *theirs.values()], grad_out)
    for name, g, w in zip(["x", *theirs], got, want, strict=True):
        tally.compare(f"{label}: grad {name}", g, w)
    return None


def check_scratch_conv2d(context: Context) -> str:
    """ScratchConv2d on the device: built with device= and dtype= (its parameters there, in
    that dtype), nn.Conv2d's state_dict loaded, the same outputs and gradients; and a layer
    built on the CPU then moved with .to(device)."""
    from convcourse.grading.cases import make_case

    scratch_conv2d = context.solutions["ScratchConv2d"]
    tally = Tally()
    generator = torch.Generator().manual_seed(GRID_SEED)
    for label, args, kwargs, spec in scratch_configurations(context):
        torch.manual_seed(GRID_SEED)
        reference = nn.Conv2d(*args, **kwargs)
        layer = scratch_conv2d(*args, **kwargs)
        x = make_case(spec, generator=generator, dtype=kwargs["dtype"],
                      device=context.device).x
        compare_layers(tally, label, layer, reference, x)
    moved = scratch_conv2d(4, 6, 3, padding=1, groups=2).to(context.device)
    reference = nn.Conv2d(4, 6, 3, padding=1, groups=2).to(context.device)
    x = torch.randn(2, 4, 7, 7, generator=generator).to(context.device)
    compare_layers(tally, "ScratchConv2d(4, 6, 3, padding=1, groups=2).to(device)", moved,
                   reference, x)
    return tally.summary()


# ---- Assignment 4: NumPy gradients and the autograd Function ----------------------------------

def check_backward_grid(context: Context) -> str:
    """conv2d_backward (NumPy) against autograd of F.conv2d computed on the device, over the
    zero-padding grid: where assignment 4's hidden tests take their references on a GPU."""
    conv2d_backward = context.solutions["conv2d_backward"]
    tally = Tally()
    for case in grid(context, zeros_only=True):
        _, expected, grad_out = autograd_reference(case)
        x, weight, _ = case.inputs("numpy")
        got = conv2d_backward(grad_out.cpu().numpy(), x, weight, **case.arguments(
            padding_mode=False), bias=case.bias is not None)
        for name, g, e in zip(("x", "weight", "bias"), got, expected, strict=False):
            tally.compare(f"grad {name} of conv2d_backward({case.describe()})", g,
                          e.cpu(), device=False)
    return tally.summary()


def apply_function(function, case, leaves: list[torch.Tensor]) -> torch.Tensor:
    """``function.apply`` with the case's arguments in F.conv2d's order."""
    x, weight, *bias = leaves
    return function.apply(x, weight, bias[0] if bias else None, case.stride, case.padding,
                          case.dilation, case.groups)


def check_function_grid(context: Context) -> str:
    """NumpyConv2dFunction with tensors on the device: its NumPy work runs on the CPU, and
    its output and gradients come back on the device, equal to F.conv2d's and autograd's."""
    function = context.solutions["NumpyConv2dFunction"]
    tally = Tally()
    for case in grid(context, zeros_only=True):
        expected_out, expected, grad_out = autograd_reference(case)
        leaves = [t.requires_grad_() for t in case.inputs() if t is not None]
        out = apply_function(function, case, leaves)
        tally.compare(f"NumpyConv2dFunction({case.describe()})", out.detach(), expected_out)
        got = torch.autograd.grad(out, leaves, grad_out)
        for name, g, e in zip(("x", "weight", "bias"), got, expected, strict=False):
            tally.compare(f"grad {name} of NumpyConv2dFunction({case.describe()})", g, e)
    return tally.summary()


#: gradcheck's configurations: the assignment's two (x shape, weight shape, arguments).
GRADCHECK = [((1, 2, 5, 5), (3, 2, 3, 3), {}),
             ((2, 4, 7, 6), (6, 2, 3, 2), {"stride": (2, 1), "padding": (1, 2),
                                           "dilation": (1, 2), "groups": 2})]


def check_gradcheck(context: Context) -> str:
    """torch.autograd.gradcheck of NumpyConv2dFunction in float64 with x, weight and bias on
    the device: finite differences agree with its backward across the device boundary."""
    function = context.solutions["NumpyConv2dFunction"]
    generator = torch.Generator().manual_seed(GRAD_SEED)
    for x_shape, weight_shape, arguments in GRADCHECK:
        tensors = [torch.randn(shape, generator=generator, dtype=torch.float64)
                   .to(context.device).requires_grad_()
                   for shape in (x_shape, weight_shape, weight_shape[:1])]
        options = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **arguments}

        def call(x, weight, bias, options=options):
            return function.apply(x, weight, bias, options["stride"], options["padding"],
                                  options["dilation"], options["groups"])

        if not torch.autograd.gradcheck(call, tuple(tensors), raise_exception=False):
            raise Failed(f"gradcheck fails for x {x_shape}, weight {weight_shape}, {arguments}")
    return (f"passed for {len(GRADCHECK)} configurations, x, weight and bias on "
            f"{context.device}, float64")


def digit_networks(context: Context) -> dict[str, nn.Module]:
    """The assignment's digit CNN three times from one set of float64 weights: nn.Conv2d on
    the CPU (the truth), nn.Conv2d on the device, NumpyConv2dFunction on the device."""
    from convcourse.grading.backward_checks import FunctionConv2d, digit_network

    function = context.solutions["NumpyConv2dFunction"]
    torch.manual_seed(TRAIN_SEED)
    cpu = digit_network(nn.Conv2d).double()
    library = copy.deepcopy(cpu).to(context.device)
    learner = digit_network(lambda *a, **k: FunctionConv2d(function, *a, **k)).double()
    learner.load_state_dict(cpu.state_dict())
    return {"nn.Conv2d (CPU, the truth)": cpu, f"nn.Conv2d on {context.device}": library,
            f"NumpyConv2dFunction on {context.device}": learner.to(context.device)}


def train_side_by_side(context: Context, networks: dict[str, nn.Module], steps: int,
                       batch_size: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """SGD with momentum on the same batches of real digits: each network's losses, step by
    step, and its median seconds per step."""
    from convcourse.grading.backward_checks import load_digit_data

    images, labels, _, _ = load_digit_data()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(TRAIN_SEED))
    optimizers = {name: torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
                  for name, net in networks.items()}
    losses = {name: [] for name in networks}
    seconds = {name: [] for name in networks}
    for step in range(steps):
        batch = order[step * batch_size:(step + 1) * batch_size]
        for name, net in networks.items():
            where = next(net.parameters()).device
            x, y = images[batch].to(where), labels[batch].to(where)
            context.sync()
            start = time.perf_counter()
            optimizers[name].zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            optimizers[name].step()
            losses[name].append(loss.item())
            context.sync()
            seconds[name].append(time.perf_counter() - start)
    return losses, {name: statistics.median(times) for name, times in seconds.items()}


def check_training(context: Context) -> str:
    """Assignment 4's training comparison on the device: the network built on
    NumpyConv2dFunction (data to the CPU and back inside each call) and the one built on
    nn.Conv2d give the CPU's nn.Conv2d losses at every step (float64, rtol 1e-7), and the
    trained weights stay on the device."""
    networks = digit_networks(context)
    steps = 4 if context.quick else 16
    losses, seconds = train_side_by_side(context, networks, steps, batch_size=64)
    truth_name, truth = next(iter(losses.items()))
    for name, curve in losses.items():
        for step, (got, want) in enumerate(zip(curve, truth, strict=True)):
            if not abs(got - want) <= 1e-9 + 1e-7 * abs(want):
                raise Failed(f"{name}: loss {got:.12g} at step {step}, {truth_name} "
                             f"{want:.12g}")
    for name in list(networks)[1:]:
        where = {t.device for p in networks[name].parameters() for t in (p, p.grad)}
        if where != {context.device}:
            raise Failed(f"{name}: parameters and gradients on {where} after training")
    worst = max(abs(got - want) / abs(want) for curve in losses.values()
                for got, want in zip(curve, truth, strict=True))
    # The CPU reference's time is left out: it runs right after the NumPy step on the same
    # cores, and a dry run on 2 loaded CPUs read 188 ms/step there against 1.6 ms/step for
    # the same network in the next slot: a reading of the machine, not of the network.
    timing = ", ".join(f"{name} {seconds[name] * 1e3:.1f} ms/step" for name in list(networks)[1:])
    return (f"{steps} steps of 64 digits: loss {truth[0]:.6f} -> {truth[-1]:.6f}; largest "
            f"relative difference between the {len(networks)} networks' losses {worst:.2g}; "
            f"{timing}")


# ---- The solution notebooks, top to bottom ---------------------------------------------------

def run_notebook(context: Context, notebook: str) -> str:
    """Every code cell of a solution notebook in order, as a learner's kernel would run it
    (torch's TF32 defaults, device = the checked device): its graded tests, hidden ones
    included, meet the case grid's CUDA cases and the course's checks run on CUDA tensors."""
    path = SOLUTIONS / notebook
    namespace: dict = {"__name__": f"notebook_{path.stem.replace('-', '_')}"}
    cells, graded = code_cells(path), 0
    output = io.StringIO()
    for index, cell in enumerate(cells):
        name = nbgrader_metadata(cell).get("grade_id", f"cell {index}")
        try:
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output), \
                    tf32(*context.tf32_defaults):
                exec(compile(cell["source"], f"{notebook}:{name}", "exec"), namespace)  # noqa: S102 (the course's own notebooks)
        except Exception as error:  # noqa: BLE001 (any error of a cell is the check's failure)
            tail = output.getvalue().strip().splitlines()[-3:]
            raise Failed(f"{name}: {type(error).__name__}: {str(error)[:500]}"
                         + (f" (last output: {' | '.join(tail)})" if tail else "")) from None
        if name == "setup" and "device" in namespace:
            namespace["device"] = str(context.device)
        graded += bool(nbgrader_metadata(cell).get("grade"))
    return f"{len(cells)} code cells ran; {graded} graded tests (hidden tests included) passed"


def notebook_check(notebook: str) -> Check:
    return Check(f"notebook {notebook} runs", lambda context: run_notebook(context, notebook),
                 quick=False)


# ---- The bench's CUDA rows ---------------------------------------------------------------------

@dataclass(frozen=True)
class Mode:
    """How a layer is run: TF32 allowed or not, tensors contiguous or channels_last."""

    name: str
    tf32: bool = False
    channels_last: bool = False

    def arrange(self, inputs: tuple) -> tuple:
        if not self.channels_last:
            return inputs
        x, weight, bias = inputs
        return (x.contiguous(memory_format=torch.channels_last),
                weight.contiguous(memory_format=torch.channels_last), bias)

    def wrap(self, call: Callable[[], object]) -> Callable[[], object]:
        """The call with this mode's TF32 switches (setting them costs the same for all)."""
        def run():
            with tf32(self.tf32):
                return call()
        return run


EXACT = Mode("TF32 off")
MODES = [EXACT, Mode("TF32 on", tf32=True), Mode("channels_last", channels_last=True)]
BENCH_COLUMNS = (f"{'layer':40} {'mode':13} {'timed':17} {'median':>11} {'ratio':>6} "
                 f"{'(min-max)':>15} {'vs exact':>8} {'GFLOP/s':>8} {'err/tol':>8}")


def bench_error(got, want: torch.Tensor) -> float:
    """Error in units of the bench's own agreement rule (tests/bench.py, check_agrees):
    rtol 1e-4 and atol 1e-5 times the largest |value|; at most 1 where it agrees."""
    got, want = (torch.as_tensor(t).detach().to("cpu", torch.float64) for t in (got, want))
    scale = max(float(want.abs().max()), 1.0)
    return float(((got - want).abs() / (1e-4 * want.abs() + 1e-5 * scale)).max())


def layer_calls(context: Context, layer, modes: list[Mode]) -> tuple[dict, dict]:
    """Every (mode, F.conv2d or contender) call of one layer, and the error of each one's
    result from exact F.conv2d; raises Failed where an exact mode's contender disagrees."""
    import bench

    inputs = layer.inputs(str(context.device))
    calls, errors = {}, {}
    with torch.no_grad(), tf32(False):
        exact = F.conv2d(*inputs, **layer.arguments())
    for mode in modes:
        tensors = mode.arrange(inputs)
        for label in ("conv2d_torch", "conv2d_torch_fast"):
            reference, own = bench.forward(context.solutions[label], "torch")(layer, tensors)
            calls[(mode.name, "F.conv2d")] = mode.wrap(reference)
            calls[(mode.name, label)] = mode.wrap(own)
        for (name, label), call in calls.items():
            if name == mode.name:
                with torch.no_grad():
                    result = call()
                errors[(name, label)] = bench_error(result, exact)
                if not mode.tf32:
                    try:
                        bench.check_agrees(f"{label} ({name})", "F.conv2d", result, exact)
                    except bench.WrongResult as wrong:
                        raise Failed(f"{layer.name}: {wrong}") from None
    return calls, errors


def bench_layer(context: Context, layer, modes: list[Mode], repeats: int) -> list[str]:
    """One layer's rows: every call timed in the same interleaved rounds (bench.rounds), the
    median time, the median of per-round ratios to F.conv2d in the same mode and to exact
    F.conv2d (TF32 off, contiguous), GFLOP/s and the error from exact F.conv2d."""
    import bench

    calls, errors = layer_calls(context, layer, modes)
    keyed = {f"{name}|{label}": call for (name, label), call in calls.items()}
    with torch.no_grad():
        times = bench.rounds(keyed, repeats, context.sync)
    exact = times[f"{EXACT.name}|F.conv2d"]
    rows = []
    for name, label in calls:
        own = times[f"{name}|{label}"]
        same = [t / r for t, r in zip(own, times[f"{name}|F.conv2d"], strict=True)]
        versus = statistics.median(t / r for t, r in zip(own, exact, strict=True))
        median = statistics.median(own)
        ratio, spread = ((f"{statistics.median(same):5.2f}x",
                          f"({min(same):.2f}-{max(same):.2f})") if label != "F.conv2d"
                         else ("", ""))
        rows.append(f"{layer.name:40} {name:13} {label:17} {median * 1e3:8.3f} ms "
                    f"{ratio:>6} {spread:>15} {versus:7.2f}x "
                    f"{layer.flops() / median / 1e9:8.1f} {errors[(name, label)]:8.3f}")
    return rows


def check_bench(context: Context) -> str:
    """conv2d_torch and conv2d_torch_fast against F.conv2d (cuDNN on a GPU) on the bench's
    layers, TF32 off and on and in channels_last, in interleaved rounds: the numbers the
    performance chapter's CUDA sections need. A timing is reported, never asserted."""
    import bench

    layers = bench.TINY if context.quick else bench.LAYERS
    repeats = 3 if context.quick else 15
    modes = [mode for mode in MODES if context.cuda or not mode.tf32]
    rows = [f"{repeats} interleaved rounds per layer, float32, medians; TF32 on: for cuDNN "
            "and matrix products; ratio: to F.conv2d in the same mode; vs exact: to F.conv2d "
            "with TF32 off, contiguous; err/tol: error from exact F.conv2d in units of the "
            "bench's agreement tolerance",
            BENCH_COLUMNS]
    for layer in layers:
        rows += bench_layer(context, layer, modes, repeats)
    return "\n".join(rows)


# ---- The report ------------------------------------------------------------------------------

CHECKS = [
    Check("solutions load", load_solutions),
    Check("TF32 off", check_tf32_off),
    Check("assignment 2: conv2d_numpy vs nn.Conv2d on the device", check_numpy_grid),
    Check("assignment 3: conv2d_torch values, dtype, device", check_torch_values),
    Check("assignment 3: conv2d_torch gradients vs autograd", check_torch_gradients),
    Check("assignment 3: ScratchConv2d vs nn.Conv2d", check_scratch_conv2d),
    Check("assignment 4: conv2d_backward vs autograd on the device", check_backward_grid),
    Check("assignment 4: NumpyConv2dFunction on the device", check_function_grid),
    Check("assignment 4: gradcheck of NumpyConv2dFunction", check_gradcheck),
    Check("assignment 4: digit training, nn.Conv2d vs NumpyConv2dFunction", check_training),
    *(notebook_check(notebook) for notebook in NEEDED),
    Check("bench: conv2d_torch vs F.conv2d", check_bench),
]
#: What runs on the CUDA path only, whatever --device says (listed as skipped elsewhere).
CUDA_ONLY = ["TF32 on: cuDNN's default float32 convolutions measured against TF32 off",
             "bench rows with TF32 on", "cuDNN and GPU versions in the header"]


def run_check(check: Check, context: Context) -> bool:
    """Run one check and print its PASS or FAIL line with the detail and its seconds."""
    start = time.perf_counter()
    try:
        detail, passed = check.run(context), True
    except Failed as failure:
        detail, passed = str(failure), False
    except Exception as error:  # noqa: BLE001 (a crash is the check's failure, reported)
        where = traceback.extract_tb(error.__traceback__)[-1]
        detail = (f"{type(error).__name__}: {str(error)[:500]} (at {Path(where.filename).name}"
                  f":{where.lineno})")
        passed = False
    seconds = time.perf_counter() - start
    first, *rest = detail.splitlines() or [""]
    print(f"{'PASS' if passed else 'FAIL'}  {check.name} ({seconds:.1f} s): {first}")
    for line in rest:
        print(f"      {line}")
    sys.stdout.flush()
    return passed


def versions() -> str:
    """Python, torch (and the CUDA it was built for), numpy: one line."""
    return (f"Python {platform.python_version()}, torch {torch.__version__} (built for CUDA "
            f"{torch.version.cuda}), numpy {np.__version__}")


def gpu_lines(device: torch.device) -> list[str]:
    """The GPU, its memory and capability, cuDNN's version and settings, the driver."""
    properties = torch.cuda.get_device_properties(device)
    lines = [f"device: {properties.name} ({device}), {properties.total_memory / 2**30:.1f} "
             f"GiB, compute capability {properties.major}.{properties.minor}, "
             f"{properties.multi_processor_count} SMs; {torch.cuda.device_count()} GPU(s)",
             f"cuDNN {torch.backends.cudnn.version()} (enabled {torch.backends.cudnn.enabled},"
             f" benchmark {torch.backends.cudnn.benchmark}, deterministic "
             f"{torch.backends.cudnn.deterministic})"]
    if shutil.which("nvidia-smi"):
        found = subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                                "--format=csv,noheader"], capture_output=True, text=True,
                               timeout=30, check=False)
        drivers = found.stdout.split()
        lines.append(f"NVIDIA driver {drivers[0] if drivers else '? (nvidia-smi said nothing)'}")
    return lines


def no_gpu(context: Context) -> int:
    """Say plainly that no GPU is here, list what would have run, load the solutions (the
    part that needs no GPU) and exit 0 unless that fails."""
    why = ("this torch is a CPU-only build" if torch.version.cuda is None else
           f"this torch is built for CUDA {torch.version.cuda}, but no GPU or driver answers")
    banner = f"gpu-check: no GPU found (torch.cuda.is_available() is False: {why})"
    print(banner)
    print(versions())
    skipped = [check.name for check in CHECKS if check.run is not load_solutions] + CUDA_ONLY
    print("skipped, needing a GPU:", *(f"  - {name}" for name in skipped), sep="\n")
    print("runs here: loading the solutions only (dry run of every check on the CPU: "
          "--device cpu)", flush=True)
    loaded = run_check(CHECKS[0], context)
    print(f"{banner}; skipped {len(skipped)} checks (listed at the top); exit status "
          f"{0 if loaded else 1}")
    return 0 if loaded else 1


def header(context: Context) -> None:
    print(f"gpu-check: the conv2d-course on {context.device}"
          + (" (dry run on the CPU: --device cpu)" if not context.cuda else ""))
    print(versions())
    for line in gpu_lines(context.device) if context.cuda else []:
        print(line)
    print(f"{os.cpu_count()} CPUs, torch {torch.get_num_threads()} threads; tolerances: "
          f"float64 {TOLERANCES[torch.float64]}, float32 {TOLERANCES[torch.float32]}",
          flush=True)


def run_all(context: Context) -> int:
    """Header, every check that applies, the tally; the exit status (1 if any failed)."""
    started = time.perf_counter()
    header(context)
    chosen = [check for check in CHECKS if check.quick or not context.quick]
    skipped = [check.name for check in CHECKS if check not in chosen]
    if not context.cuda:
        skipped += CUDA_ONLY
    failed = []
    for check in chosen:
        if not run_check(check, context):
            failed.append(check.name)
            if check.run is load_solutions:
                break  # every later check calls the solutions
    if skipped:
        print("skipped:", "; ".join(skipped))
    print(f"gpu-check on {context.device}: {len(chosen) - len(failed)} of {len(chosen)} "
          f"checks passed" + (f", FAILED: {'; '.join(failed)}" if failed else "")
          + f" ({time.perf_counter() - started:.0f} s)")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true",
                        help="a short run: a third of the case grid, no notebooks, tiny bench "
                             "layers, 4 training steps")
    options = parser.parse_args(argv)
    for path in (ROOT / "tests", ROOT):  # convcourse and bench.py, from this checkout
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    # nn.Conv2d's note that 'same' padding with an even kernel costs a copy: expected here.
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
    device = torch.device(options.device)
    context = Context(device, options.quick)
    if context.cuda and not torch.cuda.is_available():
        return no_gpu(context)
    if context.cuda and device.index is None:  # tensors report the index: compare alike
        context.device = torch.device("cuda", torch.cuda.current_device())
    return run_all(context)


if __name__ == "__main__":
    sys.exit(main())
