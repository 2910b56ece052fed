"""How the size of a signal changes through a stack of convolutions and ReLUs, per initialisation.

The stack is built from ``nn.Conv2d`` layers whose weights are re-drawn by ``nn.init``; the
"size" of the signal after each layer is its mean square, measured on a seeded random input.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import nn

#: The initialisations compared, by name: how each re-draws a layer's weight (``None``: keep
#: the weight ``nn.Conv2d`` drew itself).
INITS = {
    "default (kaiming_uniform_, a=√5)": None,
    "kaiming_normal_, fan_in, relu": lambda w: nn.init.kaiming_normal_(w, mode="fan_in",
                                                                       nonlinearity="relu"),
}


def mean_squares(init: str, depth: int = 10, channels: int = 64, size: int = 32,
                 seed: int = 0) -> list[float]:
    """The mean square of the input and of the output of each of ``depth`` layers of
    ``Conv2d(channels, channels, 3, padding=1)`` followed by ``ReLU``, with zero biases and
    weights drawn by ``INITS[init]``; ``depth + 1`` numbers."""
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
    torch.manual_seed(seed)
    x = torch.randn(8, channels, size, size, dtype=torch.float64)
    found = [x.pow(2).mean().item()]
    with torch.no_grad():
        for _ in range(depth):
            conv = nn.Conv2d(channels, channels, 3, padding=1, dtype=torch.float64)
            if INITS[init] is not None:
                INITS[init](conv.weight)
            nn.init.zeros_(conv.bias)
            x = torch.relu(conv(x))
            found.append(x.pow(2).mean().item())
    return found


def depth_figure(depth: int = 10, channels: int = 64) -> Figure:
    """The mean square after each layer for every initialisation of :data:`INITS`, on a log
    scale."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name in INITS:
        ax.plot(range(depth + 1), mean_squares(name, depth, channels), marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("layers (conv 3×3 + ReLU)")
    ax.set_ylabel("mean square of the signal")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
