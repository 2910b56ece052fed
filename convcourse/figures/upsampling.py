"""Four ways to double an image's size, and the checkerboard that some of them leave.

Each way is a small PyTorch module (``nn.ConvTranspose2d``, ``nn.Upsample`` then
``nn.Conv2d``, ``nn.Conv2d`` then ``nn.PixelShuffle``). A constant input shows their
character: any pattern in the output comes from the layer, not from the image.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import nn

from convcourse.figures.grids import draw_grid

#: Name of each way of upsampling by 2, in the order the figure draws them.
METHODS = ("transposed k=3", "transposed k=4", "resize + conv", "conv + pixel shuffle")


def upsampler(method: str, channels: int = 1) -> nn.Module:
    """A float64 module that doubles the height and width of a ``channels``-channel input."""
    layers = {
        "transposed k=3": lambda: nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1,
                                                     output_padding=1, bias=False),
        "transposed k=4": lambda: nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1,
                                                     bias=False),
        "resize + conv": lambda: nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                               nn.Conv2d(channels, channels, 3, padding=1,
                                                         bias=False)),
        "conv + pixel shuffle": lambda: nn.Sequential(nn.Conv2d(channels, 4 * channels, 3,
                                                                padding=1, bias=False),
                                                      nn.PixelShuffle(2)),
    }
    if method not in layers:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return layers[method]().double()


def upsample_constant(method: str, size: int = 5, weights: str = "ones",
                      seed: int = 0) -> torch.Tensor:
    """The ``2*size x 2*size`` output of ``method`` on a ``size x size`` input of ones.

    ``weights`` is ``"ones"`` (every weight 1: the output counts how many products each cell
    sums) or ``"random"`` (standard normal weights drawn with ``seed``, as a learned layer might
    hold).
    """
    if weights not in ("ones", "random"):
        raise ValueError(f"weights must be 'ones' or 'random', got {weights!r}")
    module = upsampler(method)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            if weights == "ones":
                parameter.fill_(1.0)
            else:
                parameter.copy_(torch.randn(parameter.shape, generator=generator,
                                            dtype=parameter.dtype))
        return module(torch.ones(1, 1, size, size, dtype=torch.float64))[0, 0]


def interior(grid: torch.Tensor, border: int = 2) -> torch.Tensor:
    """``grid`` without its outer ``border`` rows and columns (where the padding reaches)."""
    return grid[border:-border, border:-border]


def phases(grid: torch.Tensor, period: int = 2) -> list[torch.Tensor]:
    """The ``period**2`` sub-grids ``grid[i::period, j::period]``: the cells that share a
    position relative to the stride."""
    return [grid[i::period, j::period] for i in range(period) for j in range(period)]


def checkerboard_figure(size: int = 5, seed: int = 0) -> Figure:
    """A grid of panels: one column per method of :data:`METHODS`; the top row with every
    weight 1 (cells labelled with their values), the bottom row with random weights."""
    cell = 0.26
    side = 2 * size
    fig, axes = plt.subplots(2, len(METHODS), figsize=(cell * (side + 1.5) * len(METHODS),
                                                      cell * (2 * side + 5)))
    for column, method in enumerate(METHODS):
        ones = upsample_constant(method, size, "ones")
        draw_grid(axes[0, column], ones, title=f"{method}\nweights all 1", vmin=0)
        draw_grid(axes[1, column], upsample_constant(method, size, "random", seed),
                  title="random weights", cmap="RdBu", labels=False)
    fig.tight_layout()
    plt.close(fig)
    return fig
