"""The realistic corpus: wrong implementations written whole, the way learners write them
(loops for conv2d_naive, vectorised conv2d_numpy, conv2d_backward), each with its true cause.

Each entry runs through the assignment's own test cells, taken from solutions/: the visible
part of every cell (what a learner's notebook runs) and the whole cell (what ``make check``
runs without a course secret). :func:`verdict` sorts each failure's message: the true cause
named (``right``), another cause named (``wrong``), or what is wrong described without a name
(``described``). A wrong name is worse than none; tests/test_realistic_mistakes.py holds the
corpus to that.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from mistakes.realistic import backward, naive, vectorised

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Entry:
    """One wrong implementation: the function it stands for, and why it is wrong."""

    module: object
    target: str  # conv2d_naive, conv2d_numpy or conv2d_backward
    cause: str  # a key of NAMES: the mistake the feedback may name
    what: str


def _entries(module, target: str, causes: dict[str, tuple[str, str]]) -> dict[str, Entry]:
    prefix = {"conv2d_naive": "naive", "conv2d_numpy": "numpy",
              "conv2d_backward": "backward"}[target]
    return {f"{prefix}:{name}": Entry(module, target, cause, what)
            for name, (cause, what) in causes.items()}


ENTRIES: dict[str, Entry] = {
    **_entries(naive, "conv2d_naive", {
        "same_split_evenly": ("'same' split evenly", "'same' pads d*(k-1)//2 on both sides: "
                              "one short at the bottom/right for an even kernel"),
        "stride_on_taps": ("stride on the taps", "windows 1 apart, taps stride*dilation "
                           "apart"),
        "dilation_on_window_start": ("dilation on the windows", "windows start "
                                     "stride*dilation apart, taps next to each other"),
        "float32_accumulator": ("computed in float32", "sums in a float32 array for float64 "
                                "inputs"),
        "flipped_kernel": ("flipped kernel", "flips the kernel (a true convolution)"),
        "bias_forgotten": ("bias missing", "never adds the bias"),
        "groups_from_channel_zero": ("groups ignored", "every group reads input channels "
                                     "0..C_in/groups"),
        "groups_round_robin": ("groups interleaved", "output channel o uses group o % groups"),
        "never_pads": ("padding ignored", "no padding at all"),
        "same_extra_first": ("'same' extra first", "'same' puts the odd extra row/column at "
                             "the top/left"),
        "no_plus_one": ("+ 1 missing", "counts windows without the + 1"),
        "dilation_forgotten": ("dilation ignored", "plain kH x kW windows"),
        "bias_in_channel_loop": ("bias per input channel", "adds the bias once per input "
                                 "channel"),
        "batch_axis_stays": ("batch axis kept", "returns (1, C_out, H, W) for an unbatched x"),
        "stride_read_width_first": ("pair swapped", "reads stride=(sH, sW) as (sW, sH)"),
        "float64_output": ("dtype", "np.zeros without dtype: float64 out for float32 in"),
        "dilation_as_gaps": ("dilation + 1", "dilation read as the gap: taps d + 1 apart"),
    }),
    **_entries(vectorised, "conv2d_numpy", {
        "same_split_evenly": ("'same' split evenly", "'same' pads d*(k-1)//2 on both sides"),
        "float32_einsum": ("computed in float32", "einsum in float32, cast back"),
        "kernel_flipped": ("flipped kernel", "np.flip of the kernel"),
        "groups_share_first_channels": ("groups ignored", "one einsum over the first C_in/"
                                        "groups channels"),
        "stride_dilation_swapped": ("stride and dilation swapped", "unpacks (dilation, "
                                    "stride) in the wrong order"),
        "reflect_as_symmetric": ("reflect repeats the edge", "'reflect' mapped to np.pad's "
                                 "'symmetric'"),
        "zeros_whatever_the_mode": ("padding_mode ignored", "always pads with zeros"),
        "im2col_channels_last": ("flattened differently", "windows flattened (kH, kW, C), "
                                 "weight (C, kH, kW)"),
        "bias_broadcast_last": ("bias on the last axis", "out + bias"),
        "padding_halved": ("padding read as the total", "shares `padding` out between the "
                           "two sides"),
        "window_mean": ("mean", "averages the products of a window"),
        "weight_read_in_out": ("weight's channel axes swapped", "weight read as (C_in, "
                               "C_out)"),
        "dilation_moves_windows": ("dilation on the windows", "windows stride*dilation "
                                   "apart, taps next to each other"),
    }),
    **_entries(backward, "conv2d_backward", {
        "grad_x_kernel_flipped": ("grad_x flipped", "scatters with the kernel flipped"),
        "correlate_without_flip": ("grad_x flipped", "spread, pad, correlate, without "
                                   "flipping the kernel"),
        "scatter_without_stride": ("grad_x stride lost", "grad_out scattered 1 apart"),
        "bias_per_image": ("grad_bias per image", "grad_bias not summed over the batch"),
        "grad_weight_no_dilation": ("dilation ignored in a gradient", "grad_weight's taps 1 "
                                    "apart"),
        "grad_weight_windows_adjacent": ("grad_weight dilation", "grad_weight's windows 1 "
                                         "apart: the stride not made its dilation"),
        "float32_gradients": ("computed in float32", "gradients in float32, cast back"),
    }),
}

#: What a message says when it names each cause: a phrase of the feedback's own words.
NAMES: dict[str, tuple[str, ...]] = {
    "flipped kernel": ("you flipped the kernel",),
    "bias missing": ("exactly the bias: you did not add it",),
    "bias added twice": ("bias added twice",),
    "bias on the last axis": ("along the last axis (the width)",),
    "bias per input channel": ("once per input channel",),
    "bias sign or place": ("you subtracted the bias", "another channel's bias",
                           "although bias is None"),
    "padding ignored": ("you did not pad x",),
    "padding read as the total": ("as if `padding` were the total",),
    "'same' extra first": ("extra row or column at the top/left",),
    "'same' split evenly": ("split the 'same' padding evenly",),
    "padding_mode ignored": ("you padded with zeros, but padding_mode",),
    "reflect repeats the edge": ("your padding repeats the edge value",),
    "padded as another mode": ("you padded as padding_mode=",),
    "dilation ignored": ("you ignored dilation",),
    "dilation + 1": ("dilation + 1 apart",),
    "dilation - 1": ("dilation - 1 apart",),
    "stride and dilation swapped": ("you swapped stride and dilation",),
    "stride on the taps": ("taps stride·dilation apart",),
    "dilation on the windows": ("windows are stride·dilation apart",),
    "stride ignored": ("you ignored stride",),
    "windows rounded up": ("rounded the number of windows up",),
    "+ 1 missing": ("you left out the + 1",),
    "groups ignored": ("every group read the first C_in/groups input channels",),
    "groups interleaved": ("take the groups in turn",),
    "kernel transposed": ("your kernel is read transposed",),
    "weight's channel axes swapped": ("first two axes as (C_in, C_out)",),
    "flattened differently": ("flattened in different orders",),
    "batch axis kept": ("remove the batch axis",),
    "height and width swapped": ("height and width axes are swapped",),
    "batch and channels swapped": ("batch and channel axes are swapped",),
    "pair swapped": ("is the pair read as (width, height)?",),
    "one argument's value": ("enters your computation",),
    "mean": ("you averaged",),
    "activation": ("you applied",),
    "sign": ("with the opposite sign",),
    "computed in float32": ("ran in float32",),
    "computed in float16": ("ran in float16", "ran in bfloat16"),
    "kernel flipped along one axis": ("your kernel is flipped along the",),
    "channel subset": ("of each group's",),
    "channels never computed": ("were never computed",),
    "other channels' filters": ("other channels' filters",),
    "windows start late or early": ("your windows start one",),
    "dtype": ("expected float32 (the input's)", "keep the input's, float32", "an integer type"),
    "grad_x flipped": ("grad_x matches a gradient computed with the kernel flipped",),
    "grad_x stride lost": ("grad_out is spread 1 row and column apart",),
    "grad_weight dilation": ("grad_weight correlates x with grad_out as if the windows",),
    "dilation ignored in a gradient": ("ignores the dilation",),
    "stride and dilation swapped in a gradient": ("the dilation is applied to the wrong",),
    "grad_x across groups": ("sends every output channel's gradient to every group",),
    "grad_bias per image": ("sums over the positions but not over the batch",
                            "sum grad_out over the batch and the positions"),
    "grad_bias other": ("grad_bias is the mean", "sums over the batch only",
                        "sums everything into one number"),
}
#: The words of diagnose.UNDECIDED, said where several mistakes fit and none is proven.
UNDECIDED = "could not tell which"


def verdict(message: str, cause: str) -> str:
    """``right``, ``wrong`` or ``described``: what ``message`` names against the true
    ``cause``."""
    named = {name for name, phrases in NAMES.items() if any(p in message for p in phrases)}
    if not named:
        return "described"
    if named == {cause}:
        return "right"
    if cause in named and UNDECIDED in message:
        return "described"
    return "wrong"


# ---------------------------------------------------------------------------------------------
# The assignment's tests, as the notebooks run them.
# ---------------------------------------------------------------------------------------------

NOTEBOOKS = {"conv2d_naive": ("02-numpy/conv2d-numpy.ipynb", "test_naive_"),
             "conv2d_numpy": ("02-numpy/conv2d-numpy.ipynb", "test_numpy_"),
             "conv2d_backward": ("04-gradients/conv2d-backward.ipynb", "test_backward_")}
_HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS\n?", re.S)


def test_cells(target: str) -> tuple[str, dict[str, str]]:
    """The notebook's set-up code, and its test cells for ``target`` by grade id."""
    path, prefix = NOTEBOOKS[target]
    cells = json.loads((ROOT / "solutions" / path).read_text())["cells"]
    setup, tests = [], {}
    for cell in cells:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id", "")
        source = "".join(cell["source"])
        if grade_id in ("setup", "test-helpers"):
            setup.append(source)
        elif grade_id.startswith(prefix):
            tests[grade_id] = source
    return "\n".join(setup), tests


def _run(code: str, namespace: dict) -> str | None:
    """The message of the first failure of ``code``, or None when it passes."""
    try:
        exec(compile(code, "<test>", "exec"), namespace)  # noqa: S102  (our own test cells)
    except AssertionError as failure:
        return str(failure)
    except Exception as error:  # noqa: BLE001  (a test cell that crashes fails too)
        return f"{type(error).__name__}: {error}"
    return None


def failures(name: str, *, hidden: bool) -> dict[str, str]:
    """Entry ``name``'s failure messages by test cell: the visible tests, or whole cells."""
    entry = ENTRIES[name]
    function = getattr(entry.module, name.split(":")[1])
    setup, tests = test_cells(entry.target)
    namespace: dict = {}
    exec(compile(setup, "<setup>", "exec"), namespace)  # noqa: S102
    found = {}
    for grade_id, source in tests.items():
        namespace[entry.target] = function
        code = source.replace("### BEGIN HIDDEN TESTS\n", "").replace(
            "### END HIDDEN TESTS\n", "") if hidden else _HIDDEN.sub("", source)
        message = _run(code, namespace)
        if message is not None:
            found[grade_id] = message
    return found


def measure(names=None, *, hidden: bool = False) -> dict[str, dict[str, str]]:
    """Each entry's verdict per failing test cell."""
    return {name: {grade_id: verdict(message, ENTRIES[name].cause)
                   for grade_id, message in failures(name, hidden=hidden).items()}
            for name in (names or ENTRIES)}
