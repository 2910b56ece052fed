"""Say what is wrong with a conv2d output, in one plain sentence a learner can act on.

:func:`diagnose` compares a learner's output with the reference for the same
:class:`~convcourse.reference.Conv2dCase`. When they differ it first checks the things a
learner can see at once (a ``None``, a wrong type, NaNs, the shape, the dtype) and then
compares the output with the outputs of common mistakes, to name the one it matches.
"""

from __future__ import annotations

import numpy as np
import torch

from convcourse.reference import TOLERANCES, Conv2dCase, reference_conv2d


def _as_tensor(actual) -> torch.Tensor | None:
    if isinstance(actual, torch.Tensor):
        return actual.detach()
    if isinstance(actual, np.ndarray) and actual.dtype.kind in "fiu":
        return torch.from_numpy(actual)
    return None


def close(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    """Whether two outputs agree within the tolerance of ``expected``'s dtype."""
    if actual.shape != expected.shape:
        return False
    tolerance = TOLERANCES.get(expected.dtype, TOLERANCES[torch.float32])
    return torch.allclose(actual.to("cpu", torch.float64), expected.to("cpu", torch.float64),
                          **tolerance)


def diagnose(actual, case: Conv2dCase, expected: torch.Tensor | None = None) -> str | None:
    """``None`` if ``actual`` is what ``nn.Conv2d`` outputs for ``case``; else what is wrong."""
    expected = reference_conv2d(case) if expected is None else expected
    if actual is None:
        return "it returned None: did you forget the `return` statement?"
    tensor = _as_tensor(actual)
    if tensor is None:
        wanted = "a NumPy array" if isinstance(case.x, np.ndarray) else "an array or tensor"
        return f"it returned {type(actual).__name__}, not {wanted} of numbers."
    if tensor.is_floating_point() and torch.isnan(tensor).any():
        return "the output contains NaN: some cells were never written or divided by zero."
    if tensor.shape != expected.shape:
        return (f"the output has shape {tuple(tensor.shape)}, expected {tuple(expected.shape)}: "
                "H_out = floor((H + 2*padding - dilation*(kernel_size - 1) - 1) / stride) + 1, "
                "and likewise W_out.")
    if close(tensor, expected):
        if tensor.dtype != expected.dtype:
            return (f"the values are right but the dtype is {tensor.dtype}, expected "
                    f"{expected.dtype}: keep the input's dtype.")
        return None
    worst = (tensor.to(torch.float64) - expected.to("cpu", torch.float64)).abs().max().item()
    return f"the values differ from nn.Conv2d's (largest difference {worst:.3g})."
