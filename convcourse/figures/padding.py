"""Pictures of padding: the padded input for each ``padding_mode``, and how often cells are read.

Everything drawn is computed with PyTorch (``F.pad``, ``F.conv2d`` and autograd), so a figure
shows what ``nn.Conv2d`` really does.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from convcourse.figures.grids import CELL_INCHES, Box, draw_grid
from convcourse.figures.sliding import coverage
from convcourse.reference import PAD_MODES

#: The four values of ``nn.Conv2d(padding_mode=...)``.
MODES = tuple(PAD_MODES)


def pad_amounts(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """Turn ``padding`` into ``F.pad``'s order ``(left, right, top, bottom)``.

    ``padding`` is an int (every side), a pair ``(p_H, p_W)`` as ``nn.Conv2d`` takes it (per
    side), or already four numbers ``(left, right, top, bottom)``.
    """
    if isinstance(padding, int):
        return (padding,) * 4
    values = tuple(int(p) for p in padding)
    if len(values) == 2:
        return (values[1], values[1], values[0], values[0])
    if len(values) == 4:
        return values  # type: ignore[return-value]
    raise ValueError(f"padding is an int, a pair or four numbers, got {padding!r}")


def pad_2d(x, padding, mode: str = "zeros") -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a 2-D array as ``nn.Conv2d(padding_mode=mode)`` does; return it and its border mask.

    ``mode`` uses ``nn.Conv2d``'s names (``'zeros'`` is ``F.pad``'s ``'constant'``). The mask is
    ``True`` on the cells that padding added.
    """
    grid = torch.as_tensor(x)
    if grid.ndim != 2:
        raise ValueError(f"pad_2d pads one 2-D grid, got shape {tuple(grid.shape)}")
    pad = pad_amounts(padding)
    padded = F.pad(grid[None, None], pad, mode=PAD_MODES[mode])[0, 0]
    border = F.pad(torch.zeros(grid.shape)[None, None], pad, value=1.0)[0, 0].bool()
    return padded, border


def padded_border_figure(
    x, padding, modes: Sequence[str] = MODES, titles: Sequence[str] | None = None
) -> Figure:
    """Draw ``x`` padded once per mode, border cells shaded, the original outlined in red.

    ``padding`` is read by :func:`pad_amounts`; one panel per entry of ``modes``.
    """
    grid = torch.as_tensor(x)
    panels = [pad_2d(grid, padding, mode) for mode in modes]
    left, _, top, _ = pad_amounts(padding)
    rows, cols = panels[0][0].shape
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(CELL_INCHES * (cols + 1) * len(panels), CELL_INCHES * (rows + 2)),
        squeeze=False,
    )
    titles = titles or [f"padding_mode='{mode}'" for mode in modes]
    for ax, (padded, border), title in zip(axes[0], panels, titles, strict=True):
        draw_grid(
            ax,
            padded,
            title=title,
            shade=border,
            vmin=float(grid.min()),
            vmax=float(grid.max()),
            boxes=[Box(top, left, grid.shape[0], grid.shape[1])],
        )
    fig.tight_layout()
    plt.close(fig)
    return fig


def read_count(shape: tuple[int, int], kernel_size: int, padding: int) -> torch.Tensor:
    """Return how many sliding windows read each cell of an input of ``shape`` (stride 1):
    :func:`convcourse.figures.sliding.coverage` without the padding's own cells."""
    counts = coverage(*shape, kernel_size, padding=padding)
    return counts[padding:padding + shape[0], padding:padding + shape[1]]


def read_count_figure(
    shape: tuple[int, int], kernel_size: int, paddings: Sequence[int]
) -> Figure:
    """Draw :func:`read_count` for each padding side by side, on one colour scale."""
    counts = [read_count(shape, kernel_size, p) for p in paddings]
    fig, axes = plt.subplots(
        1,
        len(counts),
        figsize=(CELL_INCHES * (shape[1] + 1.5) * len(counts), CELL_INCHES * (shape[0] + 2.3)),
        squeeze=False,
    )
    for ax, count, p in zip(axes[0], counts, paddings, strict=True):
        draw_grid(ax, count, title=f"padding={p}", cmap="Oranges", vmin=0,
                  vmax=kernel_size**2)
    fig.tight_layout()
    plt.close(fig)
    return fig
