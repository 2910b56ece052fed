"""The reference answer: what ``nn.Conv2d`` computes, for one call of a learner's conv2d.

A :class:`Conv2dCase` holds one call's inputs and arguments in PyTorch's vocabulary;
:func:`reference_conv2d` computes its answer with ``F.pad`` and ``F.conv2d`` exactly as
``nn.Conv2d`` does, ``padding_mode`` included. Checks and the grader compare against it.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

Size = int | tuple[int, int]

#: Tolerances against torch, per dtype (the design's numbers).
TOLERANCES = {
    torch.float64: {"rtol": 1e-7, "atol": 1e-9},
    torch.float32: {"rtol": 1e-4, "atol": 1e-5},
}
#: ``nn.Conv2d``'s padding modes, and the name ``F.pad`` gives each.
PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
             "circular": "circular"}


def pair(value: Size) -> tuple[int, int]:
    """``value`` as a ``(height, width)`` pair, the way ``nn.Conv2d`` reads its arguments."""
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))


def same_padding(kernel_size: int, dilation: int = 1) -> tuple[int, int]:
    """``padding='same'`` along one axis, as ``(before, after)``: ``d(k-1)`` in total, the odd
    extra cell after."""
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


def as_tensor(value) -> torch.Tensor:
    """A NumPy array or tensor as a tensor (shared memory where possible, dtype kept)."""
    return value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))


@dataclass(frozen=True)
class Conv2dCase:
    """One call of a conv2d function: ``x``, ``weight``, ``bias`` and ``F.conv2d``'s arguments."""

    x: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None = None
    stride: Size = 1
    padding: Size | str = 0
    dilation: Size = 1
    groups: int = 1
    padding_mode: str = "zeros"

    def arguments(self, *, padding_mode: bool = True) -> dict:
        """The keyword arguments after ``x, weight, bias`` (``padding_mode`` only if asked)."""
        kwargs = {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                  "groups": self.groups}
        if padding_mode:
            kwargs["padding_mode"] = self.padding_mode
        return kwargs

    def inputs(self, kind: str = "torch") -> tuple:
        """``(x, weight, bias)`` as fresh copies: tensors, or NumPy arrays for ``kind='numpy'``."""
        tensors = (self.x, self.weight, self.bias)
        if kind == "numpy":
            return tuple(None if t is None else t.detach().cpu().numpy().copy() for t in tensors)
        return tuple(None if t is None else t.detach().clone() for t in tensors)

    def with_(self, **changes) -> Conv2dCase:
        """The same case with some fields changed."""
        return replace(self, **changes)

    def describe(self) -> str:
        """A short line naming the inputs' shapes and the non-default arguments."""
        parts = [f"x {tuple(self.x.shape)} {str(self.x.dtype).removeprefix('torch.')}",
                 f"weight {tuple(self.weight.shape)}",
                 "bias None" if self.bias is None else f"bias {tuple(self.bias.shape)}"]
        defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros"}
        for name, default in defaults.items():
            value = getattr(self, name)
            if value != default and value != (default, default):
                parts.append(f"{name}={value!r}")
        if self.x.device.type != "cpu":
            parts.append(f"on {self.x.device}")
        return ", ".join(parts)


def explicit_padding(case: Conv2dCase) -> tuple[int, int, int, int]:
    """The padding ``nn.Conv2d`` adds, as ``F.pad``'s ``(left, right, top, bottom)``.

    ``'same'`` pads ``d(k-1)`` in total along each axis, the odd extra on the right/bottom.
    """
    if case.padding == "valid":
        return (0, 0, 0, 0)
    if case.padding == "same":
        (top, bottom), (left, right) = (
            same_padding(k, d) for k, d in zip(case.weight.shape[-2:], pair(case.dilation),
                                                strict=True))
        return (left, right, top, bottom)
    p_h, p_w = pair(case.padding)
    return (p_w, p_w, p_h, p_h)


@contextlib.contextmanager
def exact_float32():
    """Switch TF32 off (cuDNN convolutions and matmuls), restoring the settings afterwards."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def conv2d_forward(case: Conv2dCase, x, weight, bias=None) -> torch.Tensor:
    """``nn.Conv2d``'s forward with ``case``'s arguments on these tensors (differentiable)."""
    with exact_float32(), warnings.catch_warnings():
        # 'same' with an even kernel pads unevenly; PyTorch notes it costs a copy. Fine here.
        warnings.filterwarnings("ignore", message="Using padding='same'", category=UserWarning)
        if case.padding_mode == "zeros":
            return F.conv2d(x, weight, bias, **case.arguments(padding_mode=False))
        batched = x if x.dim() == 4 else x.unsqueeze(0)
        padded = F.pad(batched, explicit_padding(case), mode=PAD_MODES[case.padding_mode])
        out = F.conv2d(padded, weight, bias, case.stride, 0, case.dilation, case.groups)
        return out if x.dim() == 4 else out.squeeze(0)


def reference_conv2d(case: Conv2dCase) -> torch.Tensor:
    """What ``nn.Conv2d`` with these arguments and weights outputs for ``case.x``."""
    with torch.no_grad():
        return conv2d_forward(case, *case.inputs())
