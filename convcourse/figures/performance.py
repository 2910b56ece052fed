"""How fast a convolution runs: four ways to compute it, the machine's limits, and a roofline.

The four ways are loops over Python numbers, im2col + one matrix product, the FFT, and
``F.conv2d`` itself; the tests hold the first three to ``F.conv2d``. Beside them: the direct
convolution's FLOP count, the measured matrix-multiply peak and memory bandwidth of the
machine, TF32's rounding, and the figures (a roofline, a kernel-size sweep). Comparisons are
medians of interleaved rounds (``convcourse.grading.timing.medians``), peaks the fastest of a
few calls: they describe the machine the book was built on, never a promise.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from convcourse.grading.timing import medians
from convcourse.reference import Size, pair

# ---- Counting --------------------------------------------------------------------------------


def conv2d_flops(out_shape: Sequence[int], weight_shape: Sequence[int]) -> int:
    """Multiplications and additions of the direct convolution: 2 per tap and output value.

    Each of the ``N*C_out*H_out*W_out`` outputs sums ``C_in/groups * kH * kW`` products,
    which is the size of one filter, ``weight_shape[1:]``.
    """
    return 2 * math.prod(out_shape) * math.prod(weight_shape[1:])


def arithmetic_intensity(flops: float, *tensors: torch.Tensor) -> float:
    """FLOPs per byte moved, if each of ``tensors`` crosses the memory bus exactly once."""
    return flops / sum(t.numel() * t.element_size() for t in tensors)


# ---- Four ways to compute one layer --------------------------------------------------------


def conv2d_loops(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 padding: int = 0) -> torch.Tensor:
    """The formula as written, one Python multiply-add at a time (stride 1, groups 1).

    ``out[n, o, i, j] = bias[o] + sum over (c, u, v) of x_padded[n, c, i+u, j+v] * weight[o, c,
    u, v]``.
    Slow on purpose: only for tiny layers.
    """
    xs = F.pad(x, (padding,) * 4).tolist()
    ws = weight.tolist()
    n, c_in, h, w = len(xs), len(xs[0]), len(xs[0][0]), len(xs[0][0][0])
    c_out, k_h, k_w = len(ws), len(ws[0][0]), len(ws[0][0][0])
    h_out, w_out = h - k_h + 1, w - k_w + 1
    out = [[[[0.0] * w_out for _ in range(h_out)] for _ in range(c_out)] for _ in range(n)]
    for b in range(n):
        for o in range(c_out):
            start = 0.0 if bias is None else float(bias[o])
            for i in range(h_out):
                for j in range(w_out):
                    total = start
                    for c in range(c_in):
                        for u in range(k_h):
                            row, taps = xs[b][c][i + u], ws[o][c][u]
                            for v in range(k_w):
                                total += row[j + v] * taps[v]
                    out[b][o][i][j] = total
    return torch.tensor(out, dtype=x.dtype)


def im2col(x: torch.Tensor, kernel_size: Size, stride: Size = 1, padding: Size = 0,
           dilation: Size = 1) -> torch.Tensor:
    """The column matrix: every window of ``x`` as one column, ``(N, C_in*kH*kW, H_out*W_out)``."""
    return F.unfold(x, kernel_size, dilation=dilation, padding=padding, stride=stride)


def conv2d_im2col(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride: Size = 1, padding: Size = 0, dilation: Size = 1) -> torch.Tensor:
    """im2col, then one matrix product: ``(C_out, C_in*kH*kW) @ (N, C_in*kH*kW, L)`` (groups 1)."""
    columns = im2col(x, weight.shape[-2:], stride, padding, dilation)
    out = weight.reshape(weight.shape[0], -1) @ columns
    if bias is not None:
        out = out + bias.reshape(-1, 1)
    (h, w), (k_h, k_w) = x.shape[-2:], weight.shape[-2:]
    (s_h, s_w), (p_h, p_w), (d_h, d_w) = pair(stride), pair(padding), pair(dilation)
    h_out = (h + 2 * p_h - d_h * (k_h - 1) - 1) // s_h + 1
    w_out = (w + 2 * p_w - d_w * (k_w - 1) - 1) // s_w + 1
    return out.reshape(x.shape[0], weight.shape[0], h_out, w_out)


def conv2d_fft(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
               padding: int = 0) -> torch.Tensor:
    """The same cross-correlation through the FFT (stride 1, dilation 1, groups 1).

    In frequency space a correlation is a product: ``X * conj(W)`` per pair of channels,
    summed over the input channels. The padded input's size is large enough that the circular
    correlation the FFT computes never wraps into the outputs we keep.
    """
    x = F.pad(x, (padding,) * 4)
    size = x.shape[-2:]
    (h, w), (k_h, k_w) = size, weight.shape[-2:]
    x_f = torch.fft.rfft2(x, s=size)  # (N, C_in, H, W//2+1)
    w_f = torch.fft.rfft2(weight, s=size)  # (C_out, C_in, H, W//2+1), zero-padded kernels
    out_f = torch.einsum("nchw,ochw->nohw", x_f, w_f.conj())
    out = torch.fft.irfft2(out_f, s=size)[..., :h - k_h + 1, :w - k_w + 1]
    return out if bias is None else out + bias.reshape(-1, 1, 1)


# ---- The machine ---------------------------------------------------------------------------


def sync_for(device: str | torch.device) -> Callable[[], object] | None:
    """What waits for queued work on ``device`` (None on the CPU, which does not queue)."""
    return torch.cuda.synchronize if torch.device(device).type == "cuda" else None


def fastest(fn: Callable[[], object], repeats: int = 5, device: str = "cpu") -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn`` (after two untimed ones).

    For a peak, the best call is the right statistic: it is what the machine can do, and
    anything else running at the same time can only make a call slower.
    """
    sync = sync_for(device) or (lambda: None)
    return min(medians({"call": fn}, repeats=1, warmups=2 if i == 0 else 0, sync=sync)["call"]
               for i in range(repeats))


def matmul_peak(size: int = 1024, device: str = "cpu", repeats: int = 5) -> float:
    """FLOP/s of a float32 ``size x size`` matrix product, the fastest of ``repeats``: the
    machine's practical peak."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(device) for _ in range(2))
    return 2 * size ** 3 / fastest(lambda: a @ b, repeats, device)


def copy_bandwidth(megabytes: int = 64, device: str = "cpu", repeats: int = 5) -> float:
    """Bytes/s of copying one large float32 tensor into another (read once, written once),
    the fastest of ``repeats``."""
    source = torch.ones(megabytes * 2**20 // 4, device=device)
    target = torch.empty_like(source)
    return 2 * source.numel() * 4 / fastest(lambda: target.copy_(source), repeats, device)


def round_to_mantissa(x: torch.Tensor, bits: int = 10) -> torch.Tensor:
    """float32 ``x`` rounded to ``bits`` mantissa bits (to nearest, ties to even).

    TF32 keeps float32's 8 exponent bits and 10 of its 23 mantissa bits: with ``bits=10``
    this emulates a TF32 input to within one unit of its last bit (a tensor core that drops
    the other bits instead of rounding them errs up to twice as much).
    """
    if x.dtype != torch.float32:
        raise ValueError(f"x must be float32, not {x.dtype}")
    drop = 23 - bits
    if drop <= 0:
        return x.clone()
    integers = x.view(torch.int32)
    lowest_kept = (integers >> drop) & 1
    rounded = (integers + (1 << (drop - 1)) - 1 + lowest_kept) & ~((1 << drop) - 1)
    return rounded.view(torch.float32)


def conv_backend(x: torch.Tensor, weight: torch.Tensor, stride: Size = 1, padding: Size = 0,
                 dilation: Size = 1, groups: int = 1) -> str:
    """The name of the backend ``F.conv2d`` picks for these arguments ('Mkldnn', 'Slow2d', ...).

    It asks PyTorch's own dispatcher, ``torch._C._select_conv_backend`` (a private function:
    its arguments are those of torch 2.13 and may change with a release). 'Mkldnn' is oneDNN,
    'Slow2d' PyTorch's own im2col + matrix product, 'Cudnn' cuDNN. Int padding only.
    """
    return torch._C._select_conv_backend(
        x, weight, None, list(pair(stride)), list(pair(padding)), list(pair(dilation)), False,
        [0, 0], groups).name


def onednn_primitives(statement: str, runs: int = 2) -> list[dict[str, str]]:
    """What oneDNN runs for ``statement``, from its own log (``ONEDNN_VERBOSE=1``).

    The statement runs ``runs`` times in a fresh Python process (with as many threads as
    this one), after ``import torch`` and
    ``import torch.nn.functional as F``; the first runs include oneDNN's one-off work
    (compiling its kernels), so only the last run's primitives are returned, in order: one
    dict each with ``kind`` ('convolution', 'reorder', ...), ``implementation`` (the kernel's
    name), ``algorithm`` (e.g. 'convolution_direct', '' when not logged), ``problem`` (the
    shapes) and ``ms`` (its time, a float). An empty list where oneDNN is not used.
    """
    code = (f"import torch\nimport torch.nn.functional as F\nfor _ in range({runs}):\n"
            + "".join(f"    {line}\n" for line in statement.splitlines()))
    threads = str(torch.get_num_threads())  # the caller's, so the log times the same work
    log = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "ONEDNN_VERBOSE": "1",
                                          "OMP_NUM_THREADS": threads}).stdout
    calls = []
    for line in log.splitlines():
        fields = line.split(",")
        if len(fields) > 8 and fields[0] == "onednn_verbose" and fields[3] == "exec":
            algorithm = next((f.removeprefix("alg:") for f in fields if f.startswith("alg:")),
                             "")
            calls.append({"kind": fields[5], "implementation": fields[6],
                          "algorithm": algorithm, "problem": fields[-2],
                          "ms": float(fields[-1])})
    per_run = len(calls) // runs
    return calls[-per_run:] if per_run and len(calls) % runs == 0 else calls


# ---- Figures -------------------------------------------------------------------------------


def roofline_figure(points: dict[str, tuple[float, float]], peak: float, bandwidth: float,
                    title: str = "") -> Figure:
    """Arithmetic intensity (FLOPs per byte) against achieved GFLOP/s, on log axes.

    ``points`` maps a label to ``(intensity, FLOP/s)``. The roof is the measured matmul
    ``peak`` (flat) and the measured copy ``bandwidth`` (the slope): no computation whose data
    crosses memory once can sit above ``min(peak, intensity * bandwidth)``.
    """
    intensities = [i for i, _ in points.values()]
    low, high = min(intensities + [peak / bandwidth]) / 4, max(intensities + [peak / bandwidth]) * 4
    grid = torch.logspace(math.log10(low), math.log10(high), 200)
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    ax.plot(grid, torch.minimum(grid * bandwidth, torch.tensor(peak)) / 1e9, color="black",
            label=f"roof: {peak / 1e9:.0f} GFLOP/s matmul, {bandwidth / 1e9:.0f} GB/s copy")
    for label, (intensity, flops) in points.items():
        ax.scatter([intensity], [flops / 1e9], s=40, zorder=3)
        ax.annotate(label, (intensity, flops / 1e9), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOPs per byte)",
           ylabel="GFLOP/s (direct-convolution count)", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def sweep_figure(kernel_sizes: Sequence[int], seconds: dict[str, Sequence[float]],
                 title: str = "") -> Figure:
    """Milliseconds per call against kernel size, one line per method (log time axis)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for label, times in seconds.items():
        ax.plot(list(kernel_sizes), [t * 1e3 for t in times], marker="o", label=label)
    ax.set(yscale="log", xlabel="kernel size k (a k x k kernel, 'same' padding)",
           ylabel="ms per call (median)", title=title, xticks=list(kernel_sizes))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    plt.close(fig)
    return fig
