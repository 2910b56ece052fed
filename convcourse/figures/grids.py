"""Draw small arrays as grids of labelled cells.

Every figure of the course is made of these grids: an input, a kernel, an output, each cell
showing its number. Helpers return a *closed* :class:`~matplotlib.figure.Figure`, so a notebook
cell that ends with the call shows it exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

#: Side of one grid cell, in inches.
CELL_INCHES = 0.42

#: Colours used across the course, so that a window or a padding cell looks the same everywhere.
WINDOW_COLOR = "#d62728"
PADDING_COLOR = "#e8e8e8"
ACCENT_COLOR = "#ff7f0e"


@dataclass(frozen=True)
class Box:
    """A rectangle outlined on top of a grid: ``rows x cols`` cells from ``(row, col)``."""

    row: int
    col: int
    rows: int = 1
    cols: int = 1
    color: str = WINDOW_COLOR
    linewidth: float = 3.0


def as_array(values) -> np.ndarray:
    """Return ``values`` (a list, NumPy array or torch tensor) as a 2-D NumPy array."""
    if hasattr(values, "detach"):  # a torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"a grid is 2-D, got an array of shape {array.shape}")
    return array


def draw_grid(
    ax: matplotlib.axes.Axes,
    values,
    *,
    title: str | None = None,
    fmt: str = "{:g}",
    cmap: str = "Blues",
    vmin: float | None = None,
    vmax: float | None = None,
    shade=None,
    boxes: Iterable[Box] = (),
    labels: bool = True,
) -> matplotlib.axes.Axes:
    """Draw ``values`` on ``ax`` as a grid of coloured cells labelled with their values.

    ``shade`` is an optional boolean mask of cells drawn in grey instead (padding, say);
    ``boxes`` are outlined on top (a kernel window, say). Row 0 is at the top, as in an array.
    """
    array = as_array(values)
    rows, cols = array.shape
    numbers = array.astype(float)
    low = np.nanmin(numbers) if vmin is None else vmin
    high = np.nanmax(numbers) if vmax is None else vmax
    ax.imshow(numbers, cmap=cmap, vmin=low, vmax=high if high > low else low + 1)
    if shade is not None:
        mask = np.asarray(shade, dtype=bool)
        overlay = np.zeros((rows, cols, 4))
        overlay[mask] = matplotlib.colors.to_rgba(PADDING_COLOR)
        ax.imshow(overlay)
    if labels:
        middle = (low + high) / 2
        for (r, c), value in np.ndenumerate(array):
            dark = shade is None or not np.asarray(shade, dtype=bool)[r, c]
            color = "white" if dark and numbers[r, c] > middle and high > low else "black"
            ax.text(c, r, fmt.format(value), ha="center", va="center", color=color, fontsize=9)
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for box in boxes:
        ax.add_patch(
            matplotlib.patches.Rectangle(
                (box.col - 0.5, box.row - 0.5),
                box.cols,
                box.rows,
                fill=False,
                edgecolor=box.color,
                linewidth=box.linewidth,
                zorder=3,  # above the white cell borders
            )
        )
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def write_between(axes: Sequence[matplotlib.axes.Axes], symbols: Iterable[str]) -> None:
    """Write each symbol just right of one panel, between it and the next (``x ⋆ w = out``)."""
    for left, symbol in zip(axes[:-1], symbols, strict=False):
        left.annotate(symbol, xy=(1.0, 0.5), xycoords="axes fraction", xytext=(6, 0),
                      textcoords="offset points", ha="left", va="center", fontsize=16)


def grid_figure(
    arrays: Sequence,
    titles: Sequence[str] | None = None,
    *,
    between: Sequence[str] | None = None,
    **grid_options,
) -> matplotlib.figure.Figure:
    """Draw several arrays side by side, each as a grid, and return the closed figure.

    ``between`` holds a symbol to print between neighbouring panels (for example ``"⋆"``
    and ``"="`` to show ``x ⋆ w = out``). Every other keyword goes to :func:`draw_grid`.
    """
    shapes = [as_array(a).shape for a in arrays]
    height = max(r for r, _ in shapes)
    widths = [c for _, c in shapes]
    fig, axes = plt.subplots(
        1,
        len(arrays),
        figsize=(CELL_INCHES * (sum(widths) + 1.2 * len(arrays)), CELL_INCHES * (height + 1.5)),
        gridspec_kw={"width_ratios": widths},
        squeeze=False,
    )
    titles = titles or [None] * len(arrays)
    for ax, array, title in zip(axes[0], arrays, titles, strict=True):
        draw_grid(ax, array, title=title, **grid_options)
    write_between(axes[0], between or [])
    fig.tight_layout()
    plt.close(fig)
    return fig
