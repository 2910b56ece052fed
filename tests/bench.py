"""`make bench`: the reference solutions' speed against F.conv2d, measured in one run.

For each shape (the book's three worked examples, the design's CIFAR-like and ResNet-like
layers) it times F.conv2d and the solutions' implementations, taken in turn in the same run,
and prints their medians and ratios to F.conv2d; on CUDA too when a GPU is present. The
implementations come from solutions/ (the instructor's notebooks). Each notebook has a model
answer, the clear version learners read (conv2d_numpy, conv2d_torch), and beside it a version
arranged for speed (conv2d_numpy_fast, conv2d_torch_fast): the targets (design) are for the
fast ones, on CPU conv2d_numpy_fast <= 2.5x and conv2d_torch_fast <= 1.5x F.conv2d. The model
answers are shown in a second table, without a target.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from course import SOLUTIONS, definitions

from convcourse.grading.timing import medians
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


#: label: (notebook, function, its kind of inputs); the fast versions, which the targets are for.
FAST = {"conv2d_numpy": ("02-numpy/conv2d-numpy.ipynb", "conv2d_numpy_fast", "numpy"),
        "conv2d_torch": ("03-torch/conv2d-torch.ipynb", "conv2d_torch_fast", "torch")}
#: The model answers: clear, not tuned for speed.
ANSWERS = {"conv2d_numpy": ("02-numpy/conv2d-numpy.ipynb", "conv2d_numpy", "numpy"),
           "conv2d_torch": ("03-torch/conv2d-torch.ipynb", "conv2d_torch", "torch")}


def bench(repeats: int, shapes: dict, device: str, implementations: dict) -> list[dict]:
    """One row per shape: median seconds of F.conv2d and of each implementation (label:
    ``(fn, kind)``), all timed in turn in the same rounds."""
    sync = torch.cuda.synchronize if device == "cuda" else None
    generator = torch.Generator().manual_seed(0)
    rows = []
    for name, (x_shape, c_out, k, s, p, d) in shapes.items():
        x = torch.randn(*x_shape, generator=generator).to(device)
        weight = torch.randn(c_out, x_shape[1], k, k, generator=generator).to(device)
        bias = torch.randn(c_out, generator=generator).to(device)
        args = {"stride": s, "padding": p, "dilation": d}
        tensors = (x, weight, bias)
        arrays = tuple(t.cpu().numpy() for t in tensors)
        calls = {"F.conv2d": partial(F.conv2d, *tensors, **args)}
        for label, (fn, kind) in implementations.items():
            if kind == "numpy" and device != "cpu":
                continue  # NumPy runs on the CPU only
            inputs = arrays if kind == "numpy" else tensors
            calls[label] = partial(fn, *inputs, **args)
        with torch.no_grad(), exact_float32():
            seconds = medians(calls, repeats=repeats, warmups=2, sync=sync)
        rows.append({"shape": name, "device": device, **seconds})
    return rows


def report(rows: list[dict], labels: list[str], names: dict[str, str], *, targets: bool,
           indent: str = "") -> None:
    """A table of ``rows``: a column of milliseconds per label (headed ``names[label]``), then
    each label's ratio to F.conv2d, and its target where one is set."""
    print(f"{indent}{'shape':42} {'device':6} "
          + " ".join(f"{names.get(label, label):>17}" for label in labels)
          + "   ratios to F.conv2d" + (" (target)" if targets else ""))
    for row in rows:
        times = " ".join(f"{row[label] * 1e3:14.2f} ms" if label in row else f"{'-':>17}"
                         for label in labels)
        ratios = ", ".join(
            f"{label.removeprefix('conv2d_')} {row[label] / row['F.conv2d']:.2f}x"
            + (f" (<= {TARGETS[label]}x)" if targets and row["device"] == "cpu"
               and row["shape"].startswith(TARGETED) else "")
            for label in TARGETS if label in row)
        print(f"{indent}{row['shape']:42} {row['device']:6} {times}   {ratios}")


def load(functions: dict) -> dict:
    """label: (fn, kind) for each label: (notebook, function, kind) of ``functions``."""
    notebooks = {notebook: definitions(SOLUTIONS / notebook) for notebook, _, _ in
                 functions.values()}
    return {label: (notebooks[notebook][name], kind)
            for label, (notebook, name, kind) in functions.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per median")
    parser.add_argument("--quick", action="store_true",
                        help="worked examples only, 3 repeats: a smoke test, not a measurement")
    options = parser.parse_args()
    fast, answers = load(FAST), load(ANSWERS)
    implementations = {**fast, **{f"answer {label}": fn for label, fn in answers.items()}}
    shapes = {k: v for k, v in SHAPES.items() if k.startswith("example")} if options.quick \
        else SHAPES
    repeats = 3 if options.quick else options.repeats
    print(f"torch {torch.__version__}, numpy {np.__version__}, "
          f"{torch.get_num_threads()} CPU threads; medians of {repeats} runs, float32")
    rows = bench(repeats, shapes, "cpu", implementations)
    if torch.cuda.is_available():
        print(f"CUDA: {torch.cuda.get_device_name()} (TF32 off)")
        rows += bench(repeats, shapes, "cuda", implementations)
    print("The versions arranged for speed, which the targets are for:")
    report(rows, ["F.conv2d", *FAST], {label: FAST[label][1] for label in FAST}, targets=True)
    print("The model answers (the clear versions learners read; no target), same run:")
    answer_rows = [{"shape": row["shape"], "device": row["device"], "F.conv2d": row["F.conv2d"],
                    **{label: row[f"answer {label}"] for label in ANSWERS
                       if f"answer {label}" in row}} for row in rows]
    report(answer_rows, ["F.conv2d", *ANSWERS], {}, targets=False, indent="  ")


if __name__ == "__main__":
    main()
