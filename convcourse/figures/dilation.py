"""Pictures of dilation: where a dilated kernel's taps fall, and how receptive fields grow.

Both are computed with autograd through ``F.conv2d``: the gradient of one output cell with
respect to the input marks exactly the input cells that the output cell reads.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from convcourse.figures.grids import CELL_INCHES, Box, draw_grid


def dilated_kernel(weight, dilation: int) -> torch.Tensor:
    """Return the dense kernel that ``weight`` (k x k) acts as with ``dilation``.

    It is ``d(k-1)+1`` wide: the taps of ``weight`` sit ``dilation`` cells apart, zeros between.
    Found as the gradient of the single output of ``F.conv2d`` over an input of exactly that size.
    """
    w = torch.as_tensor(weight, dtype=torch.float64)
    span = dilation * (w.shape[-1] - 1) + 1
    x = torch.zeros(1, 1, span, span, dtype=torch.float64, requires_grad=True)
    F.conv2d(x, w[None, None], dilation=dilation).sum().backward()
    return x.grad[0, 0]


def dilated_taps_figure(kernel_size: int = 3, dilations: Sequence[int] = (1, 2, 3)) -> Figure:
    """Draw a ``kernel_size`` square kernel (taps numbered 1, 2, ...) at each dilation.

    Each panel is the dense kernel of :func:`dilated_kernel`: taps outlined, gaps shaded.
    """
    weight = torch.arange(1, kernel_size**2 + 1, dtype=torch.float64)
    weight = weight.reshape(kernel_size, kernel_size)
    kernels = [dilated_kernel(weight, d) for d in dilations]
    widths = [k.shape[1] for k in kernels]
    fig, axes = plt.subplots(
        1,
        len(kernels),
        figsize=(
            CELL_INCHES * (sum(widths) + 1.5 * len(kernels)),
            CELL_INCHES * (max(widths) + 2.6),
        ),
        gridspec_kw={"width_ratios": widths},
        squeeze=False,
    )
    for ax, kernel, d in zip(axes[0], kernels, dilations, strict=True):
        taps = kernel != 0
        span = kernel.shape[0]
        draw_grid(
            ax,
            kernel,
            title=f"dilation={d}\nreads {span}×{span}",
            shade=~taps,
            vmin=0,
            vmax=2 * kernel_size**2,
            boxes=[Box(int(r), int(c), linewidth=2) for r, c in taps.nonzero()],
        )
        ax.set_anchor("S")
    fig.tight_layout()
    plt.close(fig)
    return fig


def receptive_field(
    dilations: Sequence[int], kernel_size: int = 3, size: int | None = None
) -> torch.Tensor:
    """Return, for a stack of convolutions, how many paths join the centre output to each input.

    One ``kernel_size`` convolution per entry of ``dilations``, all-ones weights and
    ``padding='same'``, on a ``size x size`` input (default: the receptive field plus one cell
    on every side). The result is the gradient of the centre output cell with respect to the
    input; its nonzero cells are the receptive field.
    """
    extent = 1 + sum(d * (kernel_size - 1) for d in dilations)
    size = extent + 2 if size is None else size
    x = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    weight = torch.ones(1, 1, kernel_size, kernel_size, dtype=torch.float64)
    out = x
    with warnings.catch_warnings():
        # An even kernel pads unevenly; PyTorch notes that this costs a padded copy. Fine here.
        warnings.filterwarnings("ignore", message="Using padding='same'", category=UserWarning)
        for d in dilations:
            out = F.conv2d(out, weight, padding="same", dilation=d)
    out[0, 0, size // 2, size // 2].backward()
    return x.grad[0, 0].round().long()


def extent(mask: torch.Tensor) -> tuple[int, int]:
    """Return the height and width of the smallest box holding every nonzero cell of ``mask``."""
    rows, cols = mask.nonzero(as_tuple=True)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def receptive_field_figure(
    stacks: Sequence[Sequence[int]] = ((1, 1, 1), (1, 2, 4)), kernel_size: int = 3
) -> Figure:
    """Draw the receptive field after each layer of each stack (one row per stack).

    The grey frame is the input; the darker a cell, the more paths lead from it to the centre
    output; blank cells are not read at all. The red box is the receptive field's extent.
    """
    size = 3 + max(sum(d * (kernel_size - 1) for d in stack) for stack in stacks)
    columns = max(len(stack) for stack in stacks)
    cell = 0.18
    fig, axes = plt.subplots(
        len(stacks),
        columns,
        figsize=(cell * (size + 2) * columns, cell * (size + 4) * len(stacks)),
        squeeze=False,
    )
    for row, stack in zip(axes, stacks, strict=True):
        for i, ax in enumerate(row):
            if i >= len(stack):
                ax.axis("off")
                continue
            field = receptive_field(stack[: i + 1], kernel_size, size)
            height, width = extent(field)
            rows, cols = field.nonzero(as_tuple=True)
            blank = torch.where(field == 0, torch.nan, field.double())
            draw_grid(
                ax,
                blank,
                labels=False,
                vmin=-0.5 * field.max().item(),
                vmax=field.max().item(),
                boxes=[Box(int(rows.min()), int(cols.min()), height, width, linewidth=2.5)],
            )
            for spine in ax.spines.values():  # the outline of the whole input
                spine.set_visible(True)
                spine.set_color("#999999")
            dims = ", ".join(str(d) for d in stack[: i + 1])
            ax.set_title(f"layer dilations: {dims}\nreceptive field {height}×{width}", fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig
