"""The backward pass of a convolution, computed so that each classic mistake is one switch.

Every output value reads the padded input at rows ``i·stride + u·dilation`` (output row ``i``,
kernel row ``u``), and likewise for columns. The three gradients follow from that one index
rule: ``grad_bias`` sums ``grad_out``; ``grad_weight[o, c, u, v]`` sums ``grad_out[n, o, i, j]``
times the input value that tap read; ``grad_x`` receives ``grad_out[n, o, i, j] ·
weight[o, c, u, v]`` at every position a tap read, summed within each group, with the padding
cropped off. :func:`backward` computes exactly that, by gathering (and scattering) with the
index rule, in float64.

:class:`Slips` switches one part of the rule to what a learner gets wrong: the kernel flipped
for ``grad_x``, the stride not spreading ``grad_out`` (zero insertion) or not dilating the
correlation for ``grad_weight``, dilation dropped or swapped with the stride, gradients sent
across groups, ``grad_bias`` summed over the wrong axes or averaged. With no slip,
:func:`backward` is the right answer (the tests hold it to autograd), and the feedback names a
mistake when a learner's gradient equals the output of its switch and differs from the right one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from convcourse.reference import Conv2dCase, explicit_padding, pair


@dataclass(frozen=True)
class Slips:
    """Deviations from the right backward pass; the defaults are all ``False`` (right)."""

    flip: bool = False            # grad_x: the kernel flipped (a true convolution's gradient)
    x_unspread: bool = False      # grad_x: grad_out scattered 1 apart, not stride apart
    weight_undilated: bool = False  # grad_weight: windows 1 apart, not stride apart
    no_dilation: bool = False     # taps 1 apart, not dilation apart (both gradients)
    swapped: bool = False         # stride and dilation swapped in the index rule
    across_groups: bool = False   # grad_x: every output channel reaches every group
    bias_axes: tuple[int, ...] = (0, 2, 3)
    bias_mean: bool = False


RIGHT = Slips()


def _steps(case: Conv2dCase, slips: Slips, axis: int, *, for_x: bool) -> tuple[int, int]:
    """(step between windows, step between taps) along ``axis`` (0 rows, 1 columns)."""
    stride, dilation = pair(case.stride)[axis], pair(case.dilation)[axis]
    if slips.swapped:
        stride, dilation = dilation, stride
    if slips.no_dilation:
        dilation = 1
    if (slips.x_unspread if for_x else slips.weight_undilated):
        stride = 1
    return stride, dilation


def _positions(out_size: int, k: int, steps: tuple[int, int], padded: int) -> torch.Tensor | None:
    """Padded-input index read by output ``i`` and tap ``u``: ``(out_size, k)``, or None if a
    slip makes it run past the padded input (that slip cannot have produced this case)."""
    step, tap = steps
    index = torch.arange(out_size)[:, None] * step + torch.arange(k)[None, :] * tap
    return index if int(index.max()) < padded else None


def backward(case: Conv2dCase, grad_out: torch.Tensor, slips: Slips = RIGHT):
    """``(grad_x, grad_weight, grad_bias)`` of ``F.conv2d`` on ``case`` (zeros padding) for
    ``grad_out``, with ``slips`` applied; float64 tensors on the CPU, ``grad_bias`` None
    without a bias. ``None`` in place of a gradient a slip cannot produce for this case."""
    x = case.x.detach().to("cpu", torch.float64)
    weight = case.weight.detach().to("cpu", torch.float64)
    go = grad_out.detach().to("cpu", torch.float64)
    unbatched = x.dim() == 3
    if unbatched:
        x, go = x.unsqueeze(0), go.unsqueeze(0)
    left, right, top, bottom = explicit_padding(case)
    xp = torch.nn.functional.pad(x, (left, right, top, bottom))
    n, c_in, hp, wp = xp.shape
    c_out, c_per_group, k_h, k_w = weight.shape
    groups, h_out, w_out = case.groups, go.shape[2], go.shape[3]
    o_per_group = c_out // groups

    def flat_index(for_x: bool) -> torch.Tensor | None:
        rows = _positions(h_out, k_h, _steps(case, slips, 0, for_x=for_x), hp)
        cols = _positions(w_out, k_w, _steps(case, slips, 1, for_x=for_x), wp)
        if rows is None or cols is None:
            return None
        # (i, j, u, v) -> the flat position row * wp + col of the padded input
        return rows[:, None, :, None] * wp + cols[None, :, None, :]

    go_g = go.reshape(n, groups, o_per_group, h_out, w_out)
    kernels = weight.reshape(groups, o_per_group, c_per_group, k_h, k_w)

    grad_weight = None
    index = flat_index(for_x=False)
    if index is not None:
        windows = xp.reshape(n, c_in, hp * wp)[:, :, index]  # (N, C_in, Ho, Wo, kH, kW)
        windows = windows.reshape(n, groups, c_per_group, h_out, w_out, k_h, k_w)
        grad_weight = torch.einsum("ngohw,ngchwuv->gocuv", go_g, windows).reshape(weight.shape)

    grad_x = None
    index = flat_index(for_x=True)
    if index is not None:
        taps = kernels.flip(-2, -1) if slips.flip else kernels
        if slips.across_groups:  # each group's channels get the gradient of every kernel
            spread = torch.einsum("nphw,pcuv->nchwuv", go, weight.reshape(c_out, c_per_group,
                                                                          k_h, k_w))
            spread = spread.unsqueeze(1).expand(n, groups, *spread.shape[1:])
        else:
            spread = torch.einsum("ngohw,gocuv->ngchwuv", go_g, taps)
        grad_xp = torch.zeros(n, c_in, hp * wp, dtype=torch.float64)
        grad_xp.index_add_(2, index.reshape(-1), spread.reshape(n, c_in, -1))
        grad_x = grad_xp.reshape(n, c_in, hp, wp)[:, :, top:hp - bottom, left:wp - right]
        grad_x = grad_x[0] if unbatched else grad_x

    grad_bias = None
    if case.bias is not None:
        axes = slips.bias_axes  # of grad_out with its batch axis (unbatched: N = 1)
        grad_bias = go.mean(axes) if slips.bias_mean else go.sum(axes)
    return grad_x, grad_weight, grad_bias


@dataclass(frozen=True)
class Mistake:
    """One classic backward mistake: which gradient it spoils, the switch, and the advice."""

    gradient: str  # "grad_x", "grad_weight" or "grad_bias"
    slips: Slips
    message: str


MISTAKES = (
    Mistake("grad_x", Slips(flip=True),
            "grad_x matches a gradient computed with the kernel flipped the wrong way round: "
            "flipped where it must not be, or not flipped where it must. Tap (u, v) of output "
            "(i, j) read the padded input at row i·stride + u·dilation, column j·stride + "
            "v·dilation, so "
            "grad_out[n, o, i, j] · weight[o, c, u, v] goes back there: scattering grad_out "
            "that way uses the kernel as it is; correlating the spread, padded grad_out with "
            "the kernel needs it flipped, weight[..., ::-1, ::-1]."),
    Mistake("grad_x", Slips(x_unspread=True),
            "grad_x is what you get when grad_out is spread 1 row and column apart: the "
            "stride was lost. Output (i, j) read the input from row i·stride: put its gradient "
            "back there (insert stride − 1 zeros between grad_out's rows and columns)."),
    Mistake("grad_weight", Slips(weight_undilated=True),
            "grad_weight correlates x with grad_out as if the windows were 1 apart: the "
            "stride must become the dilation of that correlation (tap (u, v) meets x at rows "
            "u·dilation + i·stride)."),
    Mistake("grad_x", Slips(no_dilation=True),
            "grad_x ignores the dilation: tap (u, v) read the input dilation·u rows and "
            "dilation·v columns from the window's corner, so its gradient goes there."),
    Mistake("grad_weight", Slips(no_dilation=True),
            "grad_weight ignores the dilation: tap (u, v) of the kernel met the input "
            "dilation·u rows and dilation·v columns from each window's corner."),
    Mistake("grad_x", Slips(swapped=True),
            "grad_x uses the stride between taps and the dilation between windows: the "
            "dilation is applied to the wrong operand. Row i·stride + u·dilation is the one "
            "output (i, ·) and tap (u, ·) read."),
    Mistake("grad_weight", Slips(swapped=True),
            "grad_weight uses the stride between taps and the dilation between windows: the "
            "dilation is applied to the wrong operand. Tap (u, v) met rows u·dilation + "
            "i·stride of the padded input."),
    Mistake("grad_x", Slips(across_groups=True),
            "grad_x sends every output channel's gradient to every group: the kernels are not "
            "transposed per group. Input channel c of group g receives gradient only from the "
            "C_out/groups output channels of group g."),
    Mistake("grad_bias", Slips(bias_mean=True),
            "grad_bias is the mean of grad_out, not its sum: every position and image adds "
            "its grad_out to the bias gradient."),
    Mistake("grad_bias", Slips(bias_axes=(2, 3)),
            "grad_bias sums over the positions but not over the batch: sum grad_out over "
            "axes (0, 2, 3), everything but the channel."),
    Mistake("grad_bias", Slips(bias_axes=(0,)),
            "grad_bias sums over the batch only: sum grad_out over axes (0, 2, 3), every "
            "image and every position."),
    Mistake("grad_bias", Slips(bias_axes=(0, 1, 2, 3)),
            "grad_bias sums everything into one number: keep one sum per output channel, "
            "over axes (0, 2, 3)."),
)


def mistaken(case: Conv2dCase, grad_out: torch.Tensor, mistake: Mistake):
    """What ``mistake`` makes of its gradient on this case (None if it cannot arise)."""
    names = ("grad_x", "grad_weight", "grad_bias")
    return backward(case, grad_out, mistake.slips)[names.index(mistake.gradient)]


def unread(case: Conv2dCase) -> tuple[int, int]:
    """How many rows and columns at the bottom and right of the padded input no window reads
    (the stride does not divide): their gradient is zero."""
    left, right, top, bottom = explicit_padding(case)
    sizes = (case.x.shape[-2] + top + bottom, case.x.shape[-1] + left + right)
    return tuple((size - d * (k - 1) - 1) % s for size, k, s, d in zip(
        sizes, case.weight.shape[-2:], pair(case.stride), pair(case.dilation), strict=True))

