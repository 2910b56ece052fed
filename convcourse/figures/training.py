"""Pictures of a trained convolution layer: its filters, and what it makes of one image.

The helpers take the layer itself (an ``nn.Conv2d`` with one input channel) and draw what it
holds or computes; loading and training data is the page's business.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import nn

from convcourse.figures.grids import draw_grid

#: Side of one cell in these pictures, in inches: they show many small grids at once.
SMALL_CELL_INCHES = 0.2


def _symmetric_limit(values: torch.Tensor) -> float:
    return float(values.abs().max()) or 1.0


def images_figure(images, titles=None, per_row: int = 8) -> Figure:
    """Draw 2-D images (white 0 to black at the largest value), small, ``per_row`` to a row."""
    images = [torch.as_tensor(image).detach().cpu() for image in images]
    titles = list(titles) if titles is not None else [None] * len(images)
    columns = min(per_row, len(images))
    rows = -(-len(images) // columns)
    height, width = images[0].shape
    high = max(float(image.max()) for image in images) or 1.0
    fig, axes = plt.subplots(rows, columns, squeeze=False,
                             figsize=(SMALL_CELL_INCHES * (width + 2) * columns,
                                      SMALL_CELL_INCHES * (height + 3) * rows))
    for i, ax in enumerate(axes.flat):
        if i >= len(images):
            ax.axis("off")
            continue
        draw_grid(ax, images[i], title=titles[i], cmap="Greys", vmin=0, vmax=high, labels=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def filters_figure(conv: nn.Conv2d, per_row: int = 8, limit: float | None = None) -> Figure:
    """Draw each filter ``conv.weight[o, 0]`` as a grid, on one colour scale centred at 0.

    Red is positive, blue negative; the title of each panel names its output channel. The scale
    runs from ``-limit`` to ``limit`` (default: the largest absolute weight).
    """
    weight = conv.weight.detach().cpu()
    if weight.shape[1] != 1:
        raise ValueError(f"filters_figure draws single-input-channel filters, got "
                         f"{tuple(weight.shape)}")
    count, _, kh, kw = weight.shape
    columns = min(per_row, count)
    rows = -(-count // columns)
    limit = _symmetric_limit(weight) if limit is None else limit
    cell = 2 * SMALL_CELL_INCHES
    fig, axes = plt.subplots(rows, columns, figsize=(cell * (kw + 1.2) * columns,
                                                     cell * (kh + 1.6) * rows), squeeze=False)
    for o, ax in enumerate(axes.flat):
        if o >= count:
            ax.axis("off")
            continue
        draw_grid(ax, weight[o, 0], title=f"filter {o}", cmap="RdBu_r", vmin=-limit,
                  vmax=limit, labels=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def feature_maps(conv: nn.Conv2d, image: torch.Tensor) -> torch.Tensor:
    """``relu(conv(image))`` for one 2-D image: ``(C_out, H_out, W_out)``, no gradient kept."""
    with torch.no_grad():
        return torch.relu(conv(image[None, None].to(conv.weight.dtype)))[0]


def feature_maps_figure(conv: nn.Conv2d, image: torch.Tensor, per_row: int = 4,
                        title: str = "input") -> Figure:
    """Draw ``image`` on the left and each channel of :func:`feature_maps` beside it.

    All maps share one grey scale from 0 (white) to the largest activation (black).
    """
    maps = feature_maps(conv, image)
    count, height, width = maps.shape
    columns = min(per_row, count)
    rows = -(-count // columns)
    fig = plt.figure(figsize=(SMALL_CELL_INCHES * (width + 2) * (columns + 1.3),
                              SMALL_CELL_INCHES * (height + 3) * rows))
    grid = fig.add_gridspec(rows, columns + 1, width_ratios=[1.3] + [1] * columns)
    left = fig.add_subplot(grid[:, 0])
    draw_grid(left, image.detach().cpu(), title=title, cmap="Greys", labels=False)
    high = float(maps.max()) or 1.0
    for o in range(count):
        ax = fig.add_subplot(grid[o // columns, 1 + o % columns])
        draw_grid(ax, maps[o], title=f"channel {o}", cmap="Greys", vmin=0, vmax=high,
                  labels=False)
    fig.tight_layout()
    plt.close(fig)
    return fig
