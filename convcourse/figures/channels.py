"""Show how a convolution connects channels: per-channel partial sums and group connectivity.

Everything drawn is computed with PyTorch (``F.conv2d``, autograd), so the pictures stay true.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from convcourse.figures.grids import ACCENT_COLOR, CELL_INCHES, Box, draw_grid

#: Colour maps for the channels of an input, red, green and blue first (then they repeat).
CHANNEL_CMAPS = ("Reds", "Greens", "Blues", "Purples", "Oranges", "Greys")


def channel_partials(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Return one filter's partial result for each input channel, stacked: ``(C_in, H_out, W_out)``.

    ``x`` is one unbatched input ``(C_in, H, W)`` and ``weight`` one filter ``(C_in, kH, kW)``.
    Partial ``c`` is the single-channel convolution of ``x[c]`` with ``weight[c]`` (``F.conv2d``,
    no padding, stride 1); their sum over ``c`` is the filter's output channel.
    """
    if x.dim() != 3 or weight.dim() != 3 or x.shape[0] != weight.shape[0]:
        raise ValueError(f"need x (C_in, H, W) and weight (C_in, kH, kW), got "
                         f"{tuple(x.shape)} and {tuple(weight.shape)}")
    parts = [F.conv2d(x[c][None, None], weight[c][None, None])[0, 0] for c in range(x.shape[0])]
    return torch.stack(parts)


def channel_sum_figure(x: torch.Tensor, weight: torch.Tensor) -> matplotlib.figure.Figure:
    """Draw ``x[c] ⋆ weight[c] = partial[c]`` for every channel ``c``, then the partials' sum.

    ``x`` is ``(C_in, H, W)``, ``weight`` one filter ``(C_in, kH, kW)``. The sum panel is
    ``F.conv2d(x, weight[None])``: the one output channel that this filter makes.
    """
    parts = channel_partials(x, weight)
    total = F.conv2d(x[None], weight[None])[0, 0]
    channels, height, width = x.shape
    k_width, out_width = weight.shape[-1], parts.shape[-1]
    fig = plt.figure(figsize=(CELL_INCHES * (width + k_width + 2 * out_width + 5),
                              CELL_INCHES * channels * (height + 1.2)))
    grid = fig.add_gridspec(channels, 4, width_ratios=[width, k_width, out_width, out_width],
                            wspace=0.45, hspace=0.3, left=0.02, right=0.98, top=0.95,
                            bottom=0.02)
    low, high = float(parts.min()), float(parts.max())
    for c in range(channels):
        cmap = CHANNEL_CMAPS[c % len(CHANNEL_CMAPS)]
        panels = [(x[c], f"x[{c}]"), (weight[c], f"weight[o, {c}]"),
                  (parts[c], f"partial {c}")]
        axes = [fig.add_subplot(grid[c, col]) for col in range(3)]
        for col, (ax, (values, title)) in enumerate(zip(axes, panels, strict=True)):
            limits = {"vmin": low, "vmax": high} if col == 2 else {}
            draw_grid(ax, values, title=title, cmap=cmap, **limits)
        for ax, symbol, size in zip(axes[:2], ["⋆", "="], [30, 20], strict=True):
            ax.annotate(symbol, xy=(1.0, 0.5), xycoords="axes fraction", xytext=(6, 0),
                        textcoords="offset points", ha="left", va="center", fontsize=size)
        if c < channels - 1:
            axes[2].annotate("+", xy=(0.5, 0.0), xycoords="axes fraction", xytext=(0, -4),
                             textcoords="offset points", ha="center", va="top", fontsize=16)
    middle = channels // 2
    ax = fig.add_subplot(grid[middle, 3])
    draw_grid(ax, total, title="sum = out[0, o]", cmap="Greys")
    ax.annotate("→", xy=(0.0, 0.5), xycoords="axes fraction", xytext=(-6, 0),
                textcoords="offset points", ha="right", va="center", fontsize=18)
    plt.close(fig)
    return fig


def group_connectivity(in_channels: int, out_channels: int, groups: int) -> torch.Tensor:
    """Return a boolean ``(C_out, C_in)`` matrix: entry ``[o, c]`` says out channel o reads in c.

    It is measured, not derived: a 1x1 convolution with ``groups`` and all-ones weights runs on
    a 1x1 input, and autograd gives the gradient of each output channel with respect to every
    input channel. A non-zero gradient means a connection.
    """
    weight = torch.ones(out_channels, in_channels // groups, 1, 1, dtype=torch.float64)
    x = torch.ones(1, in_channels, 1, 1, dtype=torch.float64, requires_grad=True)
    out = F.conv2d(x, weight, groups=groups)
    rows = []
    for o in range(out_channels):
        (grad,) = torch.autograd.grad(out[0, o, 0, 0], x, retain_graph=True)
        rows.append(grad[0, :, 0, 0] != 0)
    return torch.stack(rows)


def group_connectivity_figure(
    in_channels: int, out_channels: int, groups_list: tuple[int, ...] = (1, 2)
) -> matplotlib.figure.Figure:
    """Draw :func:`group_connectivity` side by side, one panel per value in ``groups_list``.

    Rows are output channels, columns input channels; a filled cell is a connection. Orange
    boxes outline the groups' blocks; each title gives ``groups`` and the weight's shape.
    """
    fig, axes = plt.subplots(1, len(groups_list), squeeze=False,
                             figsize=(len(groups_list) * CELL_INCHES * (in_channels + 3.5),
                                      CELL_INCHES * (out_channels + 3)))
    for ax, groups in zip(axes[0], groups_list, strict=True):
        linked = group_connectivity(in_channels, out_channels, groups).numpy()
        size_in, size_out = in_channels // groups, out_channels // groups
        blocks = [Box(g * size_out, g * size_in, size_out, size_in, color=ACCENT_COLOR,
                      linewidth=2.0) for g in range(groups)]
        draw_grid(ax, linked.astype(float), cmap="Blues", vmin=0, vmax=1.4, labels=False,
                  boxes=blocks)
        shape = (out_channels, in_channels // groups)
        ax.set_title(f"groups={groups}\nweight {shape + ('kH', 'kW')}".replace("'", ""),
                     fontsize=10)
        ax.set_xticks(np.arange(in_channels))
        ax.set_yticks(np.arange(out_channels))
        ax.tick_params(labelbottom=True, labelleft=True, labelsize=8)
        ax.set_xlabel("input channel c", fontsize=9)
        ax.set_ylabel("output channel o", fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig
