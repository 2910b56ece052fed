"""Scalar functions of an array, with their exact gradients, for testing ``numerical_gradient``.

A probe is plain NumPy and holds no state, so the grader can name it to the sandbox instead of
sending code: the wire carries a :class:`Probe` as its name, and the sandbox hands the learner
the probe's ``function`` from :data:`PROBES`, without the ``gradient`` beside it. Each probe's
``gradient`` is worked out by hand (and tested against autograd). The probes are public, as all
of convcourse is: a learner could match ``f`` against them and look its gradient up, which is
more work than the eight lines of a central difference, and worth two points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _fixed(shape: tuple[int, ...], salt: int) -> np.ndarray:
    """A fixed array of ``shape``: the same numbers on both sides of the wire."""
    return np.random.default_rng([salt, *shape]).standard_normal(shape)


def conv_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kernel (2, C, 2, 2) and the upstream gradient of the conv probe for this ``x``."""
    weight = _fixed((2, x.shape[1], 2, 2), 1)
    upstream = _fixed((x.shape[0], 2, x.shape[2] - 1, x.shape[3] - 1), 2)
    return weight, upstream


def _conv_loss(x: np.ndarray) -> float:
    """sum(F.conv2d(x, W) * G) for a fixed kernel W and upstream gradient G."""
    weight, upstream = conv_parts(x)
    windows = sliding_window_view(x, (2, 2), axis=(2, 3))  # (N, C, H-1, W-1, 2, 2)
    return float(np.einsum("nchwuv,ocuv,nohw->", windows, weight, upstream))


def _conv_loss_gradient(x: np.ndarray) -> np.ndarray:
    weight, upstream = conv_parts(x)
    grad = np.zeros_like(x, dtype=np.float64)
    h_out, w_out = upstream.shape[2:]
    for u in range(2):
        for v in range(2):
            grad[:, :, u:u + h_out, v:v + w_out] += np.einsum("nohw,oc->nchw", upstream,
                                                              weight[:, :, u, v])
    return grad


@dataclass(frozen=True)
class Probe:
    """A named scalar function of an array and its exact gradient."""

    name: str
    description: str
    function: Callable[[np.ndarray], float]
    gradient: Callable[[np.ndarray], np.ndarray]

    def __call__(self, x) -> float:
        return self.function(np.asarray(x, dtype=np.float64))

    def __repr__(self) -> str:
        return f"<{self.description}>"


PROBES = {probe.name: probe for probe in (
    Probe("cubes", "f(x) = sum(x**3)", lambda x: float((x ** 3).sum()), lambda x: 3 * x ** 2),
    Probe("waves", "f(x) = sum(sin(x) * cos(2x))",
          lambda x: float((np.sin(x) * np.cos(2 * x)).sum()),
          lambda x: np.cos(x) * np.cos(2 * x) - 2 * np.sin(x) * np.sin(2 * x)),
    Probe("norm", "f(x) = sqrt(1 + sum(x**2))",
          lambda x: float(np.sqrt(1 + (x ** 2).sum())),
          lambda x: x / np.sqrt(1 + (x ** 2).sum())),
    Probe("conv", "f(x) = sum(F.conv2d(x, W) * G)", _conv_loss, _conv_loss_gradient),
)}
