"""Pictures of the sliding window: where it goes, what it reads, and what it writes.

Every helper asks PyTorch what happens (``F.conv2d``, ``F.pad``, ``F.unfold``, autograd) and
draws that, so a picture cannot disagree with the layer. Figures come back closed; the
animation comes back as a :class:`~matplotlib.animation.FuncAnimation` whose figure is closed,
ready for :class:`convcourse.figures.player.Player`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from convcourse.figures.grids import (
    ACCENT_COLOR,
    CELL_INCHES,
    WINDOW_COLOR,
    Box,
    as_array,
    draw_grid,
    write_between,
)
from convcourse.reference import pair

Pair = int | tuple[int, int]


def as_grid(values) -> torch.Tensor:
    """Return ``values`` (nested lists, NumPy or torch) as a 2-D float64 tensor."""
    return torch.from_numpy(as_array(values).astype(np.float64))


def window_taps(
    padded_shape: tuple[int, int], kernel_size: Pair, *, stride: Pair = 1, dilation: Pair = 1
) -> torch.Tensor:
    """Return the cells each window reads, as ``(H_out, W_out, kH, kW, 2)`` (row, col) indices.

    Indices are into the *padded* input of shape ``padded_shape``. They come from ``F.unfold``
    applied to a grid of cell numbers, so they are the windows PyTorch itself forms.
    """
    height, width = padded_shape
    k_h, k_w = pair(kernel_size)
    numbers = torch.arange(height * width, dtype=torch.float64).reshape(1, 1, height, width)
    columns = F.unfold(numbers, (k_h, k_w), dilation=pair(dilation), stride=pair(stride))
    flat = columns[0].round().long().T  # (H_out * W_out, kH * kW), one row per window
    out_h = output_length(height, k_h, stride=pair(stride)[0], dilation=pair(dilation)[0])
    out_w = output_length(width, k_w, stride=pair(stride)[1], dilation=pair(dilation)[1])
    taps = torch.stack((flat // width, flat % width), dim=-1)
    return taps.reshape(out_h, out_w, k_h, k_w, 2)


def output_length(size: int, kernel: int, *, stride: int = 1, padding: int = 0,
                  dilation: int = 1) -> int:
    """Return the output length along one axis, measured by running ``F.conv2d`` on zeros."""
    probe = torch.zeros(1, 1, size, 1)
    weight = torch.zeros(1, 1, kernel, 1)
    out = F.conv2d(probe, weight, stride=(stride, 1), padding=(padding, 0),
                   dilation=(dilation, 1))
    return out.shape[2]


class _Labels:
    """A ``fmt`` for :func:`draw_grid` that leaves not-a-number cells blank."""

    def format(self, value: float) -> str:
        return "" if math.isnan(value) else f"{value:g}"


class _Window:
    """Everything one sliding-window picture needs, computed once with PyTorch."""

    def __init__(self, x, weight, stride: Pair, padding: Pair, dilation: Pair) -> None:
        self.x = as_grid(x)
        self.weight = as_grid(weight)
        self.stride, self.padding, self.dilation = pair(stride), pair(padding), pair(dilation)
        p_h, p_w = self.padding
        self.padded = F.pad(self.x[None, None], (p_w, p_w, p_h, p_h))[0, 0]
        self.pad_mask = F.pad(torch.zeros_like(self.x, dtype=torch.bool)[None, None],
                              (p_w, p_w, p_h, p_h), value=True)[0, 0]
        self.out = F.conv2d(self.x[None, None], self.weight[None, None], stride=self.stride,
                            padding=self.padding, dilation=self.dilation)[0, 0]
        self.taps = window_taps(tuple(self.padded.shape), tuple(self.weight.shape),
                                stride=self.stride, dilation=self.dilation)

    def products(self, i: int, j: int) -> torch.Tensor:
        """The ``kH x kW`` products summed into ``out[i, j]``."""
        rows, cols = self.taps[i, j, ..., 0], self.taps[i, j, ..., 1]
        return self.padded[rows, cols] * self.weight

    def arithmetic(self, i: int, j: int) -> str:
        """``out[i, j] = a·b + ... = value``, written out term by term."""
        rows, cols = self.taps[i, j, ..., 0], self.taps[i, j, ..., 1]
        terms = [f"{_number(a)}·{_number(b)}"
                 for a, b in zip(self.padded[rows, cols].flatten().tolist(),
                                 self.weight.flatten().tolist(), strict=True)]
        return f"out[{i}, {j}] = " + " + ".join(terms) + f" = {self.out[i, j].item():g}"

    def boxes(self, i: int, j: int) -> list[Box]:
        """The window of ``out[i, j]``: one box, or one box per tap when dilated."""
        top, left = self.taps[i, j, 0, 0].tolist()
        k_h, k_w = self.weight.shape
        if self.dilation == (1, 1):
            return [Box(top, left, k_h, k_w)]
        return [Box(r, c, linewidth=2.0) for r, c in self.taps[i, j].reshape(-1, 2).tolist()]

    def draw(self, axes: Sequence[Axes], i: int, j: int, *, filled: int | None = None) -> None:
        """Draw input, weight and output with the window of ``out[i, j]``.

        Only the first ``filled`` output cells (reading order) show a value; ``None``: all.
        """
        out = self.out.clone()
        if filled is not None:
            out.view(-1)[filled:] = float("nan")
        padded = self.pad_mask.any().item()
        for ax in axes:
            ax.clear()
        draw_grid(axes[0], self.padded, title="padded x" if padded else "x",
                  shade=self.pad_mask if padded else None, boxes=self.boxes(i, j),
                  vmin=self.x.min().item(), vmax=self.x.max().item())
        draw_grid(axes[1], self.weight, title="weight", cmap="Oranges")
        draw_grid(axes[2], out, title="out", fmt=_Labels(), shade=out.isnan(),
                  boxes=[Box(i, j)], vmin=self.out.min().item(), vmax=self.out.max().item())
        write_between(axes, "⋆=")

    def figure(self, dpi: float | None = None) -> tuple[Figure, np.ndarray]:
        """An empty figure with three panels, laid out so that every cell is CELL_INCHES wide.

        The layout is fixed (no tight_layout), so the panels do not move from frame to frame.
        """
        widths = [self.padded.shape[1], self.weight.shape[1], self.out.shape[1]]
        rows = max(self.padded.shape[0], self.weight.shape[0], self.out.shape[0])
        gap, side, top, bottom = 0.6, 0.15, 0.7, 0.1  # inches
        grids = CELL_INCHES * sum(widths)
        fig_w, fig_h = grids + 2 * gap + 2 * side, CELL_INCHES * rows + top + bottom
        fig, axes = plt.subplots(1, 3, figsize=(fig_w, fig_h), dpi=dpi,
                                 gridspec_kw={"width_ratios": widths})
        fig.subplots_adjust(left=side / fig_w, right=1 - side / fig_w, bottom=bottom / fig_h,
                            top=1 - top / fig_h, wspace=gap / (grids / 3))
        return fig, axes

    @staticmethod
    def title(fig: Figure, text: str):
        """Write ``text`` along the top edge of ``fig``, above the panel titles."""
        return fig.suptitle(text, fontsize=9, y=1 - 0.12 / fig.get_figheight(), va="top")


def _number(value: float) -> str:
    return f"({value:g})" if value < 0 else f"{value:g}"


def window_figure(x, weight, *, at: tuple[int, int] = (0, 0), stride: Pair = 1,
                  padding: Pair = 0, dilation: Pair = 1, arithmetic: bool = True) -> Figure:
    """Draw ``x ⋆ weight = out`` with the window that produces ``out[at]`` outlined.

    ``x`` and ``weight`` are 2-D (one channel); ``out`` is computed with ``F.conv2d``. With
    ``arithmetic`` the multiply-and-sum of that window is written above the panels.
    """
    window = _Window(x, weight, stride, padding, dilation)
    fig, axes = window.figure()
    window.draw(axes, *at)
    if arithmetic:
        window.title(fig, window.arithmetic(*at))
    plt.close(fig)
    return fig


def sliding_window_animation(x, weight, *, stride: Pair = 1, padding: Pair = 0,
                             dilation: Pair = 1, interval: int = 800,
                             dpi: float = 90) -> FuncAnimation:
    """Animate the window over ``x`` (padded if asked), filling ``out`` one cell per frame.

    One frame per output position, in reading order; each frame writes its multiply-and-sum.
    Show it with ``convcourse.figures.player.Player(anim)``.
    """
    window = _Window(x, weight, stride, padding, dilation)
    fig, axes = window.figure(dpi=dpi)
    out_w = window.out.shape[1]
    title = window.title(fig, "")

    def update(frame: int) -> None:
        i, j = divmod(frame, out_w)
        window.draw(axes, i, j, filled=frame + 1)
        title.set_text(window.arithmetic(i, j))

    update(0)
    anim = FuncAnimation(fig, update, frames=window.out.numel(), interval=interval, repeat=True)
    plt.close(fig)
    return anim


def window_positions_figure(height: int, width: int, kernel_size: Pair,
                            strides: Sequence[Pair], *, dilation: Pair = 1) -> Figure:
    """Mark where each window starts on an unpadded ``height x width`` input, one panel per stride.

    A start cell is labelled ``i,j``: the window that begins there produces ``out[i, j]``.
    The first window is outlined in red and the next one along the row in orange.
    """
    fig, axes = plt.subplots(
        1, len(strides), squeeze=False,
        figsize=(CELL_INCHES * (len(strides) * (width + 1.5)), CELL_INCHES * (height + 2)),
    )
    for ax, stride in zip(axes[0], strides, strict=True):
        taps = window_taps((height, width), kernel_size, stride=stride, dilation=dilation)
        starts = taps[:, :, 0, 0]
        marked = np.zeros((height, width))
        for (i, j), (r, c) in zip(np.ndindex(*starts.shape[:2]), starts.reshape(-1, 2).tolist(),
                                  strict=True):
            marked[r, c] = 1
            ax.text(c, r, f"{i},{j}", ha="center", va="center", fontsize=7)
        boxes = [_extent(taps[0, 0], WINDOW_COLOR)]
        if taps.shape[1] > 1:
            boxes.append(_extent(taps[0, 1], ACCENT_COLOR))
        draw_grid(ax, marked, cmap="Oranges", vmin=0, vmax=2.5, labels=False, boxes=boxes)
        ax.set_title(f"stride={stride}: {starts.shape[0]}×{starts.shape[1]} windows", fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _extent(taps: torch.Tensor, color: str) -> Box:
    """The rectangle spanned by one window's taps (``kH x kW x 2``)."""
    top, left = taps[0, 0].tolist()
    bottom, right = taps[-1, -1].tolist()
    return Box(top, left, bottom - top + 1, right - left + 1, color=color, linewidth=2.5)


def coverage(height: int, width: int, kernel_size: Pair, *, stride: Pair = 1,
             padding: Pair = 0, dilation: Pair = 1) -> torch.Tensor:
    """Count how many windows read each cell of the padded input, as an int64 tensor.

    The count is the gradient of ``out.sum()`` with respect to the padded input when every
    weight is 1: a cell's gradient adds one for every window that touches it. A count of 0
    means no output depends on that cell.
    """
    p_h, p_w = pair(padding)
    padded = torch.zeros(1, 1, height + 2 * p_h, width + 2 * p_w, dtype=torch.float64,
                         requires_grad=True)
    ones = torch.ones(1, 1, *pair(kernel_size), dtype=torch.float64)
    F.conv2d(padded, ones, stride=pair(stride), dilation=pair(dilation)).sum().backward()
    return padded.grad[0, 0].round().long()


def unread_cells(height: int, width: int, kernel_size: Pair, *, stride: Pair = 1,
                 padding: Pair = 0, dilation: Pair = 1) -> torch.Tensor:
    """Boolean ``height x width`` mask of the input cells (padding excluded) no window reads."""
    p_h, p_w = pair(padding)
    counts = coverage(height, width, kernel_size, stride=stride, padding=padding,
                      dilation=dilation)
    return counts[p_h:p_h + height, p_w:p_w + width] == 0


def unread_cells_figure(height: int, width: int, kernel_size: Pair, *, stride: Pair = 1,
                        padding: Pair = 0, dilation: Pair = 1) -> Figure:
    """Draw how many windows read each cell; cells read by none are outlined in red.

    Padding cells, if any, are shaded grey.
    """
    counts = coverage(height, width, kernel_size, stride=stride, padding=padding,
                      dilation=dilation)
    p_h, p_w = pair(padding)
    pad_mask = torch.ones_like(counts, dtype=torch.bool)
    pad_mask[p_h:p_h + height, p_w:p_w + width] = False
    unread = [Box(r, c, linewidth=2.0) for r, c in (counts == 0).nonzero().tolist()]
    rows, cols = counts.shape
    fig, ax = plt.subplots(figsize=(CELL_INCHES * (cols + 1.5), CELL_INCHES * (rows + 1.8)))
    draw_grid(ax, counts, cmap="Greens", vmin=0, shade=pad_mask if pad_mask.any() else None,
              boxes=unread)
    ax.set_title(f"windows reading each cell\n(k={kernel_size}, s={stride}, p={padding})",
                 fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def output_size_figure(heights: Sequence[int], kernel_size: int, strides: Sequence[int], *,
                       padding: int = 0, dilation: int = 1) -> Figure:
    """Plot ``H_out`` against ``H`` for each stride, measured by running ``F.conv2d``.

    A dotted line shows the same expression before the floor, so the steps stand out.
    """
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for stride, color in zip(strides, plt.rcParams["axes.prop_cycle"].by_key()["color"],
                             strict=False):
        measured = [output_length(h, kernel_size, stride=stride, padding=padding,
                                  dilation=dilation) for h in heights]
        exact = [(h + 2 * padding - dilation * (kernel_size - 1) - 1) / stride + 1
                 for h in heights]
        ax.plot(heights, measured, marker="o", drawstyle="steps-post", color=color,
                label=f"stride={stride}", markersize=4)
        ax.plot(heights, exact, ":", color=color, linewidth=1)
    ax.set_xlabel("H (input height)")
    ax.set_ylabel("H_out (measured)")
    ax.set_title(f"kernel_size={kernel_size}, padding={padding}, dilation={dilation}; "
                 "dotted: before the floor", fontsize=9)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
