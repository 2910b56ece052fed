"""Pictures of the backward pass: where a gradient lands, and the transposed convolution.

Everything is single-channel and computed with PyTorch. Where an output gradient reaches the
input is measured with autograd through ``F.conv2d``; the transposed convolution is built from
zero insertion, ``F.pad``, ``torch.flip`` and ``F.conv2d``, and the tests hold it to
``torch.nn.grad.conv2d_input``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from convcourse.figures.grids import CELL_INCHES, Box, draw_grid, write_between
from convcourse.reference import Size, pair


def output_size(size: Size, kernel_size: Size, stride: Size = 1, padding: Size = 0,
                dilation: Size = 1) -> tuple[int, int]:
    """``(H_out, W_out)`` of a single-channel ``F.conv2d`` on a ``size`` input, by running it."""
    out = F.conv2d(torch.zeros(1, 1, *pair(size)), torch.zeros(1, 1, *pair(kernel_size)),
                   stride=stride, padding=padding, dilation=dilation)
    return tuple(out.shape[-2:])


def input_gradient(grad_out, weight, size: Size, stride: Size = 1, padding: Size = 0,
                   dilation: Size = 1) -> torch.Tensor:
    """``grad_x`` (2-D, float64) of a single-channel ``F.conv2d`` on a ``size`` input.

    ``weight`` is ``(kH, kW)`` and ``grad_out`` ``(H_out, W_out)``. Found by autograd: the
    convolution runs forwards on a zero input and ``grad_out`` is sent back through it (the
    gradient does not depend on ``x``, the convolution being linear in it).
    """
    w = torch.as_tensor(weight, dtype=torch.float64)
    g = torch.as_tensor(grad_out, dtype=torch.float64)
    x = torch.zeros(1, 1, *pair(size), dtype=torch.float64, requires_grad=True)
    out = F.conv2d(x, w[None, None], stride=stride, padding=padding, dilation=dilation)
    if out.shape[-2:] != g.shape:
        raise ValueError(f"grad_out must be {tuple(out.shape[-2:])}, got {tuple(g.shape)}")
    out.backward(g[None, None])
    return x.grad[0, 0]


def numbered_kernel(kernel_size: Size) -> torch.Tensor:
    """A ``kH x kW`` float64 kernel whose taps are numbered 1, 2, ... row by row."""
    kh, kw = pair(kernel_size)
    return torch.arange(1, kh * kw + 1, dtype=torch.float64).reshape(kh, kw)


def footprint(size: Size, kernel_size: Size = 3, stride: Size = 1, padding: Size = 0,
              dilation: Size = 1, at: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Which input cells the one output gradient ``grad_out[at]`` reaches, and through which tap.

    Returns an integer ``size`` grid: the number of the tap (1, 2, ... as in
    :func:`numbered_kernel`) that carries ``grad_out[at]`` to each cell, 0 where it does not
    arrive (taps that fall on the padding carry it nowhere).
    """
    kernel = numbered_kernel(kernel_size)
    one_hot = torch.zeros(output_size(size, kernel_size, stride, padding, dilation),
                          dtype=torch.float64)
    one_hot[at] = 1
    return input_gradient(one_hot, kernel, size, stride, padding, dilation).round().long()


def reach_count(size: Size, kernel_size: Size = 3, stride: Size = 1, padding: Size = 0,
                dilation: Size = 1) -> torch.Tensor:
    """How many (output position, tap) pairs read each input cell: an integer ``size`` grid.

    It is ``grad_x`` for an all-ones kernel and an all-ones ``grad_out``. A 0 marks a cell that
    no output reads, so whatever the weights and upstream gradient, its gradient is 0.
    """
    ones = torch.ones(output_size(size, kernel_size, stride, padding, dilation),
                      dtype=torch.float64)
    kernel = torch.ones(pair(kernel_size), dtype=torch.float64)
    return input_gradient(ones, kernel, size, stride, padding, dilation).round().long()


def unread(size: Size, kernel_size: Size = 3, stride: Size = 1, padding: Size = 0,
           dilation: Size = 1) -> tuple[list[int], list[int]]:
    """The input rows and the input columns that no output reads (their gradient is always 0).

    Read off :func:`reach_count`: the count of a cell is its row's count times its column's,
    so a row is unread exactly when its whole row of counts is 0.
    """
    count = reach_count(size, kernel_size, stride, padding, dilation)
    rows = (count == 0).all(dim=1).nonzero().flatten().tolist()
    cols = (count == 0).all(dim=0).nonzero().flatten().tolist()
    return rows, cols


def _describe(indices: list[int]) -> str:
    return ", ".join(str(i) for i in indices) if indices else "none"


def gradient_reach_figure(size: Size = 8, kernel_size: Size = 3, stride: Size = 2,
                          padding: Size = 0, dilation: Size = 1,
                          at: tuple[int, int] = (1, 1)) -> Figure:
    """Three panels: a one-hot ``grad_out``, the taps it reaches on ``grad_x``, and the count
    of reads per input cell (cells read by nobody shaded, their rows and columns named).
    """
    h_out, w_out = output_size(size, kernel_size, stride, padding, dilation)
    one_hot = torch.zeros(h_out, w_out)
    one_hot[at] = 1
    taps = footprint(size, kernel_size, stride, padding, dilation, at)
    count = reach_count(size, kernel_size, stride, padding, dilation)
    rows, cols = unread(size, kernel_size, stride, padding, dilation)
    kh, kw = pair(kernel_size)
    height, width = taps.shape
    fig, axes = plt.subplots(
        1, 3,
        figsize=(CELL_INCHES * (w_out + 2 * width + 5), CELL_INCHES * (height + 2.6)),
        gridspec_kw={"width_ratios": [w_out, width, width]},
    )
    draw_grid(axes[0], one_hot, title=f"grad_out\n1 at {tuple(at)}",
              boxes=[Box(at[0], at[1], linewidth=2)])
    draw_grid(axes[1], taps, title=f"grad_x: taps 1–{kh * kw}\nthat carry it", vmin=0,
              vmax=2 * kh * kw, shade=(taps == 0).numpy(),
              boxes=[Box(int(r), int(c), linewidth=2) for r, c in taps.nonzero()])
    draw_grid(axes[2], count, title=f"reads per cell\nunread rows: {_describe(rows)}; "
              f"cols: {_describe(cols)}", shade=(count == 0).numpy(), vmin=0,
              vmax=2 * int(count.max()))
    for ax in axes:
        ax.set_anchor("N")
    write_between(axes, ["→"])
    fig.tight_layout()
    plt.close(fig)
    return fig


def spread(grad_out, stride: Size = 1) -> torch.Tensor:
    """``grad_out`` (2-D) with ``stride - 1`` zeros inserted between neighbouring entries."""
    g = torch.as_tensor(grad_out)
    sh, sw = pair(stride)
    out = g.new_zeros(sh * (g.shape[0] - 1) + 1, sw * (g.shape[1] - 1) + 1)
    out[::sh, ::sw] = g
    return out


def transposed_steps(grad_out, weight, stride: Size = 1,
                     dilation: Size = 1) -> dict[str, torch.Tensor]:
    """The transposed convolution of a 2-D ``grad_out`` with a 2-D ``weight``, step by step.

    Returns ``spread`` (zeros inserted by the stride), ``padded`` (that, padded by
    ``dilation * (k - 1)`` on every side), ``flipped`` (the kernel turned by 180°) and
    ``result``: ``padded`` cross-correlated with ``flipped`` at the forward dilation. The result
    is ``grad_x`` over the input cells that the forward pass reads, before any cropping of
    padding.
    """
    g = torch.as_tensor(grad_out, dtype=torch.float64)
    w = torch.as_tensor(weight, dtype=torch.float64)
    dh, dw = pair(dilation)
    extra_h, extra_w = dh * (w.shape[0] - 1), dw * (w.shape[1] - 1)
    spread_out = spread(g, stride)
    padded = F.pad(spread_out, (extra_w, extra_w, extra_h, extra_h))
    flipped = torch.flip(w, dims=(0, 1))
    result = F.conv2d(padded[None, None], flipped[None, None], dilation=dilation)[0, 0]
    return {"spread": spread_out, "padded": padded, "flipped": flipped, "result": result}


def transposed_figure(grad_out, weight, stride: Size = 2, dilation: Size = 1) -> Figure:
    """``grad_out`` → spread and padded ⋆ flipped kernel = ``grad_x``, one panel each.

    In the spread panel the entries of ``grad_out`` are outlined and every inserted or padding
    zero is shaded.
    """
    steps = transposed_steps(grad_out, weight, stride, dilation)
    dh, dw = pair(dilation)
    kh, kw = steps["flipped"].shape
    mark = transposed_steps(torch.ones_like(torch.as_tensor(grad_out)), weight, stride,
                            dilation)["padded"] != 0
    sh, sw = pair(stride)
    panels = [
        (torch.as_tensor(grad_out), "grad_out", {}),
        (steps["padded"], f"spread by stride {sh}×{sw},\npadded by {dh * (kh - 1)}×{dw * (kw - 1)}",
         {"shade": (~mark).numpy(),
          "boxes": [Box(int(r), int(c), linewidth=2) for r, c in mark.nonzero()]}),
        (steps["flipped"], "weight\nflipped", {}),
        (steps["result"], "grad_x\n(cells read)", {}),
    ]
    widths = [p[0].shape[1] for p in panels]
    height = max(p[0].shape[0] for p in panels)
    fig, axes = plt.subplots(
        1, len(panels),
        figsize=(CELL_INCHES * (sum(widths) + 1.4 * len(panels)), CELL_INCHES * (height + 2.4)),
        gridspec_kw={"width_ratios": widths},
    )
    for ax, (values, title, options) in zip(axes, panels, strict=True):
        draw_grid(ax, values, title=title, **options)
    write_between(axes, ["→", "⋆", "="])
    fig.tight_layout()
    plt.close(fig)
    return fig
