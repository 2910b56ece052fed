"""Say what is wrong with a conv2d output, in plain sentences a learner can act on.

:func:`diagnose` compares a learner's output with the reference for the same
:class:`~convcourse.reference.Conv2dCase`. When they differ it first checks what can be seen
at once (``None``, a wrong type, a wrong device, the shape, NaNs, the dtype) and then asks
which common mistake would have produced exactly this output.

The mistakes form one table, :data:`MISTAKES`: each entry computes the output that a
mistake gives on the case (with the reference, on a modified case: a flipped kernel, half the
padding, groups that all read the first input channels, ...) and says what was done and how
to fix it. A wrong name is worse than none, so a mistake is named only when it is proven:

- its output is the learner's, values and all, and differs from the right answer (a correct
  output is never blamed: a symmetric kernel makes "flipped" and "not flipped" the same, and
  then the flip is not a candidate);
- where the learner's function is at hand (``rerun``), it also predicts the learner's outputs
  on probe cases (:func:`probe_cases`: fresh values, other sizes, more padding, a larger
  stride), which tell apart slips that coincide on one input;
- it is the only one left. Where several different mistakes remain, the message says so
  (:data:`UNDECIDED`) and how to tell them apart.

An observation that many slips produce (an output size, an error magnitude) names none by
itself: a wrong shape always gets the expected shape and nn.Conv2d's size formula with the
case's numbers, and is described (so many rows short along the height) unless a mistake's
values prove its cause.

After the table, :mod:`convcourse.grading.structure` explains what it cannot: which argument
value would give a wrong size, and how wrong values relate to the right ones (a factor, a
shift, an activation, rounding, the border, some channels...).

:func:`diagnose` never raises on what a learner's function returned (a ragged list, a 0-d or
an object array, a complex or a huge array, an arbitrary object): it answers with a sentence.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from convcourse.grading.structure import explain_shape, explain_values
from convcourse.reference import (
    TOLERANCES,
    Conv2dCase,
    explicit_padding,
    pair,
    reference_conv2d,
)

#: Tolerance for an output in a dtype coarser than float32 (float16, bfloat16).
_HALF_TOLERANCE = {"rtol": 1e-2, "atol": 1e-3}
#: ``padding_mode`` names in ``np.pad``, and how each mode fills the border.
_NP_PAD = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
_MODE_FIX = {
    "zeros": "fill the border with zeros",
    "reflect": "mirror the input around its edge without repeating the edge value "
               "(np.pad mode='reflect', F.pad mode='reflect')",
    "replicate": "repeat the edge value outwards (np.pad mode='edge', F.pad mode='replicate')",
    "circular": "wrap around to the opposite side of the input (np.pad mode='wrap', "
                "F.pad mode='circular')",
}


def _tolerance(dtype_name: str) -> dict:
    if dtype_name == "float64":
        return TOLERANCES[torch.float64]
    if dtype_name in ("float16", "bfloat16"):
        return _HALF_TOLERANCE
    return TOLERANCES[torch.float32]


def _allclose(a: torch.Tensor, b: torch.Tensor, tolerance: dict) -> bool:
    if a.shape != b.shape:
        return False
    return torch.allclose(a.to("cpu", torch.float64), b.to("cpu", torch.float64), **tolerance)


def close(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    """Whether two outputs agree within the tolerance of ``expected``'s dtype."""
    tolerance = TOLERANCES.get(expected.dtype, TOLERANCES[torch.float32])
    return _allclose(actual, expected, tolerance)


# ---------------------------------------------------------------------------------------------
# The mistakes: each computes, from a case on the CPU and its correct output, the output that
# the mistake gives (None where it does not apply), with the reference on a modified case.
# ---------------------------------------------------------------------------------------------

def _ref(case: Conv2dCase, **changes) -> torch.Tensor:
    return reference_conv2d(case.with_(**changes))


def _pre_padded(case: Conv2dCase, sides, mode: str | None = None, extra=(0, 0)) -> Conv2dCase:
    """The case with ``x`` padded by hand (F.pad's ``sides`` in ``np.pad``'s ``mode``, then
    ``extra`` zero rows and columns at the bottom/right) and no padding left to do."""
    left, right, top, bottom = sides
    x = case.x.numpy()
    batch_axes = [(0, 0)] * (x.ndim - 2)
    x = np.pad(x, [*batch_axes, (top, bottom), (left, right)],
               mode=mode or _NP_PAD[case.padding_mode])
    x = np.pad(x, [*batch_axes, (0, extra[0]), (0, extra[1])])
    return case.with_(x=torch.from_numpy(x), padding=0, padding_mode="zeros")


def _flipped(case, expected):
    return _ref(case, weight=case.weight.flip(-2, -1))


def _padding_ignored(case, expected):
    if explicit_padding(case) == (0, 0, 0, 0):
        return None
    return _ref(case, padding=0)


def _padding_halved(case, expected):
    if isinstance(case.padding, str):
        return None
    p_h, p_w = pair(case.padding)
    return _ref(case, padding=(p_h // 2, p_w // 2))


def _padding_split(case, expected):
    """``padding`` read as the total and split, the odd one after: (p // 2, p - p // 2)."""
    if isinstance(case.padding, str):
        return None
    p_h, p_w = pair(case.padding)
    sides = (p_w // 2, p_w - p_w // 2, p_h // 2, p_h - p_h // 2)
    return reference_conv2d(_pre_padded(case, sides))


def _same_extra_first(case, expected):
    if case.padding != "same":
        return None
    left, right, top, bottom = explicit_padding(case)
    return reference_conv2d(_pre_padded(case, (right, left, bottom, top)))


def _same_split_evenly(case, expected):
    """'same' padded d*(k - 1) // 2 on both sides: one cell short after an odd total."""
    if case.padding != "same":
        return None
    left, right, top, bottom = explicit_padding(case)
    if (left, top) == (right, bottom):
        return None
    return reference_conv2d(_pre_padded(case, (left, left, top, top)))


def _fitted(output: torch.Tensor, expected: torch.Tensor) -> torch.Tensor | None:
    """``output`` cut to ``expected``'s height and width (None if it is smaller): what a
    loop over nn.Conv2d's output positions reads from a wider grid of windows."""
    h, w = expected.shape[-2:]
    if output.shape[-2] < h or output.shape[-1] < w:
        return None
    return output[..., :h, :w]


def _taps_stride_apart(case, expected):
    """Windows 1 apart and taps stride·dilation apart (the stride applied to the taps)."""
    steps = tuple(s * d for s, d in zip(pair(case.stride), pair(case.dilation), strict=True))
    if pair(case.stride) == (1, 1):
        return None
    return _fitted(_ref(case, stride=1, dilation=steps), expected)


def _windows_dilation_apart(case, expected):
    """Windows stride·dilation apart and taps next to each other (the dilation applied to
    where the windows start)."""
    steps = tuple(s * d for s, d in zip(pair(case.stride), pair(case.dilation), strict=True))
    if pair(case.dilation) == (1, 1):
        return None
    return _ref(case, stride=steps, dilation=1)


def _dilation(change: Callable[[int], int], *, leave_ones: bool = False):
    def output(case, expected):
        old = pair(case.dilation)
        new = tuple(change(d) for d in old)
        if min(new) < 1 or new == old or (leave_ones and new == (1, 1)):
            return None
        return _ref(case, dilation=new)
    return output


def _stride_ignored(case, expected):
    return None if pair(case.stride) == (1, 1) else _ref(case, stride=1)


def _stride_dilation_swapped(case, expected):
    if pair(case.stride) == pair(case.dilation):
        return None
    return _ref(case, stride=case.dilation, dilation=case.stride)


def _rounded_up(case, expected):
    """Windows counted with ceil: as if the padded input had zeros up to one more window."""
    left, right, top, bottom = explicit_padding(case)
    extra = []
    for size, pads, k, d, s in zip(case.x.shape[-2:], (top + bottom, left + right),
                                   case.weight.shape[-2:], pair(case.dilation),
                                   pair(case.stride), strict=True):
        extra.append((-(size + pads - d * (k - 1) - 1)) % s)
    if extra == [0, 0]:
        return None
    return reference_conv2d(_pre_padded(case, (left, right, top, bottom), extra=extra))


def _missing_plus_one(case, expected):
    if min(expected.shape[-2:]) < 2:
        return None
    return expected[..., :-1, :-1]


def _counted_without_ones(case, expected):
    """Windows counted as floor((H + 2*padding - dilation*(k - 1)) / stride): the - 1 and the
    + 1 of the formula both left out (with stride 1, the same output as "+ 1 missing")."""
    left, right, top, bottom = explicit_padding(case)
    sizes = [(size + pads - d * (k - 1)) // s for size, pads, k, d, s in zip(
        case.x.shape[-2:], (top + bottom, left + right), case.weight.shape[-2:],
        pair(case.dilation), pair(case.stride), strict=True)]
    if min(sizes) < 1 or sizes == list(expected.shape[-2:]):
        return None
    return expected[..., : sizes[0], : sizes[1]]


def _batch_kept(case, expected):
    return expected.unsqueeze(0) if case.x.dim() == 3 else None


def _height_width_swapped(case, expected):
    return expected.transpose(-2, -1)


def _batch_channel_swapped(case, expected):
    return expected.transpose(0, 1) if expected.dim() == 4 else None


def _kernel_transposed(case, expected):
    """Tap (i, j) given the weight of tap (j, i); for a kH x kW kernel that is not square, the
    same slip as windows flattened column by column and the weight row by row."""
    c_out, c_group, k_h, k_w = case.weight.shape
    weight = case.weight.reshape(c_out, c_group, k_w, k_h).transpose(-2, -1)
    return _ref(case, weight=weight.contiguous())


def _in_out_swapped(case, expected):
    """Each group's weight read as (C_in/groups, C_out/groups, kH, kW)."""
    c_out, c_group, k_h, k_w = case.weight.shape
    groups = case.groups
    weight = case.weight.reshape(groups, c_group, c_out // groups, k_h, k_w).transpose(1, 2)
    return _ref(case, weight=weight.reshape(case.weight.shape))


def _flattened_channels_last(case, expected):
    """Windows flattened as (C, kH, kW), weight read as if flattened (kH, kW, C)."""
    c_out, c_group, k_h, k_w = case.weight.shape
    return _ref(case, weight=case.weight.reshape(c_out, k_h, k_w, c_group).permute(0, 3, 1, 2))


def _flattened_channels_first(case, expected):
    """Windows flattened as (kH, kW, C), weight flattened (C, kH, kW)."""
    c_out, c_group, k_h, k_w = case.weight.shape
    return _ref(case, weight=case.weight.permute(0, 2, 3, 1).reshape(case.weight.shape))


def _groups_ignored(case, expected):
    if case.groups == 1:
        return None
    first = case.x[..., : case.weight.shape[1], :, :]
    return _ref(case, x=torch.cat([first] * case.groups, dim=-3))


def _groups_interleaved(case, expected):
    """Output channel o computed from group o % groups (instead of o // (C_out/groups))."""
    groups, c_out = case.groups, case.weight.shape[0]
    if groups == 1:
        return None
    per_group = c_out // groups
    place = torch.tensor([(o % groups) * per_group + o // groups for o in range(c_out)])
    weight = torch.empty_like(case.weight)
    weight[place] = case.weight
    bias = None
    if case.bias is not None:
        bias = torch.empty_like(case.bias)
        bias[place] = case.bias
    return _ref(case, weight=weight, bias=bias).index_select(-3, place)


def _bias_missing(case, expected):
    return None if case.bias is None else _ref(case, bias=None)


def _bias_twice(case, expected):
    return None if case.bias is None else _ref(case, bias=2 * case.bias)


def _bias_per_input_channel(case, expected):
    """The bias added inside the loop over a group's input channels: C_in/groups times."""
    c_group = case.weight.shape[1]
    if case.bias is None:
        return None
    return _ref(case, bias=c_group * case.bias)


def _bias_on_last_axis(case, expected):
    if case.bias is None:
        return None
    without = _ref(case, bias=None)
    if without.shape[-1] != case.bias.shape[0]:
        return None  # `out + bias` would not even broadcast
    return without + case.bias


def _padded_as(mode: str):
    def output(case, expected):
        if case.padding_mode in ("zeros", mode) or explicit_padding(case) == (0, 0, 0, 0):
            return None
        return _ref(case, padding_mode=mode)
    return output


def _reflect_repeating_edge(case, expected):
    if case.padding_mode != "reflect":
        return None
    return reference_conv2d(_pre_padded(case, explicit_padding(case), mode="symmetric"))


@dataclass(frozen=True)
class Mistake:
    """A common mistake: what its output would be, and what to tell the learner."""

    name: str
    output: Callable[[Conv2dCase, torch.Tensor], torch.Tensor | None]
    #: What was done and how to fix it; ``{padding_mode}`` and ``{mode_fix}`` are filled in.
    advice: str

    def message(self, case: Conv2dCase) -> str:
        """The advice for ``case``, its fields filled in."""
        return self.advice.format(padding_mode=case.padding_mode,
                                  mode_fix=_MODE_FIX.get(case.padding_mode, ""))


_WINDOWS = "floor((H + 2*padding - dilation*(kH - 1) - 1) / stride) + 1"

#: The common mistakes, most likely first (the first match is the one named).
MISTAKES: tuple[Mistake, ...] = (
    Mistake("flipped kernel", _flipped,
            "your output equals a true convolution: you flipped the kernel. PyTorch's conv2d is "
            "a cross-correlation: use weight[..., i, j] as it is, without flipping."),
    Mistake("bias missing", _bias_missing,
            "your output is off by a constant per output channel, exactly the bias: you did not "
            "add it. Add bias[c] to every value of output channel c."),
    Mistake("bias added twice", _bias_twice,
            "your output has the bias added twice: add bias[c] once, to output channel c."),
    Mistake("bias added per input channel", _bias_per_input_channel,
            "your output has the bias added once per input channel (C_in/groups times): add "
            "bias[c] once to output channel c, after the sum over the input channels, not "
            "inside it."),
    Mistake("bias on the last axis", _bias_on_last_axis,
            "you added the bias along the last axis (the width) instead of the channel axis: "
            "`out + bias` broadcasts over W; add bias[:, None, None] instead."),
    Mistake("padding ignored", _padding_ignored,
            "you did not pad x: nn.Conv2d first pads H and W by `padding` on each side "
            "(padding='same' pads dilation*(k - 1) in total along each axis), then slides the "
            "kernel over the padded input."),
    *(Mistake("padding read as the total", output,
              "you padded about padding // 2 on each side, as if `padding` were the total: it "
              "is the amount added on EACH side (top, bottom, left and right), so pad by "
              "`padding` on every side.")
      for output in (_padding_halved, _padding_split)),
    Mistake("'same' extra on the wrong side", _same_extra_first,
            "with padding='same' and an odd total, you put the extra row or column at the "
            "top/left: PyTorch pads total // 2 before and the rest after, so the extra goes to "
            "the bottom/right."),
    Mistake("'same' split evenly", _same_split_evenly,
            "with padding='same' and an odd total d*(k - 1), you split the 'same' padding "
            "evenly, d*(k - 1) // 2 on each side, which is one cell short: PyTorch pads "
            "total // 2 before and the rest, total - total // 2, after (bottom/right)."),
    Mistake("padding_mode ignored", _padded_as("zeros"),
            "you padded with zeros, but padding_mode='{padding_mode}': {mode_fix}."),
    Mistake("reflect repeats the edge", _reflect_repeating_edge,
            "your padding repeats the edge value (as np.pad's mode='symmetric' does), but "
            "padding_mode='reflect' mirrors around the edge pixel without repeating it: use "
            "np.pad's mode='reflect' (F.pad's mode='reflect')."),
    *(Mistake(f"padded as {mode}", _padded_as(mode),
              f"you padded as padding_mode='{mode}', but it is '{{padding_mode}}': "
              "{mode_fix}.")
      for mode in ("reflect", "replicate", "circular")),
    Mistake("dilation ignored", _dilation(lambda d: 1),
            "you ignored dilation: kernel tap (i, j) reads x[..., h*stride + i*dilation, "
            "w*stride + j*dilation], so a window spans dilation*(k - 1) + 1 pixels with gaps "
            "between the taps."),
    Mistake("dilation + 1", _dilation(lambda d: d + 1),
            "your kernel taps are dilation + 1 apart: dilation is the step between taps "
            "(dilation=1 is an ordinary kernel), so tap i sits at i*dilation."),
    # (dilation - 1 that is 1 along both axes is "dilation ignored", just above)
    Mistake("dilation - 1", _dilation(lambda d: d - 1, leave_ones=True),
            "your kernel taps are dilation - 1 apart: tap i sits at i*dilation, so dilation=2 "
            "leaves one pixel between taps."),
    Mistake("stride and dilation swapped", _stride_dilation_swapped,
            "you swapped stride and dilation: stride is the step between windows, dilation the "
            "step between the taps inside one window; check the order of the arguments."),
    Mistake("stride on the taps", _taps_stride_apart,
            "your windows are 1 apart and their taps stride·dilation apart: the stride is "
            "the step between windows, not between taps. Tap (i, j) of output (h, w) reads "
            "x[..., h*stride + i*dilation, w*stride + j*dilation]."),
    Mistake("dilation on the windows", _windows_dilation_apart,
            "your windows are stride·dilation apart and their taps next to each other: the "
            "dilation is the step between a window's taps, not between windows. Tap (i, j) "
            "of output (h, w) reads x[..., h*stride + i*dilation, w*stride + j*dilation]."),
    Mistake("stride ignored", _stride_ignored,
            "you ignored stride: the window moves `stride` pixels at a time, so keep every "
            "stride-th window (output row h starts at input row h*stride)."),
    Mistake("windows rounded up", _rounded_up,
            "you rounded the number of windows up: the size formula rounds down (floor), so a "
            "last window that would run past the padded input is dropped, not padded."),
    Mistake("+ 1 missing", _missing_plus_one,
            "your output is one row and one column short: you left out the + 1 of the size "
            "formula (the first window sits at position 0; floor(...) counts the steps after "
            "it)."),
    Mistake("- 1 and + 1 missing", _counted_without_ones,
            "you left out the + 1 and the - 1 of the size formula: you counted "
            "floor((H + 2*padding - dilation*(kH - 1)) / stride) windows, but the first "
            "window sits at position 0 and floor((H + 2*padding - dilation*(kH - 1) - 1) / "
            "stride) counts the steps after it, so add 1."),
    Mistake("groups ignored", _groups_ignored,
            "every group read the first C_in/groups input channels: group g must read its own "
            "input channels, g*C_in/groups up to (g + 1)*C_in/groups, to produce its output "
            "channels g*C_out/groups up to (g + 1)*C_out/groups."),
    Mistake("groups interleaved", _groups_interleaved,
            "your output channels take the groups in turn (channel o from group o % groups): a "
            "group owns a block of consecutive output channels, so channel o belongs to group "
            "o // (C_out/groups)."),
    Mistake("kernel transposed", _kernel_transposed,
            "your kernel is read transposed: tap (i, j) got the weight of tap (j, i), as when "
            "windows are flattened column by column and the weight row by row. weight is "
            "(C_out, C_in/groups, kH, kW): its third axis runs down the rows (H), its fourth "
            "along the columns (W); flatten windows and weight in the same order."),
    Mistake("weight's channel axes swapped", _in_out_swapped,
            "you read the weight's first two axes as (C_in, C_out): weight is (C_out, "
            "C_in/groups, kH, kW), so output channel o uses weight[o], and weight[o, c] "
            "multiplies input channel c of its group; use it as it is, no reshape."),
    *(Mistake("windows and weight flattened differently", output,
              "your windows and your weight are flattened in different orders (channels first "
              "in one, channels last in the other): flatten both as (C_in/groups, kH, kW), e.g. "
              "weight.reshape(C_out, -1) and windows ordered (channel, row, column).")
      for output in (_flattened_channels_last, _flattened_channels_first)),
    Mistake("batch axis kept", _batch_kept,
            "for an unbatched x (C_in, H, W) the output must be unbatched too, "
            "(C_out, H_out, W_out): remove the batch axis you added before returning."),
    Mistake("height and width swapped", _height_width_swapped,
            "your output's height and width axes are swapped: return (N, C_out, H_out, W_out), "
            "rows (H) before columns (W)."),
    Mistake("batch and channels swapped", _batch_channel_swapped,
            "your output's batch and channel axes are swapped: return (N, C_out, H_out, W_out), "
            "the batch first."),
)


def _on_cpu(case: Conv2dCase) -> Conv2dCase:
    def cpu(t):
        return None if t is None else t.detach().cpu()
    return case.with_(x=cpu(case.x), weight=cpu(case.weight), bias=cpu(case.bias))


def mistake_outputs(case: Conv2dCase, expected: torch.Tensor | None = None
                    ) -> list[tuple[Mistake, torch.Tensor]]:
    """Each mistake that applies to ``case`` with its output (on the CPU), leaving out those
    whose output is the right answer (they could blame a correct output)."""
    case = _on_cpu(case)
    expected = reference_conv2d(case) if expected is None else expected.detach().cpu()
    tolerance = _tolerance(str(expected.dtype).removeprefix("torch."))
    outputs = []
    for mistake in MISTAKES:
        try:
            output = mistake.output(case, expected)
        except Exception:  # noqa: BLE001, S112  (a modified case nn.Conv2d refuses: skip it)
            continue
        if output is not None and not _allclose(output, expected, tolerance):
            outputs.append((mistake, output))
    return outputs


# ---------------------------------------------------------------------------------------------
# Naming a mistake: only when it is proven.
# ---------------------------------------------------------------------------------------------

#: What a message says when several mistakes fit and the probes could not tell which.
UNDECIDED = "these tests could not tell which"


def _fits(values: torch.Tensor, case: Conv2dCase, expected: torch.Tensor,
          tolerance: dict) -> list[Mistake]:
    """The mistakes whose output is ``values`` on ``case``."""
    return [mistake for mistake, output in mistake_outputs(case, expected)
            if tuple(output.shape) == tuple(values.shape)
            and _allclose(values, output, tolerance)]


def probe_cases(case: Conv2dCase) -> list[Conv2dCase]:
    """Cases that tell mistakes apart which give the same output on ``case``: the same
    arguments with fresh values, then with other sizes (one more row, two more columns, one
    more input channel per group, a kernel one tap larger along each axis, which turns an
    odd 'same' total even and back)."""
    x, weight = case.x, case.weight
    seed = int(sum(x.shape) * 1000 + sum(weight.shape))
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(x.device,
                                                                                x.dtype)

    def drawn(x_shape, weight_shape):
        bias = None if case.bias is None else draw(weight_shape[0])
        return case.with_(x=draw(*x_shape), weight=draw(*weight_shape), bias=bias)

    c_out, c_group, k_h, k_w = weight.shape
    grown = (*x.shape[:-3], case.groups * (c_group + 1), x.shape[-2] + 3, x.shape[-1] + 4)
    probes = [drawn(tuple(x.shape), tuple(weight.shape)),
              drawn(grown, (c_out, c_group + 1, k_h + 1, k_w + 1))]
    # Then one argument changed at a time: one more cell of padding on each side, one more
    # step of stride (padding='same' allows no stride).
    other = drawn((*x.shape[:-2], *grown[-2:]), tuple(weight.shape))
    if not isinstance(case.padding, str):
        probes.append(other.with_(padding=tuple(p + 1 for p in pair(case.padding))))
    if case.padding != "same":
        probes.append(other.with_(stride=tuple(s + 1 for s in pair(case.stride))))
    return probes


def _agrees(mistake: Mistake, probe: Conv2dCase, learner) -> bool | None:
    """Whether ``mistake`` predicts the learner's output on ``probe`` (None: no telling)."""
    out = _output(learner)
    if out is None or out.kind not in "fi":
        return None
    probe = _on_cpu(probe)
    expected = reference_conv2d(probe)
    try:
        predicted = mistake.output(probe, expected)
    except Exception:  # noqa: BLE001  (a modified case nn.Conv2d refuses: no prediction)
        return None
    predicted = expected if predicted is None else predicted
    if out.shape != tuple(predicted.shape):
        return False
    return _allclose(out.values(), predicted, _looser(_tolerance(out.dtype), expected))


def _probed(candidates: list[Mistake], case: Conv2dCase, rerun) -> list[Mistake]:
    """The candidates that also predict the learner's output on every probe case that it
    computes (a probe the learner's function fails on, or that PyTorch refuses, tells
    nothing)."""
    for probe in probe_cases(case):
        try:
            reference_conv2d(probe)
            learner = rerun(probe)
        except Exception:  # noqa: BLE001, S112  (refused or raised: this probe tells nothing)
            continue
        verdicts = [(mistake, _agrees(mistake, probe, learner)) for mistake in candidates]
        candidates = [mistake for mistake, agrees in verdicts if agrees is not False]
        if not candidates:
            break
    return candidates


def _named(values: torch.Tensor, case: Conv2dCase, expected: torch.Tensor, tolerance: dict,
           rerun) -> str | None:
    """The advice of the one mistake that is proven, or a sentence saying that a few fit
    (``UNDECIDED``) and how to tell them apart; None when none fits.

    A mistake fits when its output is ``values``. With ``rerun``, each fitting mistake must
    also predict the learner's output on :func:`probe_cases`, and one that does not is
    dropped: an output that two different slips both produce never names either alone.
    """
    candidates = _fits(values, case, expected, tolerance)
    if candidates and rerun is not None:
        candidates = _probed(candidates, case, rerun)
    candidates = list({mistake.name: mistake for mistake in reversed(candidates)}.values())
    candidates.reverse()  # one per name, the first of each, in the table's order
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0].message(case)
    listed = " Or: ".join(mistake.message(case) for mistake in candidates)
    return (f"your output is what {len(candidates)} different mistakes give on this input, and "
            f"{UNDECIDED} (run your function on a second input of other sizes and compare "
            f"with F.conv2d to tell them apart). Either: {listed}")


# ---------------------------------------------------------------------------------------------
# What the learner returned, as numbers.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Output:
    """A returned array or tensor: its shape, dtype name, device, and (lazily) its values."""

    raw: object
    shape: tuple[int, ...]
    dtype: str
    kind: str  # 'f' float, 'i' integer, 'b' bool, 'c' complex, 'O' object, 'U' text, ...
    device: str | None  # a tensor's device type; None for NumPy arrays
    is_tensor: bool

    def values(self) -> torch.Tensor:
        """The values as float64 on the CPU (a copy)."""
        if self.is_tensor:
            return self.raw.detach().to("cpu", torch.float64)
        return torch.from_numpy(np.array(self.raw, dtype=np.float64))


def _output(actual) -> _Output | None:
    if isinstance(actual, torch.Tensor):
        dtype = actual.dtype
        kind = ("c" if dtype.is_complex else "f" if dtype.is_floating_point
                else "b" if dtype == torch.bool else "i")
        return _Output(actual, tuple(actual.shape), str(dtype).removeprefix("torch."), kind,
                       actual.device.type, True)
    if isinstance(actual, np.ndarray):
        kind = actual.dtype.kind
        kind = "i" if kind in "iu" else kind
        return _Output(actual, tuple(actual.shape), actual.dtype.name, kind, None, False)
    return None


def _position(index: tuple[int, ...]) -> str:
    return "out[" + ", ".join(map(str, index)) + "]"


def _first(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0])


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


# ---------------------------------------------------------------------------------------------
# The diagnosis.
# ---------------------------------------------------------------------------------------------

def diagnose(actual, case: Conv2dCase, expected: torch.Tensor | None = None, *,
             rerun: Callable[[Conv2dCase], object] | None = None) -> str | None:
    """``None`` if ``actual`` is what ``nn.Conv2d`` outputs for ``case``; else what is wrong.

    ``expected`` (the reference output) is computed when not given. ``rerun``, where given,
    runs the learner's function again on another case (:func:`probe_cases`): a mistake that
    reproduces ``actual`` is named only if it reproduces those outputs too. Whatever
    ``actual`` is, the answer is ``None`` or a sentence; nothing ``actual`` holds makes this
    raise.
    """
    with _one_thread(), warnings.catch_warnings():
        # Silent: plain `nbgrader autograde` scores a test cell 0 if it writes to stderr (as a
        # warning does); the course's grader only asks whether a test raised.
        warnings.simplefilter("ignore")
        expected = (reference_conv2d(case) if expected is None else expected).detach().cpu()
        try:
            return _diagnose(actual, case, expected, rerun)
        except Exception as error:  # noqa: BLE001  (the learner's object misbehaved)
            return (f"the output could not be read as numbers ({type(error).__name__}): return "
                    f"an array of shape {tuple(expected.shape)} and dtype "
                    f"{_dtype_name(expected)}.")


@contextlib.contextmanager
def _one_thread():
    """Run PyTorch's CPU operators on one thread for the duration.

    The candidates are a few dozen convolutions of tiny tensors: threads cannot speed them up,
    and on a busy machine their synchronisation makes them many times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def _diagnose(actual, case: Conv2dCase, expected: torch.Tensor, rerun) -> str | None:
    wanted = f"an array of shape {tuple(expected.shape)} and dtype {_dtype_name(expected)}"
    if actual is None:
        return ("it returned None: did you forget the `return` statement at the end of the "
                f"function? It must return {wanted}.")
    out = _output(actual)
    if out is None:
        return _not_an_array(actual, expected, wanted)
    problem = _kind_problem(out, wanted)
    if problem:
        return problem
    if out.device is not None and out.device != case.x.device.type:
        return (f"the output is on {out.device}, but x is on {case.x.device.type}: create the "
                "output on x.device (e.g. torch.zeros(..., device=x.device)).")
    if out.shape != tuple(expected.shape):
        return _shape_problem(out, case, expected, rerun)
    values = out.values()
    problem = _not_finite(values)
    if problem:
        return problem
    return _value_problem(out, values, case, expected, rerun)


def _not_an_array(actual, expected: torch.Tensor, wanted: str) -> str:
    name = type(actual).__name__
    if isinstance(actual, (list, tuple)):
        what = f"a tuple of {_plural(len(actual), 'item')}" if isinstance(actual, tuple) else (
            f"a {name}")
        try:
            right = close(torch.from_numpy(np.asarray(actual, dtype=np.float64)), expected)
        except Exception:  # noqa: BLE001  (ragged or not numbers)
            right = False
        if right:
            return (f"it returned {what} whose values are right, but not an array: return "
                    f"{wanted}, e.g. np.asarray(result, dtype=x.dtype).")
        if isinstance(actual, tuple):
            return f"it returned {what}, not an array: return only the output, {wanted}."
        return (f"it returned {what}, not an array: build the output as an array "
                f"(np.zeros / np.asarray) and return {wanted}.")
    if isinstance(actual, (int, float, complex, np.generic)):
        return (f"it returned a single number ({name}), not an array: conv2d returns one value "
                f"per output position, {wanted}.")
    return f"it returned {name}, not an array of numbers: return {wanted}."


def _kind_problem(out: _Output, wanted: str) -> str | None:
    if out.kind == "c":
        return (f"the output is complex ({out.dtype}), but the convolution of real inputs is "
                f"real: compute it in x's dtype and return {wanted}.")
    if out.kind == "b":
        return (f"the output holds booleans (dtype {out.dtype}), not numbers: return {wanted}.")
    if out.kind == "O":
        return ("the output is an array of Python objects (dtype object), which np.array makes "
                "from a ragged list or from arrays of different shapes: build a numeric array "
                f"instead, {wanted}.")
    if out.kind not in "fi":
        return f"the output's dtype is {out.dtype}, not numbers: return {wanted}."
    return None


def _axis_differences(shape: tuple[int, ...], expected: tuple[int, ...]) -> str:
    if len(shape) != len(expected):
        layout = "(N, C_out, H_out, W_out)" if len(expected) == 4 else (
            "(C_out, H_out, W_out) for an unbatched x (C_in, H, W)")
        return f"{len(shape)} axes instead of {len(expected)}: {layout}"
    names = ["N", "C_out", "H_out", "W_out"][-len(expected):]
    sources = {"N": "x.shape[0]", "C_out": "weight.shape[0]"}
    parts = []
    for name, got, want in zip(names, shape, expected, strict=True):
        if got != want:
            source = f"{sources[name]} = " if name in sources else ""
            parts.append(f"{name} is {got}, expected {source}{want}")
    return "; ".join(parts)


def _size_rule(case: Conv2dCase, expected: tuple[int, ...]) -> str:
    left, right, top, bottom = explicit_padding(case)
    terms = []
    for size, before, after, k, d, s, out in zip(
            case.x.shape[-2:], (top, left), (bottom, right), case.weight.shape[-2:],
            pair(case.dilation), pair(case.stride), expected[-2:], strict=True):
        pad = f"2*{before}" if before == after else f"{before} + {after}"
        terms.append(f"floor(({size} + {pad} - {d}*({k} - 1) - 1) / {s}) + 1 = {out}")
    padding = "" if not isinstance(case.padding, str) else (
        f" (padding={case.padding!r} pads {top} + {bottom} rows and {left} + {right} columns)")
    return (f"nn.Conv2d gives H_out = {_WINDOWS}{padding} = {terms[0]}, and likewise "
            f"W_out = {terms[1]}")


def _shape_problem(out: _Output, case: Conv2dCase, expected: torch.Tensor, rerun) -> str:
    shape, want = out.shape, tuple(expected.shape)
    message = (f"the output has shape {shape}, expected {want} "
               f"({_axis_differences(shape, want)}). {_size_rule(case, want)}.")
    if not shape:
        return message + (" You summed everything into one number: sum only over the input "
                          "channels of the group and the kernel's taps, once per output value.")
    values = None
    if math.prod(shape) <= 10 * expected.numel() + 1000:  # never copy a huge wrong answer
        values = out.values()
    if values is not None and torch.isfinite(values).all():
        tolerance = _looser(_tolerance(out.dtype), expected)
        named = _named(values, case, expected, tolerance, rerun)
        if named:
            lead = "" if UNDECIDED in named else "Your output matches a known mistake: "
            return message + f" {lead}{named[0].upper() if not lead else named[0]}{named[1:]}"
    structural = explain_shape(shape, _on_cpu(case), want, values=values)
    return message + (f" {structural}" if structural else "")


def _looser(tolerance: dict, expected: torch.Tensor) -> dict:
    own = _tolerance(_dtype_name(expected))
    return {key: max(tolerance[key], own[key]) for key in own}


def _not_finite(values: torch.Tensor) -> str | None:
    for bad, what, why in (
            (torch.isnan(values), "NaN", "those values were never written (np.empty, or an "
             "array filled with NaN and left partly unfilled) or come from 0/0 or inf - inf; "
             "compute every output position"),
            (torch.isinf(values), "inf", "a value overflowed or was divided by zero; every "
             "output is a finite sum of products")):
        if bad.any():
            return (f"the output contains {what} at {int(bad.sum())} of {values.numel()} "
                    f"positions (the first at {_position(_first(bad))}): {why}.")
    return None


def _value_problem(out: _Output, values: torch.Tensor, case: Conv2dCase,
                   expected: torch.Tensor, rerun) -> str | None:
    want = _dtype_name(expected)
    tolerance = _looser(_tolerance(out.dtype), expected)
    dtype_note = ""
    right = _allclose(values, expected, tolerance)
    if out.dtype != want:
        cast = "out.to(x.dtype)" if out.is_tensor else "out.astype(x.dtype)"
        if right:
            return (f"the values are right but the dtype is {out.dtype}, expected {want} (the "
                    f"input's): create arrays with dtype=x.dtype, or return {cast}.")
        if out.kind == "i":
            zeros = "torch.zeros" if out.is_tensor else "np.zeros"
            return (f"the output's dtype is {out.dtype}, an integer type, so every value was "
                    f"truncated: create the output in x's dtype ({want}), e.g. "
                    f"{zeros}(shape, dtype=x.dtype), not with an integer dtype.")
        dtype_note = f" Also, the dtype is {out.dtype}: keep the input's, {want}."
    elif right:
        return None
    named = _named(values, case, expected, tolerance, rerun)
    if named:
        return named + dtype_note
    structural = explain_values(values, _on_cpu(case), expected, tolerance)
    if structural:
        return structural + dtype_note
    return _where_it_differs(values, case, expected, tolerance) + dtype_note


def _where_it_differs(values: torch.Tensor, case: Conv2dCase, expected: torch.Tensor,
                      tolerance: dict) -> str:
    reference = expected.to(torch.float64)
    wrong = ~torch.isclose(values, reference, **tolerance)
    difference = (values - reference).abs()
    worst = _first(difference == difference.max())
    message = (f"the values differ from nn.Conv2d's at {int(wrong.sum())} of {wrong.numel()} "
               f"positions; the largest difference is {difference.max().item():.3g}, at "
               f"{_position(worst)} (yours {values[worst].item():.6g}, expected "
               f"{reference[worst].item():.6g})")
    hints = [hint for hint in (check(values, reference, wrong, case) for check in _PATTERNS)
             if hint]
    if hints:
        return message + "; " + hints[0] + "."
    return (message + ". Print yours and F.conv2d's output for a tiny input (one channel, a "
            "few pixels, a kernel of distinct integers) to see where they part.")


# Patterns in where the wrong values sit: each returns a hint, or None.

def _constant_per_channel(values, reference, wrong, case):
    difference = values - reference
    batched = difference if difference.dim() == 4 else difference.unsqueeze(0)
    flat = batched.transpose(0, 1).reshape(batched.shape[1], -1)
    spread = (flat - flat[:, :1]).abs().max()
    if flat.shape[1] > 1 and spread <= 1e-4 * (1 + reference.abs().max()):
        return ("the difference is the same for every value of an output channel, which points "
                "at the bias: add bias[c] exactly once to output channel c")
    return None


def _only_near_padding(values, reference, wrong, case):
    if explicit_padding(case) == (0, 0, 0, 0):
        return None
    touches = _touches_padding(case)
    if touches.shape == wrong.shape and not (wrong & ~touches).any():
        return ("only outputs whose window overlaps the padding are wrong, so the interior is "
                "right: check the padding (how much on each side, and the padding_mode)")
    return None


def _only_last_row_or_column(values, reference, wrong, case):
    inner = wrong[..., :-1, :-1]
    if wrong.shape[-1] > 1 and wrong.shape[-2] > 1 and not inner.any():
        return ("only the last output row or column is wrong: check the loop bounds and the "
                "last window along each axis")
    return None


def _only_some_images(values, reference, wrong, case):
    if wrong.dim() < 4:
        return None
    return _only_some(wrong.reshape(wrong.shape[0], -1).any(dim=1), "image",
                      "every image of the batch must go through the same computation")


def _only_some_channels(values, reference, wrong, case):
    per_channel = wrong.transpose(0, -3).reshape(wrong.shape[-3], -1).any(dim=1)
    if case.groups > 1:
        return _only_some(per_channel.reshape(case.groups, -1).any(dim=1), "group",
                          "check which input channels and weights each group uses")
    return _only_some(per_channel, "output channel",
                      "check how each output channel picks its weights")


def _only_some(wrong: torch.Tensor, name: str, advice: str) -> str | None:
    """A hint when only some of ``wrong``'s entries (one per image, channel...) are wrong."""
    count = int(wrong.sum())
    if count == wrong.numel() or wrong.numel() < 2:
        return None
    which = ", ".join(str(int(i)) for i in wrong.nonzero().flatten()[:6])
    which += ", ..." if count > 6 else ""
    names, verb = (f"{name}s", "are") if count > 1 else (name, "is")
    return f"only {names} {which} of {wrong.numel()} {verb} wrong: {advice}"


def _only_a_few(values, reference, wrong, case):
    count = int(wrong.sum())
    if not 2 <= count <= 3 or count == wrong.numel():
        return None  # (one wrong value is already named by the message)
    where = ", ".join(_position(tuple(int(i) for i in index)) for index in wrong.nonzero())
    return f"only {where} are wrong: work those outputs out by hand and compare"


_PATTERNS = (
    _constant_per_channel,
    _only_near_padding,
    _only_last_row_or_column,
    _only_a_few,
    _only_some_images,
    _only_some_channels,
)


def _touches_padding(case: Conv2dCase) -> torch.Tensor:
    """Which outputs read at least one padded pixel (True), as a mask of the output's shape."""
    left, right, top, bottom = explicit_padding(case)
    inside = torch.zeros(case.x.shape, dtype=torch.float64)
    border = torch.nn.functional.pad(inside, (left, right, top, bottom), value=1.0)
    ones = torch.ones(case.weight.shape, dtype=torch.float64)
    count = reference_conv2d(Conv2dCase(border, ones, None, case.stride, 0, case.dilation,
                                        case.groups))
    return count > 0
