"""`make bench`: the reference solutions' speed against F.conv2d, measured in one run.

For each shape (the book's three worked examples, the design's CIFAR-like and ResNet-like
layers) it times F.conv2d, the reference conv2d_numpy and the reference conv2d_torch, and prints
their medians and ratios to F.conv2d; on CUDA too when a GPU is present. The reference
implementations come from solutions/ (the instructor's notebooks). Targets (design): on CPU,
conv2d_numpy <= 2.5x and conv2d_torch <= 1.5x F.conv2d.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from course import SOLUTIONS, definitions

from convcourse.reference import exact_float32

# name: (x shape, out_channels, kernel_size, stride, padding, dilation)
SHAPES = {
    "example 1 (1x1x28x28 -> 16, k3 p1)": ((1, 1, 28, 28), 16, 3, 1, 1, 1),
    "example 2 (1x3x64x64 -> 32, k5 s2 p2)": ((1, 3, 64, 64), 32, 5, 2, 2, 1),
    "example 3 (1x1x28x28 -> 8, k3 p1 d2)": ((1, 1, 28, 28), 8, 3, 1, 1, 2),
    "CIFAR-like (64x3x32x32 -> 64, k3 p1)": ((64, 3, 32, 32), 64, 3, 1, 1, 1),
    "ResNet-like (8x64x56x56 -> 64, k3 p1)": ((8, 64, 56, 56), 64, 3, 1, 1, 1),
}
TARGETS = {"conv2d_numpy": 2.5, "conv2d_torch": 1.5}
#: The shapes the targets are set for; the worked examples are too small (call overhead rules).
TARGETED = ("CIFAR-like", "ResNet-like")


def median_seconds(fn: Callable, args: tuple, kwargs: dict, *, repeats: int,
                   sync: Callable[[], None]) -> float:
    """Median wall time of ``fn(*args, **kwargs)`` over ``repeats`` calls, after two warm-ups."""
    for _ in range(2):
        fn(*args, **kwargs)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args, **kwargs)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(repeats: int, shapes: dict, device: str, implementations: dict) -> list[dict]:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for name, (x_shape, c_out, k, s, p, d) in shapes.items():
        x = torch.randn(*x_shape, generator=generator).to(device)
        weight = torch.randn(c_out, x_shape[1], k, k, generator=generator).to(device)
        bias = torch.randn(c_out, generator=generator).to(device)
        args = {"stride": s, "padding": p, "dilation": d}
        row = {"shape": name, "device": device}
        tensors = (x, weight, bias)
        arrays = tuple(t.cpu().numpy() for t in tensors)
        timing = {"repeats": repeats, "sync": sync}
        with torch.no_grad(), exact_float32():
            row["F.conv2d"] = median_seconds(F.conv2d, tensors, args, **timing)
            for label, fn in implementations.items():
                if label == "conv2d_numpy" and device != "cpu":
                    continue  # NumPy runs on the CPU only
                inputs = arrays if label == "conv2d_numpy" else tensors
                row[label] = median_seconds(fn, inputs, args, **timing)
        rows.append(row)
    return rows


def report(rows: list[dict]) -> None:
    labels = ["F.conv2d", *TARGETS]
    print(f"{'shape':42} {'device':6} " + " ".join(f"{label:>14}" for label in labels)
          + "   ratios to F.conv2d (target)")
    for row in rows:
        times = " ".join(f"{row[label] * 1e3:11.2f} ms" if label in row else f"{'-':>14}"
                         for label in labels)
        ratios = ", ".join(
            f"{label.removeprefix('conv2d_')} {row[label] / row['F.conv2d']:.2f}x"
            + (f" (<= {TARGETS[label]}x)"
               if row["device"] == "cpu" and row["shape"].startswith(TARGETED) else "")
            for label in TARGETS if label in row)
        print(f"{row['shape']:42} {row['device']:6} {times}   {ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per median")
    parser.add_argument("--quick", action="store_true",
                        help="worked examples only, 3 repeats: a smoke test, not a measurement")
    options = parser.parse_args()
    numpy_solution = definitions(SOLUTIONS / "02-numpy" / "conv2d-numpy.ipynb")
    torch_solution = definitions(SOLUTIONS / "03-torch" / "conv2d-torch.ipynb")
    implementations = {"conv2d_numpy": numpy_solution["conv2d_numpy"],
                       "conv2d_torch": torch_solution["conv2d_torch"]}
    shapes = {k: v for k, v in SHAPES.items() if k.startswith("example")} if options.quick \
        else SHAPES
    repeats = 3 if options.quick else options.repeats
    print(f"torch {torch.__version__}, numpy {np.__version__}, "
          f"{torch.get_num_threads()} CPU threads; medians of {repeats} runs, float32")
    rows = bench(repeats, shapes, "cpu", implementations)
    if torch.cuda.is_available():
        print(f"CUDA: {torch.cuda.get_device_name()} (TF32 off)")
        rows += bench(repeats, shapes, "cuda", implementations)
    report(rows)


if __name__ == "__main__":
    main()
