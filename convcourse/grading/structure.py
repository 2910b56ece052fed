"""Explain a wrong conv2d output by how it relates to the right one, when no known mistake
(:data:`convcourse.grading.diagnose.MISTAKES`) produced it.

Two entry points, called by :func:`~convcourse.grading.diagnose.diagnose` after the table of
known mistakes has had its say:

- :func:`explain_shape`: for each wrong axis, which single argument value would give the
  learner's size (the output-size formula solved for it), and which axes are right;
- :func:`explain_values`: a constant factor, a per-channel shift, a flipped sign, an
  activation, rounding at float16/bfloat16/float32 level, errors only at the border rows or
  columns, channels never computed, a sum over only some input channels, a kernel flipped
  along one axis only.

Each rule is one small function that returns a sentence naming the argument or the step to
look at, or None. A rule fires only when the learner's output matches what it describes
(within the output's tolerance), and it is only asked about outputs that are wrong, so a
correct output is never blamed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from convcourse.reference import (
    TOLERANCES,
    Conv2dCase,
    explicit_padding,
    pair,
    reference_conv2d,
)

AXES = ("height", "width")


# ---------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------

def _windows(size: int, pads: int, k: int, d: int, s: int) -> int | None:
    """nn.Conv2d's output size along one axis, or None where no window fits."""
    span = d * (k - 1) + 1
    if s < 1 or size + pads < span:
        return None
    return (size + pads - span) // s + 1


class _Axis:
    """The numbers of the size formula along one spatial axis (0: height, 1: width)."""

    def __init__(self, case: Conv2dCase, axis: int):
        left, right, top, bottom = explicit_padding(case)
        self.axis, self.name = axis, AXES[axis]
        self.size = case.x.shape[-2 + axis]
        self.before, self.after = ((top, bottom), (left, right))[axis]
        self.k = case.weight.shape[-2 + axis]
        self.d, self.s = pair(case.dilation)[axis], pair(case.stride)[axis]

    def size_with(self, *, size=None, per_side=None, k=None, d=None, s=None) -> int | None:
        pads = self.before + self.after if per_side is None else 2 * per_side
        return _windows(self.size if size is None else size, pads, self.k if k is None else k,
                        self.d if d is None else d, self.s if s is None else s)


_PAIR_QUESTION = "is the pair read as (width, height)? The first number is the height's."


#: What a size rule returns: its sentence, and the arguments (changed on the case) whose
#: output it says the learner computed; None for a sentence that only describes the size.
_Said = tuple[str, "dict | None"]


def _swapped(value) -> tuple[int, int]:
    height, width = pair(value)
    return (width, height)


def _pair_swap(case: Conv2dCase, axis: int, got: int) -> _Said | None:
    """The learner's size is what the other axis's value of a pair argument gives."""
    here, there = _Axis(case, axis), _Axis(case, 1 - axis)
    wrong_way = _PAIR_QUESTION
    options = [("stride", {"s": there.s}, here.s != there.s, case.stride),
               ("dilation", {"d": there.d}, here.d != there.d, case.dilation)]
    if not isinstance(case.padding, str):
        p_here, p_there = pair(case.padding)[axis], pair(case.padding)[1 - axis]
        options.append(("padding", {"per_side": p_there}, p_here != p_there, case.padding))
    options.append(("kernel_size", {"k": there.k}, here.k != there.k, None))
    for name, change, differs, passed in options:
        if differs and here.size_with(**change) == got:
            value = next(iter(change.values()))
            if name == "kernel_size":
                return (f"your {_label(axis)} = {got} is what a kernel size of {value} gives "
                        f"along the {here.name}, the kernel's size along the {there.name}: "
                        "weight is (C_out, C_in/groups, kH, kW), kH = weight.shape[-2] runs "
                        "down the rows, kW = weight.shape[-1] along them.",
                        {"weight": case.weight.transpose(-2, -1)})
            return (f"your {_label(axis)} = {got} is what {name} {value} gives along the "
                    f"{here.name}; you passed {name}={passed!r}: {wrong_way}",
                    {name: _swapped(passed)})
    if here.size_with(size=there.size) == got and here.size != there.size:
        return (f"your {_label(axis)} = {got} is what an input {there.size} long gives along "
                f"the {here.name}, the input's {there.name}: x is (N, C_in, H, W), H = "
                "x.shape[-2] and W = x.shape[-1].", {"x": case.x.transpose(-2, -1)})
    return None


def _one_argument(case: Conv2dCase, axis: int, got: int) -> _Said | None:
    """The learner's size is what one other value of stride, padding or dilation gives."""
    here = _Axis(case, axis)
    per_side = None if isinstance(case.padding, str) else pair(case.padding)[axis]
    tries = [("stride", "s", here.s, range(1, max(8, here.size + 1))),
             ("dilation", "d", here.d, range(1, 9))]
    if per_side is not None:
        tries.insert(1, ("padding", "per_side", per_side, range(0, 2 * per_side + 5)))
    defaults = {"stride": 1, "padding": 0, "dilation": 1}
    found = []
    for name, key, passed, values in tries:
        for value in values:
            if value != passed and here.size_with(**{key: value}) == got:
                found.append((value != defaults[name], name, value, passed))
                break
    if not found:
        return None
    _, name, value, passed = min(found)
    how = (f"as if {name} were ignored" if value == defaults[name] else
           f"as if {name} were {value}")
    changed = list(pair(getattr(case, name)))
    changed[axis] = value
    return (f"your {_label(axis)} = {got} is what {name} {value} gives along the {here.name} "
            f"({how}; here it is {passed}): check how {name} enters your computation along the "
            f"{here.name}.", {name: tuple(changed)})


def _off_by_one(case: Conv2dCase, axis: int, got: int) -> _Said | None:
    """One window too few or too many along this axis only."""
    here = _Axis(case, axis)
    want = here.size_with()
    if want is None or abs(got - want) != 1:
        return None
    span = here.d * (here.k - 1) + 1
    if got == want + 1:
        return (f"your {_label(axis)} = {got} has one window more than nn.Conv2d's along the "
                f"{here.name}: a window must fit in the padded input, so the last one starts "
                f"at most {here.size + here.before + here.after} - {span} (rounding down).",
                None)
    return _described(case, axis, got)


def _described(case: Conv2dCase, axis: int, got: int) -> _Said | None:
    """What a wrong size is, named by nothing: so many rows or columns short or over."""
    here = _Axis(case, axis)
    want = here.size_with()
    if want is None or got == want:
        return None
    lines = ("row", "column")[axis]
    count = abs(got - want)
    return (f"your {_label(axis)} = {got} is {count} {lines}{'s' if count > 1 else ''} "
            f"{'short' if got < want else 'over'} along the {here.name} (nn.Conv2d gives "
            f"{want}): work out the padding on each side, the span dilation*(k - 1) + 1 and "
            "the number of windows along that axis by hand, and compare them with yours.", None)


def _label(axis: int) -> str:
    return ("H_out", "W_out")[axis]


_SPATIAL_RULES: tuple[Callable[[Conv2dCase, int, int], _Said | None], ...] = (
    _pair_swap, _one_argument, _off_by_one, _described)


def _proven(changes: dict | None, case: Conv2dCase, values: torch.Tensor | None) -> bool:
    """Whether a sentence may stand: it only describes (``changes`` None), or no values were
    given to hold it to (a size alone), or the output of ``case`` with ``changes`` is
    ``values``, all of them."""
    if changes is None or values is None:
        return True
    try:
        output = reference_conv2d(case.with_(**changes)).to(torch.float64)
    except (RuntimeError, ValueError, IndexError):  # a change PyTorch refuses: unproven
        return False
    tolerance = TOLERANCES.get(case.x.dtype, TOLERANCES[torch.float32])
    return output.shape == values.shape and torch.allclose(values.to(torch.float64), output,
                                                           **tolerance)


def _channel_rule(case: Conv2dCase, got: int) -> str | None:
    c_out, c_group = case.weight.shape[:2]
    c_in = case.x.shape[-3]
    if got == c_in and c_in != c_out:
        return (f"your C_out = {got} is x's number of channels C_in: the output has one "
                f"channel per filter, C_out = weight.shape[0] = {c_out}.")
    if case.groups > 1 and got == c_out // case.groups:
        return (f"your C_out = {got} is one group's share of the output channels: every group "
                f"g adds its own C_out/groups channels, {case.groups} groups in all, "
                f"{c_out} channels.")
    if got == c_group and c_group != c_out:
        return (f"your C_out = {got} is weight.shape[1] = C_in/groups: the number of output "
                f"channels is weight.shape[0] = {c_out}.")
    return None


def _said_once(sentences: list[str]) -> list[str]:
    """The advice after a sentence's first colon, given once: later it is "as above"."""
    said, kept = set(), []
    for sentence in sentences:
        head, colon, advice = sentence.partition(": ")
        kept.append(f"{head}: as above." if colon and advice in said else sentence)
        said.add(advice)
    return kept


def explain_shape(shape: tuple[int, ...], case: Conv2dCase,
                  expected: tuple[int, ...], *, values: torch.Tensor | None = None
                  ) -> str | None:
    """Sentences explaining each wrong axis of ``shape``, and naming the right ones; None when
    no wrong axis can be explained (or the ranks differ).

    A size that one other argument value gives is a clue, not a proof: many slips give the
    same size. Given the learner's ``values``, such a sentence stands only where that value
    reproduces them; otherwise the size is described (so many rows short along the height).
    """
    if len(shape) != len(expected) or len(shape) < 3:
        return None
    names = ["N", "C_out", "H_out", "W_out"][-len(expected):]
    explained, right = [], []
    for name, got, want in zip(names, shape, expected, strict=True):
        if got == want:
            right.append(name)
            continue
        if name in ("H_out", "W_out"):
            axis = ("H_out", "W_out").index(name)
            sentence = next((said[0] for rule in _SPATIAL_RULES
                             if (said := rule(case, axis, got))
                             and _proven(said[1], case, values)), None)
        elif name == "C_out":
            sentence = _channel_rule(case, got)
        else:
            sentence = None
        if sentence:
            explained.append(sentence[0].upper() + sentence[1:])
    if not explained:
        return None
    explained = _said_once(explained)
    if right:
        explained.append(f"({', '.join(right)} {'is' if len(right) == 1 else 'are'} right.)")
    return " ".join(explained)


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

class _Values:
    """The learner's values and the reference's, in float64 on the CPU, with the tolerance."""

    def __init__(self, values: torch.Tensor, case: Conv2dCase, expected: torch.Tensor,
                 tolerance: dict):
        self.values, self.case, self.tolerance = values, case, tolerance
        self.expected = expected.to("cpu", torch.float64)
        bias = case.bias
        shape = [-1, 1, 1]
        self.bias = (torch.zeros(self.expected.shape[-3], dtype=torch.float64) if bias is None
                     else bias.detach().to("cpu", torch.float64))
        self.bias_map = self.bias.reshape(shape)
        self.products = self.expected - self.bias_map  # the sums of products, without bias

    def like(self, candidate: torch.Tensor) -> bool:
        """Whether the learner's values are ``candidate`` (and ``candidate`` is wrong)."""
        if candidate.shape != self.values.shape:
            return False
        candidate = candidate.to(torch.float64)
        return (torch.allclose(self.values, candidate, **self.tolerance)
                and not torch.allclose(candidate, self.expected, **self.tolerance))

    def reference(self, **changes) -> torch.Tensor:
        return reference_conv2d(self.case.with_(**changes)).to(torch.float64)


def _fraction(value: float) -> str:
    """A factor as a learner would recognise it: 1/27, 2, -1, 0.37."""
    if abs(value) > 1e-12 and abs(1 / value - round(1 / value)) < 1e-6 * abs(1 / value):
        return f"1/{round(1 / value)}"
    if abs(value - round(value)) < 1e-9:
        return str(round(value))
    return f"{value:.4g}"


def _constant_factor(v: _Values) -> str | None:
    """values = c * (sums of products) (+ bias): an average, a scale, a sign."""
    for base, extra in ((v.products, v.bias_map), (v.expected, 0.0)):
        norm = float((base * base).sum())
        if norm == 0:
            continue
        c = float(((v.values - extra) * base).sum()) / norm
        if abs(c - 1) < 1e-6 or not v.like(c * base + extra):
            continue
        c_group, k_h, k_w = v.case.weight.shape[1:]
        names = [(c_group * k_h * k_w, "C_in/groups·kH·kW), the number of products in a "
                  "window: you averaged (np.mean) where conv2d sums (np.sum"),
                 (k_h * k_w, "kH·kW), the number of kernel taps: you averaged over the taps "
                  "where conv2d sums them (np.sum"),
                 (c_group, "C_in/groups), the number of input channels per group: you "
                  "averaged over them where conv2d sums them (np.sum")]
        if abs(c + 1) < 1e-6:
            return ("your output is the right one with the opposite sign: a product or a "
                    "subtraction has its sign flipped (out -= ... instead of +=, or x - w).")
        for count, why in names:  # the first that fits: a whole window before its parts
            if count > 1 and abs(c * count - 1) < 1e-6:
                return f"your output is 1/{count} times the right one, 1/({why})."
        return (f"your output is {_fraction(c)} times the right one, at every position: look "
                "for a stray factor (a division, a scale, a sum counted twice).")
    return None


def _per_channel_shift(v: _Values) -> str | None:
    """values - expected is one constant per output channel that says what happened to the
    bias (the table names a missing or doubled bias)."""
    difference = v.values - v.expected
    batched = difference if difference.dim() == 4 else difference.unsqueeze(0)
    flat = batched.transpose(0, 1).reshape(batched.shape[1], -1)
    shift = flat[:, 0]
    if flat.shape[1] < 2 or not v.like(v.expected + shift.reshape(-1, 1, 1)):
        return None
    if v.case.bias is None:
        return ("your output is off by a constant per output channel although bias is None: "
                "add no bias when there is none (start from zeros).")
    if torch.allclose(shift, -2 * v.bias, **v.tolerance):
        return ("your output is off by -2·bias[c] in each channel c: you subtracted the bias "
                "instead of adding it.")
    added = v.bias + shift  # the learner's bias, channel by channel
    if torch.allclose(added.sort().values, v.bias.sort().values, **v.tolerance):
        return ("each output channel got another channel's bias: add bias[c] to output "
                "channel c (bias[:, None, None] in (C_out, H_out, W_out) order).")
    return None  # another shift: diagnose's hint on the differences points at the bias


def _activation(v: _Values) -> str | None:
    """An activation applied to the output (or to the sums, before the bias)."""
    functions = {"a ReLU (max(out, 0))": torch.relu, "an absolute value": torch.abs,
                 "tanh": torch.tanh, "a sigmoid": torch.sigmoid}
    for name, function in functions.items():
        for base, extra in ((v.expected, 0.0), (v.products, v.bias_map)):
            if v.like(function(base) + extra):
                where = "" if isinstance(extra, float) else " (before adding the bias)"
                lead = ("your output is zero exactly where the right one is negative, and "
                        "right elsewhere: " if function is torch.relu else "")
                return (f"{lead}you applied {name} to the output{where}: conv2d returns the "
                        "plain sums of products plus bias; activations belong to the next "
                        "layer.")
    return None


#: The dtypes whose rounding a computation meant for float64 or float32 may have suffered.
_COARSER = {"float64": (torch.float32, torch.float16, torch.bfloat16),
            "float32": (torch.float16, torch.bfloat16)}


def within_float32(values: torch.Tensor, expected: torch.Tensor) -> bool:
    """Whether ``values`` are what a computation in float32 gives for a float64 ``expected``:
    within float32's tolerance of it, and not within float64's."""
    values, expected = values.to(torch.float64), expected.to(torch.float64)
    return (expected.shape == values.shape
            and torch.allclose(values, expected, **TOLERANCES[torch.float32])
            and not torch.allclose(values, expected, **TOLERANCES[torch.float64]))


def _rounding(v: _Values) -> str | None:
    """Every value as close to the right one as inputs rounded to a coarser dtype leave it:
    the relative error (against the size of the terms summed) is that dtype's."""
    wanted = str(v.case.x.dtype).removeprefix("torch.")
    magnitude = v.reference(x=v.case.x.abs(), weight=v.case.weight.abs(),
                            bias=None if v.case.bias is None else v.case.bias.abs())
    if magnitude.shape != v.values.shape:
        return None

    def error(values: torch.Tensor) -> float:
        return float(((values - v.expected).abs() / (magnitude + 1e-30)).max())

    mine = error(v.values)
    if mine == 0:
        return None
    fits = []
    if wanted == "float64" and within_float32(v.values, v.expected):
        # What float32 gives, within float32's own tolerance: its inputs' rounding alone
        # (the typical error below) is smaller than what its sums add, so it is not compared.
        fits.append((0.0, "float32"))
    for dtype in _COARSER.get(wanted, ()) if not fits else ():
        if dtype == torch.float32:
            continue
        rounded = {name: None if t is None else t.to(dtype).to(v.case.x.dtype)
                   for name, t in (("x", v.case.x), ("weight", v.case.weight),
                                   ("bias", v.case.bias))}
        typical = error(v.reference(**rounded))
        if typical > 0 and typical / 16 <= mine <= 4 * typical:
            fits.append((abs(math.log(mine / typical)), str(dtype).removeprefix("torch.")))
    if not fits:
        return None
    dtype = min(fits)[1]
    return (f"your values are right to about {mine:.1g} of their size, the rounding of {dtype}: "
            f"part of your computation ran in {dtype} (an astype, a dtype=..., a tensor made "
            f"without dtype=x.dtype); compute in x's dtype, {wanted}.")


def _border(v: _Values) -> str | None:
    """Only output rows (or only columns) whose windows reach into the padding are wrong."""
    wrong = ~torch.isclose(v.values, v.expected, **v.tolerance)
    lines = [wrong.reshape(-1, *wrong.shape[-2:]).any(dim=0).any(dim=1 - axis) for axis in (0, 1)]
    inside = [not (lines[axis] & ~_padded_positions(v.case, axis, len(lines[axis]))).any()
              for axis in (0, 1)]
    if inside[0] == inside[1]:
        return None  # both axes' borders (diagnose's hint), or not the border at all
    axis = 0 if inside[0] else 1
    index = ", ".join(str(int(i)) for i in lines[axis].nonzero().flatten()[:6])
    left, right, top, bottom = explicit_padding(v.case)
    before, after = ((top, bottom), (left, right))[axis]
    return (f"only output {('rows', 'columns')[axis]} {index} are wrong: each overlaps the "
            f"padding along the {AXES[axis]} ({before} before, {after} after), and the rest is "
            f"right: check the padding along the {AXES[axis]}, how much and with what "
            f"(padding_mode='{v.case.padding_mode}').")


def _padded_positions(case: Conv2dCase, axis: int, count: int) -> torch.Tensor:
    """Which output positions along ``axis`` read a padded cell (a bool per position)."""
    here = _Axis(case, axis)
    span = here.d * (here.k - 1)
    starts = torch.arange(count) * here.s - here.before
    return (starts < 0) | (starts + span >= here.size)


def _channels_missing(v: _Values) -> str | None:
    """Some output channels hold nothing but zeros (or only the bias): never computed."""
    values = v.values if v.values.dim() == 4 else v.values.unsqueeze(0)
    products = (values - v.bias_map).transpose(0, 1).reshape(values.shape[1], -1)
    alone = (products.abs() <= v.tolerance["atol"]).all(dim=1)
    zero = (values.transpose(0, 1).reshape(values.shape[1], -1) == 0).all(dim=1)
    missing = alone | zero
    expected = v.expected if v.expected.dim() == 4 else v.expected.unsqueeze(0)
    filled = expected.transpose(0, 1).reshape(expected.shape[1], -1)
    if not missing.any() or missing.all() or (filled[missing].abs() == 0).all():
        return None
    keep = ~missing
    if not torch.allclose(values.transpose(0, 1)[keep], expected.transpose(0, 1)[keep],
                          **v.tolerance):
        return None
    which = ", ".join(str(int(i)) for i in missing.nonzero().flatten()[:6])
    groups = ""
    if v.case.groups > 1:
        per_group = values.shape[1] // v.case.groups
        hit = sorted({int(i) // per_group for i in missing.nonzero().flatten()})
        groups = f" (group{'s' if len(hit) > 1 else ''} {', '.join(map(str, hit))})"
    return (f"output channels {which}{groups} were never computed (they hold zeros or only the "
            "bias) and the others are right: check the range of your loop over the groups or "
            "output channels (range(groups - 1)?).")


def _filters_of_other_channels(v: _Values) -> str | None:
    """Each output channel's sums are another channel's: the filters are picked wrongly."""
    mine = (v.values - v.bias_map).transpose(0, -3).reshape(v.values.shape[-3], -1)
    right = v.products.transpose(0, -3).reshape(v.products.shape[-3], -1)
    used = []
    for channel in mine:
        found = [p for p in range(len(right))
                 if torch.allclose(channel, right[p], **v.tolerance)]
        if not found:
            return None
        used.append(found[0])
    if used == list(range(len(used))):
        return None
    pairs = ", ".join(f"channel {o} used weight[{p}]" for o, p in enumerate(used) if o != p)
    return (f"your output channels were computed with other channels' filters ({pairs}): output "
            "channel o must use weight[o] (and bias[o]).")


def _channel_subset(v: _Values) -> str | None:
    """The sum ran over only some of each group's input channels."""
    c_group = v.case.weight.shape[1]
    if c_group < 2:
        return None
    subsets = {"all but the last": list(range(c_group - 1)), "all but the first":
               list(range(1, c_group)), "only the first": [0], "only the last": [c_group - 1]}
    for name, kept in subsets.items():
        mask = torch.zeros(c_group, dtype=v.case.weight.dtype)
        mask[kept] = 1
        if v.like(v.reference(weight=v.case.weight * mask.reshape(1, -1, 1, 1))):
            channels = ", ".join(map(str, kept))
            return (f"your output is what {name} of each group's {c_group} input channels "
                    f"(channel{'s' if len(kept) > 1 else ''} {channels}) give: the sum over the "
                    "input channels must take all C_in/groups of them; check its range.")
    return None


def _flipped_one_axis(v: _Values) -> str | None:
    """The kernel flipped along one axis only (a flip along both is in the table)."""
    for axis, how in ((-2, "weight[..., ::-1, :]"), (-1, "weight[..., :, ::-1]")):
        if v.like(v.reference(weight=v.case.weight.flip(axis))):
            return (f"your kernel is flipped along the {AXES[axis + 2]} only ({how}): PyTorch's "
                    "conv2d flips nothing, use weight[..., i, j] as it is.")
    return None


def _shifted(v: _Values) -> str | None:
    """The right output moved by one row or column: windows that start one step off."""
    expected = v.expected
    for axis, name in ((-2, "row"), (-1, "column")):
        if expected.shape[axis] < 2:
            continue
        for step in (1, -1):
            moved = expected.roll(step, dims=axis)
            inner = [slice(None)] * expected.dim()
            inner[axis] = slice(1, None) if step == 1 else slice(None, -1)
            inner = tuple(inner)
            if torch.allclose(v.values[inner], moved[inner], **v.tolerance) and not \
                    torch.allclose(moved[inner], expected[inner], **v.tolerance):
                way = "late" if step == 1 else "early"
                return (f"your output is the right one moved by one {name}: your windows start "
                        f"one {name} {way}; output position h reads the input from "
                        "h*stride - padding on.")
    return None


_VALUE_RULES: tuple[Callable[[_Values], str | None], ...] = (
    _constant_factor, _activation, _rounding, _per_channel_shift, _flipped_one_axis,
    _channel_subset, _channels_missing, _filters_of_other_channels, _border, _shifted)


def explain_values(values: torch.Tensor, case: Conv2dCase, expected: torch.Tensor,
                   tolerance: dict) -> str | None:
    """How a wrong output of the right shape relates to the right one (a sentence), or None.

    ``values`` and ``expected`` are on the CPU; ``case`` is too; ``tolerance`` is the output's.
    """
    if not math.prod(values.shape) or (values.shape == expected.shape and torch.allclose(
            values.to(torch.float64), expected.to(torch.float64), **tolerance)):
        return None  # nothing to explain: a correct output is never blamed
    view = _Values(values.to(torch.float64), case, expected, tolerance)
    for rule in _VALUE_RULES:
        try:
            sentence = rule(view)
        except (RuntimeError, ValueError, IndexError):  # a modified case PyTorch refuses
            sentence = None
        if sentence:
            return sentence
    return None
