"""Assignment 4's feedback on NumpyConv2dFunction and conv2d_backward: a wrong gradient of a
right output points at the conv2d_backward tests, a bias gradient returned for bias=None gets
a plain sentence, and the flipped-kernel message fits both ways of computing grad_x."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mistakes import corpus
from mistakes.realistic import backward as realistic

from convcourse.grading.backward import MISTAKES, backward
from convcourse.grading.backward_checks import check_conv2d_backward, check_function_case
from convcourse.reference import Conv2dCase

conv2d_numpy = corpus.load("correct")["conv2d_numpy"]
generator = torch.Generator().manual_seed(18)
X = torch.randn(2, 4, 7, 6, dtype=torch.float64, generator=generator)
WEIGHT = torch.randn(6, 2, 3, 2, dtype=torch.float64, generator=generator)
BIAS = torch.randn(6, dtype=torch.float64, generator=generator)


def function_with(backward, *, bias_gradient_always: bool = False):
    """An autograd Function as a learner writes it: forward conv2d_numpy, backward
    ``backward`` (a conv2d_backward)."""

    class Conv(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
            ctx.save_for_backward(x, weight)
            ctx.options, ctx.has_bias = (stride, padding, dilation, groups), bias is not None
            arrays = [None if t is None else t.detach().numpy() for t in (x, weight, bias)]
            return torch.from_numpy(conv2d_numpy(*arrays, stride, padding, dilation, groups))

        @staticmethod
        def backward(ctx, grad_output):
            x, weight = ctx.saved_tensors
            grads = backward(grad_output.numpy(), x.detach().numpy(), weight.detach().numpy(),
                             *ctx.options, bias=ctx.has_bias or bias_gradient_always)
            return (*(torch.from_numpy(np.ascontiguousarray(g)) for g in grads),
                    None, None, None, None)

    return Conv


def test_a_wrong_grad_x_points_at_the_conv2d_backward_tests():
    flipped = function_with(realistic.grad_x_kernel_flipped)
    with pytest.raises(AssertionError) as failure:
        check_function_case(flipped, Conv2dCase(X, WEIGHT, BIAS, padding=1, groups=2))
    message = str(failure.value)
    assert "the gradient for x differs" in message and "although the output is right" in message
    assert "its grad_x: run the conv2d_backward tests above" in message
    assert "in-place change" not in message


def test_a_bias_gradient_for_no_bias_gets_a_plain_sentence():
    always = function_with(_right_backward, bias_gradient_always=True)
    with pytest.raises(AssertionError) as failure:
        check_function_case(always, Conv2dCase(X, WEIGHT, None, padding=1, groups=2))
    assert "With bias=None there is no bias to differentiate: backward must return None" in str(
        failure.value)


def _right_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1, bias=True):
    """The right gradients, from the grader's own index rule (a stand-in for a correct
    conv2d_backward)."""
    zeros = torch.zeros(weight.shape[0], dtype=torch.float64) if bias else None
    case = Conv2dCase(torch.from_numpy(x), torch.from_numpy(weight), zeros, stride, padding,
                      dilation, groups)
    return tuple(None if g is None else g.numpy()
                 for g in backward(case, torch.from_numpy(grad_out)))


@pytest.mark.parametrize("wrong", [realistic.grad_x_kernel_flipped,
                                   realistic.correlate_without_flip],
                         ids=["scatter, flipped", "spread-pad-correlate, not flipped"])
def test_the_flip_message_fits_both_ways_of_computing_grad_x(wrong):
    flip = next(m.message for m in MISTAKES if m.slips.flip)
    with pytest.raises(AssertionError) as failure:
        check_conv2d_backward(wrong, X.numpy(), WEIGHT.numpy(), stride=2, padding=1, groups=2)
    message = str(failure.value)
    assert flip in message
    assert "scattering grad_out that way uses the kernel as it is" in flip
    assert "correlating the spread, padded grad_out with the kernel needs it flipped" in flip
