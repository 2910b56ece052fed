"""The guard sees library convolutions at the operator level, however they are reached."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convcourse.grading.guard import LibraryConvolutionError, is_convolution, library_convolutions

x = torch.randn(1, 2, 6, 6)
weight = torch.randn(3, 2, 3, 3)


@pytest.mark.parametrize(
    "call",
    [
        lambda: F.conv2d(x, weight),
        lambda: torch.conv2d(x, weight),
        lambda: torch.convolution(x, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1),
        lambda: nn.Conv2d(2, 3, 3)(x),
        lambda: getattr(F, "con" + "v2d")(x, weight),  # hidden from a source scan
        lambda: F.conv1d(x[:, :, 0], weight[:, :, 0]),
        lambda: F.conv_transpose2d(x, weight.transpose(0, 1)),
        lambda: torch.ops.aten.conv2d(x, weight),
        lambda: torch.ops.mkldnn._convolution_pointwise(x, weight, None, [0, 0], [1, 1], [1, 1],
                                                        1, "none", [], ""),
    ],
    ids=["F.conv2d", "torch.conv2d", "torch.convolution", "nn.Conv2d", "getattr", "conv1d",
         "conv_transpose2d", "torch.ops.aten", "mkldnn namespace"],
)
def test_library_convolutions_are_seen_and_refused(call):
    with library_convolutions() as seen:
        with pytest.raises(LibraryConvolutionError):
            call()
    assert seen and all(is_convolution(name) for name in seen)


@pytest.mark.parametrize(("operator", "expected"), [
    ("aten::conv2d.padding", True), ("aten.convolution_backward.default", True),
    ("mkldnn::_convolution_pointwise.binary", True), ("quantized::conv2d_relu", True),
    ("aten::_convert_indices_from_coo_to_csr", False),
    ("prims.convert_element_type.default", False), ("aten::im2col", False),
    ("aten.mm.default", False),
])
def test_convolution_operators_are_told_by_name(operator, expected):
    assert is_convolution(operator) is expected


def test_a_swallowed_refusal_is_still_recorded():
    with library_convolutions() as seen:
        try:
            F.conv2d(x, weight)
        except LibraryConvolutionError:
            pass
    assert seen == ["aten.convolution.default"]


def test_tensor_ops_including_unfold_are_allowed():
    with library_convolutions() as seen:
        cols = F.unfold(x, 3)  # im2col: gathering windows is the learner's job, and allowed
        out = (weight.reshape(3, -1) @ cols).reshape(1, 3, 4, 4)
        x.unfold(2, 3, 1).sum()
        torch.einsum("nchw->nc", x)
    assert seen == []
    assert torch.allclose(out, F.conv2d(x, weight), atol=1e-5)


def test_the_guard_is_gone_after_the_block():
    with library_convolutions():
        pass
    F.conv2d(x, weight)  # no error


def test_scipy_convolutions_are_refused_when_scipy_is_loaded():
    signal = pytest.importorskip("scipy.signal")
    with library_convolutions() as seen:
        with pytest.raises(LibraryConvolutionError):
            signal.correlate2d(np.ones((4, 4)), np.ones((2, 2)), mode="valid")
    assert seen == ["scipy.signal.correlate2d"]
    assert signal.correlate2d(np.ones((4, 4)), np.ones((2, 2)), mode="valid").shape == (3, 3)
