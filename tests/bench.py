"""`make bench`: the reference solutions' speed against F.conv2d, measured in one run.

Each solution notebook has a model answer, the clear version learners read (conv2d_numpy,
conv2d_torch), and beside it a version arranged for speed (conv2d_numpy_fast,
conv2d_torch_fast). For each layer (the book's worked examples, the design's CIFAR-like and
ResNet-like layers, a depthwise layer) every contender is first checked against its reference
(torch.allclose; a wrong contender stops the bench), then all of them are timed in rounds: each
round calls every contender and every reference once, in an order that rotates from round to
round, so a change in the machine's load touches them alike. Reported per contender: the
median time, the median of its per-round ratios to its reference (the same round's time of
that reference) with their spread (min-max), its GFLOP/s (direct-convolution count) and the
fraction of the float32 matrix-multiply peak measured at the start of the same run.

The targets (design) hold on the median ratio: conv2d_numpy_fast <= 2.5x and conv2d_torch_fast
<= 1.5x F.conv2d on CPU for the CIFAR-like and ResNet-like layers, and both <= 4x for the
depthwise layer; assignment 4's conv2d_backward (NumPy) <= 3x autograd's backward pass of
F.conv2d on the ResNet-like layer. For a missed target the bench measures what limits it.

To time something else, add a Contender to the list solution_contenders() returns: a label,
the name of its reference, a function ``calls(layer, inputs) -> (reference call, contender
call)``, and optionally its kind, FLOP count and targets. The two calls' results (a tensor or
array, or a tuple of them, such as three gradients) must agree. All calls run under
torch.no_grad(): a reference that needs autograd opens torch.enable_grad() itself.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from convcourse.grading import timing
from convcourse.reference import exact_float32

SOLUTIONS_NEEDED = {"02-numpy/conv2d-numpy.ipynb": ("conv2d_numpy", "conv2d_numpy_fast"),
                    "03-torch/conv2d-torch.ipynb": ("conv2d_torch", "conv2d_torch_fast"),
                    "04-gradients/conv2d-backward.ipynb": ("conv2d_backward",)}


@dataclass(frozen=True)
class Layer:
    """One F.conv2d call: x (N, C_in, H, W) and the layer's arguments."""

    name: str
    x_shape: tuple[int, int, int, int]
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1

    def arguments(self) -> dict:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "groups": self.groups}

    def output_size(self) -> tuple[int, int]:
        span = self.dilation * (self.kernel_size - 1) + 1
        return tuple((size + 2 * self.padding - span) // self.stride + 1
                     for size in self.x_shape[2:])

    def flops(self) -> int:
        """Multiplications and additions of the direct convolution, 2 per tap and output."""
        n, c_in = self.x_shape[:2]
        h_out, w_out = self.output_size()
        return (2 * n * self.out_channels * h_out * w_out * (c_in // self.groups)
                * self.kernel_size ** 2)

    def inputs(self, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Seeded (x, weight, bias), float32, on ``device``."""
        generator = torch.Generator().manual_seed(0)
        c_in = self.x_shape[1]
        x = torch.randn(*self.x_shape, generator=generator)
        weight = torch.randn(self.out_channels, c_in // self.groups, self.kernel_size,
                             self.kernel_size, generator=generator)
        bias = torch.randn(self.out_channels, generator=generator)
        return tuple(t.to(device) for t in (x, weight, bias))


LAYERS = [
    Layer("example 1 (1x1x28x28 -> 16, k3 p1)", (1, 1, 28, 28), 16, 3, padding=1),
    Layer("example 2 (1x3x64x64 -> 32, k5 s2 p2)", (1, 3, 64, 64), 32, 5, stride=2, padding=2),
    Layer("example 3 (1x1x28x28 -> 8, k3 p1 d2)", (1, 1, 28, 28), 8, 3, padding=1, dilation=2),
    Layer("CIFAR-like (64x3x32x32 -> 64, k3 p1)", (64, 3, 32, 32), 64, 3, padding=1),
    Layer("ResNet-like (8x64x56x56 -> 64, k3 p1)", (8, 64, 56, 56), 64, 3, padding=1),
    Layer("depthwise (8x64x56x56 -> 64, k3 p1 g64)", (8, 64, 56, 56), 64, 3, padding=1,
          groups=64),
]
#: Tiny layers for a smoke test: the table's format, not a measurement.
TINY = [Layer("tiny (2x4x9x9 -> 6, k3 p1)", (2, 4, 9, 9), 6, 3, padding=1),
        Layer("tiny depthwise (2x4x9x9 -> 4, k3 p1 g4)", (2, 4, 9, 9), 4, 3, padding=1,
              groups=4)]


@dataclass(frozen=True)
class Contender:
    """Something timed against a reference on each layer.

    ``calls(layer, inputs)`` returns the reference call and the contender call (no
    arguments) for ``layer``'s ``inputs`` (x, weight, bias tensors); their results must agree.
    ``targets`` maps the start of a layer's name to the largest median ratio allowed on CPU.
    ``kind`` is 'numpy' (CPU only, its peak is NumPy's matmul) or 'torch'.
    """

    label: str
    reference: str
    calls: Callable[[Layer, tuple], tuple[Callable[[], object], Callable[[], object]]]
    kind: str = "torch"
    flops: Callable[[Layer], int] = Layer.flops
    targets: dict[str, float] = field(default_factory=dict)

    def target(self, layer: Layer, device: str) -> float | None:
        if device != "cpu":
            return None
        return next((t for start, t in self.targets.items() if layer.name.startswith(start)),
                    None)


def forward(fn: Callable, kind: str) -> Callable[[Layer, tuple], tuple]:
    """``calls`` for a forward convolution ``fn(x, weight, bias, **arguments)`` against F.conv2d;
    for ``kind='numpy'`` it gets NumPy arrays."""
    def calls(layer: Layer, inputs: tuple) -> tuple[Callable, Callable]:
        arguments = layer.arguments()
        own = tuple(t.cpu().numpy() for t in inputs) if kind == "numpy" else inputs
        return partial(F.conv2d, *inputs, **arguments), partial(fn, *own, **arguments)
    return calls


def backward(fn: Callable) -> Callable[[Layer, tuple], tuple]:
    """``calls`` for a NumPy ``conv2d_backward(grad_out, x, weight, ...)`` against autograd's
    backward pass of F.conv2d (its forward recorded once, outside the timing), for a seeded
    grad_out: both give the gradients for x, weight and bias."""
    def calls(layer: Layer, inputs: tuple) -> tuple[Callable, Callable]:
        arguments = layer.arguments()
        generator = torch.Generator().manual_seed(1)
        grad_out = torch.randn(layer.x_shape[0], layer.out_channels, *layer.output_size(),
                               generator=generator).to(inputs[0].device)
        with torch.enable_grad():  # the bench times under no_grad
            leaves = [t.detach().requires_grad_() for t in inputs]
            out = F.conv2d(*leaves, **arguments)

        def autograd():
            with torch.enable_grad():
                return torch.autograd.grad(out, leaves, grad_out, retain_graph=True)

        arrays = [t.cpu().numpy() for t in (grad_out, *inputs[:2])]
        return autograd, partial(fn, *arrays, **arguments, bias=True)
    return calls


def solution_functions() -> dict[str, Callable]:
    """The solutions' conv2d functions by name, defined from the instructor's notebooks."""
    from course import SOLUTIONS, definitions  # the grader's helpers: only for the solutions

    fns = {}
    for notebook, names in SOLUTIONS_NEEDED.items():
        defined = definitions(SOLUTIONS / notebook)
        fns.update({name: defined[name] for name in names})
    return fns


def solution_contenders(fns: dict[str, Callable] | None = None) -> list[Contender]:
    """The fast versions, which the targets are for, and the model answers (no target)."""
    fns = fns or solution_functions()
    numpy_targets = {"CIFAR-like": 2.5, "ResNet-like": 2.5, "depthwise": 4.0}
    torch_targets = {"CIFAR-like": 1.5, "ResNet-like": 1.5, "depthwise": 4.0}
    return [
        Contender("conv2d_numpy_fast", "F.conv2d", forward(fns["conv2d_numpy_fast"], "numpy"),
                  kind="numpy", targets=numpy_targets),
        Contender("conv2d_torch_fast", "F.conv2d", forward(fns["conv2d_torch_fast"], "torch"),
                  targets=torch_targets),
        Contender("conv2d_numpy", "F.conv2d", forward(fns["conv2d_numpy"], "numpy"),
                  kind="numpy"),
        Contender("conv2d_torch", "F.conv2d", forward(fns["conv2d_torch"], "torch")),
        # grad_x and grad_weight: each as many multiply-adds as the forward pass
        Contender("conv2d_backward", "autograd of F.conv2d", backward(fns["conv2d_backward"]),
                  kind="numpy", flops=lambda layer: 2 * layer.flops(),
                  targets={"ResNet-like": 3.0}),
    ]


class WrongResult(AssertionError):
    """A contender disagrees with its reference: timing it would mean nothing."""


def as_tensors(result) -> list[torch.Tensor]:
    parts = result if isinstance(result, (tuple, list)) else (result,)
    return [torch.as_tensor(np.asarray(p)) if not isinstance(p, torch.Tensor) else p
            for p in parts]


def check_agrees(label: str, reference: str, result, expected) -> None:
    """Raise WrongResult unless ``result`` is ``expected`` (float32 sums in another order)."""
    got, want = as_tensors(result), as_tensors(expected)
    if len(got) != len(want):
        raise WrongResult(f"{label} returned {len(got)} results, {reference} {len(want)}")
    for g, w in zip(got, want, strict=True):
        g, w = g.detach().cpu(), w.detach().cpu()
        scale = max(float(w.abs().max()), 1.0) if w.numel() else 1.0
        if g.shape != w.shape or not torch.allclose(g.to(w.dtype), w, rtol=1e-4,
                                                     atol=1e-5 * scale):
            error = "shape " + str(tuple(g.shape)) if g.shape != w.shape else \
                f"largest difference {float((g.to(w.dtype) - w).abs().max()):.3g}"
            raise WrongResult(f"{label} disagrees with {reference} ({error}): not timed")


def rounds(calls: dict[str, Callable], repeats: int, sync: Callable, warmups: int = 2
           ) -> dict[str, list[float]]:
    """Seconds per call of each function, ``repeats`` rounds taken in turn: the same harness
    as the notebooks' speed cells (``convcourse.grading.timing.rounds``)."""
    return timing.rounds(calls, repeats, warmups=warmups, sync=sync).seconds


def matmul_peaks(device: str, size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """FLOP/s of a float32 ``size x size`` matrix product (median of interleaved rounds):
    torch's (``torch``) and, on CPU, NumPy's (``numpy``)."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(device) for _ in range(2))
    calls = {"torch": lambda: a @ b}
    if device == "cpu":
        a_np, b_np = a.numpy(), b.numpy()
        calls["numpy"] = lambda: a_np @ b_np
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with exact_float32():
        times = rounds(calls, repeats, sync, warmups=1)
    return {kind: 2 * size ** 3 / statistics.median(seconds) for kind, seconds in times.items()}


@dataclass
class Row:
    layer: Layer
    device: str
    label: str
    reference: str | None  # None for a reference's own row
    seconds: float  # median
    ratios: list[float]  # per round, to the reference
    flops: int
    peak: float
    target: float | None

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.ratio <= self.target


def bench(layers: list[Layer], contenders: list[Contender], device: str, repeats: int,
          peaks: dict[str, float]) -> list[Row]:
    """Check every contender on every layer, then time them all in interleaved rounds."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = []
    for layer in layers:
        inputs = layer.inputs(device)
        present = [c for c in contenders if c.kind == "torch" or device == "cpu"]
        references, own, reference_flops = {}, {}, {}
        for contender in present:
            reference, call = contender.calls(layer, inputs)
            references.setdefault(contender.reference, reference)
            reference_flops.setdefault(contender.reference, contender.flops(layer))
            own[contender.label] = call
        with torch.no_grad(), exact_float32():
            expected = {name: call() for name, call in references.items()}
            for contender in present:
                check_agrees(contender.label, contender.reference, own[contender.label](),
                             expected[contender.reference])
            times = rounds({**references, **own}, repeats, sync)
        for name in references:
            rows.append(Row(layer, device, name, None, statistics.median(times[name]),
                            [1.0] * repeats, reference_flops[name], peaks["torch"], None))
        for contender in present:
            ratios = [t / r for t, r in zip(times[contender.label],
                                            times[contender.reference], strict=True)]
            rows.append(Row(layer, device, contender.label, contender.reference,
                            statistics.median(times[contender.label]), ratios,
                            contender.flops(layer), peaks.get(contender.kind, peaks["torch"]),
                            contender.target(layer, device)))
    return rows


HEADER = (f"{'layer':42} {'device':6} {'timed':18} {'median':>10} {'ratio':>7} "
          f"{'(min-max)':>13} {'GFLOP/s':>8} {'of peak':>8}  target")


def format_row(row: Row) -> str:
    ratio = "" if row.reference is None else f"{row.ratio:6.2f}x"
    spread = "" if row.reference is None else f"({min(row.ratios):.2f}-{max(row.ratios):.2f})"
    gflops = row.flops / row.seconds / 1e9
    verdict = "-" if row.target is None else \
        f"<= {row.target:g}x {'PASS' if row.passed else 'MISS'}"
    return (f"{row.layer.name:42} {row.device:6} {row.label:18} {row.seconds * 1e3:7.2f} ms "
            f"{ratio:>7} {spread:>13} {gflops:8.1f} {gflops * 1e9 / row.peak:7.0%}  {verdict}")


def report(rows: list[Row]) -> None:
    print(HEADER)
    for row in rows:
        print(format_row(row))


# ---- What limits a missed target -----------------------------------------------------------

def limits(row: Row, reference: Row, repeats: int) -> list[str]:
    """Measured reasons why ``row`` (a missed target) is slower than its reference."""
    lines = [f"{row.label} on {row.layer.name}: {reference.label} reaches "
             f"{reference.flops / reference.seconds / reference.peak:.0%} of the matmul peak, "
             f"{row.label} {row.flops / row.seconds / row.peak:.0%} of its library's; its "
             f"rounds ranged {min(row.ratios):.2f}-{max(row.ratios):.2f}x (load "
             f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"]
    if reference.label != "F.conv2d":
        return lines  # the measurements below take a forward convolution apart
    layer = row.layer
    x, weight, _ = layer.inputs("cpu")
    numpy_kind = row.label.startswith("conv2d_numpy")
    c_in_group = x.shape[1] // layer.groups
    if c_in_group == 1:  # depthwise: one pass over the output per tap
        taps = layer.kernel_size ** 2
        if numpy_kind:
            a, out = x.numpy(), np.empty_like(x.numpy())
            w = weight.numpy()[:, 0, 0, 0].reshape(-1, 1, 1)

            def one_tap():
                np.multiply(a, w, out=out)
                np.add(out, a, out=out)
        else:
            w = weight[:, 0, 0, 0].reshape(-1, 1, 1)
            out = torch.empty_like(x)
            def one_tap():
                out.addcmul_(x, w)
        times = rounds({"F.conv2d": partial(F.conv2d, x, weight, None, **layer.arguments()),
                        "tap": one_tap}, repeats, lambda: None)
        tap, ref = (statistics.median(times[k]) for k in ("tap", "F.conv2d"))
        lines.append(f"  one tap = one multiply-add pass over the input, {tap * 1e3:.2f} ms; "
                     f"{taps} taps: {taps * tap / ref:.1f}x F.conv2d "
                     f"({'NumPy runs it on one thread' if numpy_kind else 'torch threads it'}); "
                     f"F.conv2d reads the input once")
        return lines
    # Dense layers: im2col's copy and the matrix product alone, each against F.conv2d.
    padded = F.pad(x, (layer.padding,) * 4)
    n, k = x.shape[0], c_in_group * layer.kernel_size ** 2
    h_out, w_out = layer.output_size()
    if numpy_kind:
        from numpy.lib.stride_tricks import sliding_window_view
        p = padded.numpy()
        windows = sliding_window_view(p, (layer.kernel_size,) * 2, axis=(2, 3))

        def copy():
            return np.ascontiguousarray(windows.transpose(1, 4, 5, 0, 2, 3))
        columns = copy().reshape(k, n * h_out * w_out)
        kernels = weight.numpy().reshape(-1, k)

        def gemm():
            return kernels @ columns
    else:
        def copy():
            return F.unfold(padded, layer.kernel_size)
        columns, kernels = copy(), weight.reshape(-1, k)

        def gemm():
            return kernels @ columns
    calls = {"F.conv2d": partial(F.conv2d, x, weight, None, **layer.arguments()),
             "copy": copy, "gemm": gemm}
    if not numpy_kind and layer.stride == 1 and layer.groups == 1:
        calls["shifted"] = shifted_products(padded, weight, layer)
    times = rounds(calls, repeats, lambda: None)
    ref = statistics.median(times["F.conv2d"])
    copy_s, gemm_s = statistics.median(times["copy"]), statistics.median(times["gemm"])
    lines.append(f"  im2col copy ({columns.nbytes / 2**20:.0f} MiB, "
                 f"{columns.nbytes / x.numpy().nbytes:.0f}x the input) {copy_s * 1e3:.2f} ms = "
                 f"{copy_s / ref:.2f}x F.conv2d; the matrix product alone {gemm_s * 1e3:.2f} ms "
                 f"= {gemm_s / ref:.2f}x F.conv2d (target {row.target:g}x)")
    products_s = gemm_s
    if "shifted" in times:
        shifted_s = statistics.median(times["shifted"])
        products_s = min(gemm_s, shifted_s)
        lines.append(f"  without a copy, the {layer.kernel_size ** 2} shifted products per "
                     f"image on the flattened padded input alone: {shifted_s * 1e3:.2f} ms = "
                     f"{shifted_s / ref:.2f}x F.conv2d")
    if products_s / ref > row.target:
        lines.append("  so no arrangement of these matrix products can meet the target here: "
                     "the products alone are slower than the target allows (on this machine, "
                     "at this load)")
    else:
        lines.append("  the matrix products alone fit the target: the rest is the copy (or "
                     "accumulation) around them, and the machine's load")
    return lines


def shifted_products(padded: torch.Tensor, weight: torch.Tensor, layer: Layer) -> Callable:
    """The products of a copy-free convolution (stride 1, one group; the book's page *Shifted
    matrix products*), alone: for each image and tap, ``weight[:, :, u, v]`` times the slice
    of the flattened padded image that the tap reads, accumulated into one zeroed buffer,
    which the call returns: rows as wide as the padded image, the last row cut short."""
    n, c_in, h, w = padded.shape
    span = layer.dilation * (layer.kernel_size - 1)
    length = (h - span - 1) * w + (w - span)
    flat, out = padded.reshape(n, c_in, h * w), padded.new_zeros(n, layer.out_channels, length)
    shifts = [(layer.dilation * (u * w + v), weight[:, :, u, v])
              for u in range(layer.kernel_size) for v in range(layer.kernel_size)]

    def products() -> torch.Tensor:
        out.zero_()
        for b in range(n):
            for shift, tap in shifts:
                out[b].addmm_(tap, flat[b, :, shift:shift + length])
        return out
    return products


# ---- The machine ---------------------------------------------------------------------------

def machine() -> str:
    """One line: CPU model, threads, library versions and the BLAS each library calls."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            found = re.search(r"^model name\s*:\s*(.+)$", file.read(), re.M)
            cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    torch_blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    numpy_blas = "?"
    try:
        from threadpoolctl import threadpool_info
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"
                and "numpy" in i["filepath"]]
        if blas:
            numpy_blas = f"{blas[0]['internal_api']} {blas[0]['version']}, " \
                         f"{blas[0]['num_threads']} threads"
    except ImportError:
        numpy_blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: {cpu}, {os.cpu_count()} CPUs, load {load:.1f}; torch "
            f"{torch.__version__} ({torch.get_num_threads()} threads, "
            f"{torch_blas.group(1) if torch_blas else '?'}, oneDNN "
            f"{'on' if torch.backends.mkldnn.is_available() else 'off'}); numpy "
            f"{np.__version__} ({numpy_blas})")


def run(layers: list[Layer], contenders: list[Contender], repeats: int,
        devices: list[str], explain: bool = True, peak_size: int = 2048) -> list[Row]:
    """The whole bench: machine line, peaks, the table per device, targets and limits."""
    print(machine())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > (os.cpu_count() or 1) - 0.5 and torch.get_num_threads() > 1:
        print(f"note: load {load:.1f} on {os.cpu_count()} CPUs: other programs compete for "
              f"the cores, and a call split over {torch.get_num_threads()} threads waits for "
              "the slowest; --threads 1 measures more steadily on a shared machine")
    rows = []
    for device in devices:
        peaks = matmul_peaks(device, peak_size, repeats=max(3, min(repeats, 7)))
        print(f"{device}: float32 {peak_size}x{peak_size} matmul peak "
              + ", ".join(f"{kind} {flops / 1e9:.1f} GFLOP/s" for kind, flops in peaks.items())
              + f"; {repeats} interleaved rounds per layer"
              + (f"; {torch.cuda.get_device_name()}, TF32 off" if device == "cuda" else ""))
        rows += bench(layers, contenders, device, repeats, peaks)
    report(rows)
    targeted = [row for row in rows if row.target is not None]
    if targeted:
        print(f"Targets (median of per-round ratios): "
              f"{sum(row.passed for row in targeted)} of {len(targeted)} met")
    for row in targeted:
        print(f"  {'PASS' if row.passed else 'MISS'} {row.label} on {row.layer.name}: "
              f"{row.ratio:.2f}x {row.reference} (target <= {row.target:g}x)")
    if explain:
        for row in targeted:
            if not row.passed:
                reference = next(r for r in rows if r.layer == row.layer and r.reference is None
                                 and r.label == row.reference and r.device == row.device)
                print("\n".join(limits(row, reference, repeats)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds per layer")
    parser.add_argument("--quick", action="store_true",
                        help="worked examples only, 3 rounds: a smoke test, not a measurement")
    parser.add_argument("--tiny", action="store_true",
                        help="two tiny layers: the table's format, in seconds")
    parser.add_argument("--threads", type=int,
                        help="threads for torch and NumPy's BLAS (default: as they start)")
    for name in ("--submissions", "--rounds", "--assignments", "--workers"):  # bench_grading's
        parser.add_argument(name, nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(options.threads)
        except ImportError:
            pass
    if options.tiny:
        layers = TINY
    elif options.quick:
        layers = [layer for layer in LAYERS if layer.name.startswith("example")]
    else:
        layers = LAYERS
    repeats = 3 if options.quick and options.repeats == 15 else options.repeats
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    run(layers, solution_contenders(), repeats, devices, peak_size=256 if options.tiny else 2048)


if __name__ == "__main__":
    main()
