"""`make bench`: its contenders are right before they are timed, and its table reads as promised.

Nothing here asserts a time: speed is only reported by the bench (design, Numbers).
"""

import contextlib
import io
import os
import re

import bench
import pytest
import torch
from bench import (
    TINY,
    Contender,
    Layer,
    WrongResult,
    forward,
    run,
    solution_contenders,
    solution_functions,
)
from conftest import ROOT, make

from convcourse.grading.cases import conv2d_cases
from convcourse.reference import conv2d_forward

FUNCTIONS = solution_functions()
CONTENDERS = solution_contenders(FUNCTIONS)
CASES = conv2d_cases(seed=0, devices=["cpu"])
FLOAT = r"\d+\.\d+"


@pytest.mark.parametrize("name", [name for name in FUNCTIONS if name != "conv2d_backward"])
def test_every_contender_is_nn_conv2d_on_the_whole_case_grid(name):
    """The fast versions take other routes (depthwise taps, shifted matrix products): each
    gives nn.Conv2d's output for every argument form the graded functions must handle."""
    fn, kind = FUNCTIONS[name], "numpy" if "numpy" in name else "torch"
    for case in CASES:
        x, weight, bias = case.inputs(kind)
        with torch.no_grad():
            out = torch.as_tensor(fn(x, weight, bias, **case.arguments()))
        expected = conv2d_forward(case, *case.inputs()).detach()
        tolerance = {"rtol": 1e-7, "atol": 1e-9} if case.x.dtype == torch.float64 else \
            {"rtol": 1e-4, "atol": 1e-5}
        assert out.dtype == expected.dtype, case.describe()
        assert torch.allclose(out, expected, **tolerance), case.describe()


def test_the_depthwise_layer_takes_the_bench_shape_through_the_fast_versions():
    """The bench's depthwise layer (groups = channels), at a reduced batch, for both."""
    layer = Layer("depthwise", (2, 64, 14, 14), 64, 3, padding=1, groups=64)
    inputs = layer.inputs("cpu")
    for contender in CONTENDERS[:2]:
        reference, call = contender.calls(layer, inputs)
        assert torch.allclose(torch.as_tensor(call()), reference(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding, dilation", [(1, 1), (0, 2)])
def test_the_shifted_products_the_bench_times_alone_add_up_to_the_convolution(padding, dilation):
    """What a missed target's explanation times as "without a copy" is the whole convolution's
    arithmetic: with the wrapped columns dropped, F.conv2d (no bias)."""
    layer = Layer("l", (2, 5, 7, 6), 4, 3, padding=padding, dilation=dilation)
    x, weight, _ = layer.inputs("cpu")
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    h_out, w_out = layer.output_size()
    w = padded.shape[3]
    products = bench.shifted_products(padded, weight, layer)
    out = products().clone()
    rows = torch.nn.functional.pad(out, (0, h_out * w - out.shape[2])).view(2, 4, h_out, w)
    expected = torch.nn.functional.conv2d(x, weight, **layer.arguments())
    assert torch.allclose(rows[..., :w_out], expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(products(), out)  # a second call starts from zero again


def test_flops_are_the_direct_convolution_count():
    layer = Layer("l", (2, 6, 9, 8), 4, 3, stride=2, padding=1, groups=2)
    h_out, w_out = (9 + 2 - 3) // 2 + 1, (8 + 2 - 3) // 2 + 1
    assert layer.output_size() == (h_out, w_out) == (5, 4)
    assert layer.output_size() == tuple(torch.nn.functional.conv2d(
        *layer.inputs("cpu"), **layer.arguments()).shape[2:])
    assert layer.flops() == 2 * 2 * 4 * h_out * w_out * (6 // 2) * 3 * 3


def test_a_wrong_contender_is_refused_before_anything_is_timed(monkeypatch):
    """A contender that flips the kernel (a true convolution) must stop the bench."""

    def flipped(x, weight, bias, **arguments):
        return torch.nn.functional.conv2d(x, weight.flip(2, 3), bias, **arguments)

    monkeypatch.setattr(bench, "rounds", lambda *a, **k: pytest.fail("timed a wrong result"))
    wrong = Contender("flipped", "F.conv2d", forward(flipped, "torch"))
    with pytest.raises(WrongResult, match="flipped disagrees with F.conv2d"):
        bench.bench(TINY, [wrong], "cpu", repeats=2, peaks={"torch": 1e9})


@pytest.fixture(scope="module")
def tiny_table() -> str:
    """What the bench prints for its tiny layers, 2 rounds, with a target set on one of them."""
    targeted = Contender("conv2d_torch_fast", "F.conv2d", CONTENDERS[1].calls,
                         targets={"tiny (": 1e6})
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run(TINY, [targeted, CONTENDERS[0]], repeats=2, devices=["cpu"], peak_size=64)
    return printed.getvalue()


def test_the_table_has_a_machine_line_a_peak_and_one_row_per_timed_call(tiny_table):
    notes = [line for line in tiny_table.splitlines() if line.startswith("note: ")]
    assert all(re.match(r"note: load \d+\.\d on \d+ CPUs: .* --threads 1 ", n) for n in notes)
    lines = [line for line in tiny_table.splitlines() if line not in notes]  # notes: if loaded
    assert re.match(r"machine: .+, \d+ CPUs, load \d+\.\d; torch \S+ \(\d+ threads, \w+, "
                    r"oneDNN (on|off)\); numpy \S+ \(.+\)$", lines[0]), lines[0]
    assert re.match(rf"cpu: float32 64x64 matmul peak torch {FLOAT} GFLOP/s, numpy {FLOAT} "
                    r"GFLOP/s; 2 interleaved rounds per layer$", lines[1]), lines[1]
    assert lines[2].split() == ["layer", "device", "timed", "median", "ratio", "(min-max)",
                                "GFLOP/s", "of", "peak", "target"]
    rows = [line for line in lines if line.startswith("tiny")]
    assert len(rows) == 2 * 3  # F.conv2d and two contenders on each tiny layer
    reference = rf"cpu\s+F\.conv2d\s+{FLOAT} ms\s+{FLOAT}\s+\d+%\s+-$"
    contender = (rf"cpu\s+conv2d_\w+\s+{FLOAT} ms\s+{FLOAT}x\s+\({FLOAT}-{FLOAT}\)\s+{FLOAT}"
                 rf"\s+\d+%\s+(-|<= 1e\+06x PASS)$")
    for row in rows:
        assert re.search(reference, row) or re.search(contender, row), row
    assert sum("PASS" in row for row in rows) == 1  # the target is set on the first layer only


def test_the_targets_are_summed_up_with_pass_or_miss(tiny_table):
    assert re.search(r"^Targets \(median of per-round ratios\): 1 of 1 met$", tiny_table, re.M)
    assert re.search(rf"^  PASS conv2d_torch_fast on tiny \(2x4x9x9 -> 6, k3 p1\): {FLOAT}x "
                     r"F\.conv2d \(target <= 1e\+06x\)$", tiny_table, re.M), tiny_table


#: The whole `make bench` (it grades a class with `make grade`, in the sandbox) is slow.
@pytest.fixture(scope="module")
def quick_bench() -> str:
    """What `make bench BENCH_ARGS=--quick` prints: both benchmarks, run once for the module."""
    result = make("bench", "BENCH_ARGS=--quick")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout


@pytest.mark.sandbox
@pytest.mark.slow
def test_make_bench_reports_every_contender_on_the_worked_examples(quick_bench):
    rows = [line for line in quick_bench.splitlines() if line.startswith("example")]
    # F.conv2d, two fast versions, two model answers; autograd's backward and conv2d_backward
    assert len(rows) == 3 * 7
    assert all(re.search(rf"{FLOAT} ms .*\d+%\s+-$", row) for row in rows), rows


@pytest.mark.sandbox
@pytest.mark.slow
def test_make_bench_reports_both_graders_cost_in_wall_clock_and_cpu_seconds(quick_bench):
    assert re.search(r"^Grading 3 honest submissions of 02-numpy on \d+ CPUs, 1 round\(s\), "
                     r"load \d+\.\d \(--quick",
                     quick_bench, re.M), quick_bench[-2000:]
    for grader in (r"make grade \(sandbox, \d+ workers\)", r"nbgrader autograde \(sequential\)"):
        line = (rf"^{grader}\s+\d+\.\d s\s+\d+\.\d submissions/min\s+\d+\.\d\d "
                r"CPU-s/submission \(wall \d+\.\d s\)")
        assert re.search(line, quick_bench, re.M), quick_bench[-2000:]
    assert re.search(r"^make grade / nbgrader autograde: \d+\.\d\dx faster by the wall clock "
                     r"\(rounds \d+\.\d\d-\d+\.\d\dx\), \d+\.\d\dx less CPU \(rounds "
                     r"\d+\.\d\d-\d+\.\d\dx\)$", quick_bench, re.M), quick_bench[-2000:]
    assert re.search(r"^make grade costs \d+\.\d\d CPU-s per honest 02-numpy submission, "
                     r"sandbox on \(target <= 1\.5\) (PASS|MISS)$",
                     quick_bench, re.M), quick_bench[-2000:]
    # Speed is only reported; the marks are checked: an honest learner gets all of them.
    assert "Both graders gave every learner of 02-numpy full marks." in quick_bench


def test_the_cpu_time_of_a_process_tree_counts_an_orphaned_grandchild():
    """TreeCpu counts a process whose parent exits first (an orphan, as a killed sandbox's
    processes are): the grandchild burns 0.3 CPU-s after its parent is gone, and the count
    holds them. Run in a process of its own, which becomes the subreaper."""
    import subprocess
    import sys

    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    orphan = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {burn!r}])"
    measure = ("import subprocess, sys\nfrom bench_grading import TreeCpu, become_subreaper\n"
               "assert become_subreaper()\nwith TreeCpu() as tree:\n"
               f"    subprocess.run([sys.executable, '-c', {orphan!r}], check=True)\n"
               "print(tree.seconds)")
    result = subprocess.run([sys.executable, "-c", measure], cwd=ROOT / "tests",
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) >= 0.3, result.stdout


def test_the_backward_contender_gives_autograds_three_gradients():
    """Assignment 4's conv2d_backward, as the bench calls it, against autograd's backward."""
    contender = next(c for c in CONTENDERS if c.label == "conv2d_backward")
    for layer in TINY:
        reference, call = contender.calls(layer, layer.inputs("cpu"))
        for got, want in zip(call(), reference(), strict=True):
            assert torch.allclose(torch.as_tensor(got), want, rtol=1e-4, atol=1e-4)


def test_a_backward_pass_can_be_timed_against_autograd_in_a_few_lines():
    """The bench is not tied to F.conv2d: a contender brings its own reference. Here the
    gradients from torch.nn.grad are timed against autograd of F.conv2d."""
    def backward(layer, inputs):
        x, weight, bias = inputs
        grad_out = torch.ones(x.shape[0], layer.out_channels, *layer.output_size())

        def autograd():
            with torch.enable_grad():
                leaves = [t.detach().requires_grad_() for t in inputs]
                torch.nn.functional.conv2d(*leaves, **layer.arguments()).backward(grad_out)
            return tuple(leaf.grad for leaf in leaves)

        def by_hand():
            kwargs = layer.arguments()
            return (torch.nn.grad.conv2d_input(x.shape, weight, grad_out, **kwargs),
                    torch.nn.grad.conv2d_weight(x, weight.shape, grad_out, **kwargs),
                    grad_out.sum((0, 2, 3)))
        return autograd, by_hand

    contender = Contender("torch.nn.grad", "autograd of F.conv2d", backward,
                          flops=lambda layer: 2 * layer.flops())
    rows = bench.bench(TINY, [contender], "cpu", repeats=2, peaks={"torch": 1e9})
    assert [row.label for row in rows] == ["autograd of F.conv2d", "torch.nn.grad"] * 2
    assert all(row.flops == 2 * row.layer.flops() for row in rows)
