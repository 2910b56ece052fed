"""Aliasing under a stride: what a one-pixel shift does to a stride-2 layer's output.

The image is periodic and every operation wraps around (circular padding, ``torch.roll``), so
the borders play no part: any difference between two outputs comes from the stride alone.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from convcourse.figures.grids import draw_grid

#: The 3x3 binomial blur, [1, 2, 1] times its transpose over 16: it sends the finest stripes
#: (+1, -1, +1, ...) to exactly 0 and keeps a constant as it is.
BLUR = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
BLUR = (BLUR[:, None] * BLUR[None, :] / 16)[None, None]


def striped_blob(size: int = 12) -> torch.Tensor:
    """A ``(1, 1, size, size)`` float64 image: a smooth blob plus the finest vertical stripes."""
    index = torch.arange(size, dtype=torch.float64)
    blob = torch.exp(-((index[:, None] - size / 2) ** 2 + (index[None, :] - size / 2) ** 2)
                     / (size / 4) ** 2)
    stripes = torch.where(index % 2 == 0, 1.0, -1.0).to(torch.float64)[None, :]
    return (blob + 0.5 * stripes)[None, None]


def shift(image: torch.Tensor, pixels: int) -> torch.Tensor:
    """``image`` moved ``pixels`` columns to the right, wrapping around."""
    return torch.roll(image, pixels, dims=-1)


def downsample(image: torch.Tensor, blur: bool = False) -> torch.Tensor:
    """Keep every other row and column (a 1x1 convolution of weight 1 with stride 2), after
    the 3x3 :data:`BLUR` with circular padding when ``blur`` is true."""
    if blur:
        image = F.conv2d(F.pad(image, (1, 1, 1, 1), mode="circular"), BLUR.to(image.dtype))
    return F.conv2d(image, torch.ones(1, 1, 1, 1, dtype=image.dtype), stride=2)


def aliasing_figure(size: int = 12) -> Figure:
    """Two rows (the image, and the image shifted one pixel right), three columns (the image,
    every other cell, blur then every other cell)."""
    image = striped_blob(size)
    limit = image.abs().max().item()
    cell = 0.22
    fig, axes = plt.subplots(2, 3, figsize=(cell * 2.4 * (size + 2), cell * 2 * (size + 3)),
                             gridspec_kw={"width_ratios": [2, 1, 1]})
    for row, (name, picture) in enumerate((("image", image), ("shifted 1 pixel", shift(image, 1)))):
        panels = ((picture, name), (downsample(picture), "stride 2"),
                  (downsample(picture, blur=True), "blur, then stride 2"))
        for ax, (values, title) in zip(axes[row], panels, strict=True):
            draw_grid(ax, values[0, 0], title=title, cmap="RdBu", vmin=-limit, vmax=limit,
                      labels=False)
    fig.tight_layout()
    plt.close(fig)
    return fig
