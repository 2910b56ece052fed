"""The reference is nn.Conv2d itself, and the case grid covers what the hidden tests promise."""

import pytest
import torch
from torch import nn

from convcourse.grading.cases import PADDED, SPECS, conv2d_cases
from convcourse.reference import (
    PAD_MODES,
    Conv2dCase,
    conv2d_forward,
    explicit_padding,
    reference_conv2d,
)

CASES = conv2d_cases(seed=0)


@pytest.mark.parametrize("case", CASES, ids=[c.describe() for c in CASES])
def test_reference_is_what_nn_conv2d_outputs(case):
    conv = nn.Conv2d(case.x.shape[-3], case.weight.shape[0], tuple(case.weight.shape[-2:]),
                     case.stride, case.padding, case.dilation, case.groups,
                     bias=case.bias is not None, padding_mode=case.padding_mode,
                     dtype=case.x.dtype)
    with torch.no_grad():
        conv.weight.copy_(case.weight)
        if case.bias is not None:
            conv.bias.copy_(case.bias)
        expected = conv(case.x)
    out = reference_conv2d(case)
    assert out.dtype == case.x.dtype and out.shape == expected.shape
    assert torch.equal(out, expected)


@pytest.mark.parametrize("mode", PAD_MODES)
def test_the_differentiable_forward_has_nn_conv2d_gradients(mode):
    case = next(c for c in CASES if c.padding_mode == mode and c.x.dtype == torch.float64)
    conv = nn.Conv2d(case.x.shape[-3], case.weight.shape[0], tuple(case.weight.shape[-2:]),
                     case.stride, case.padding, case.dilation, case.groups,
                     bias=case.bias is not None, padding_mode=mode, dtype=torch.float64)
    x, weight, bias = (t.requires_grad_() if t is not None else None for t in case.inputs())
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    x_module = x.detach().clone().requires_grad_()
    conv(x_module).square().sum().backward()
    conv2d_forward(case, x, weight, bias).square().sum().backward()
    assert torch.allclose(x.grad, x_module.grad) and torch.allclose(weight.grad, conv.weight.grad)


def test_the_grid_covers_every_awkward_case():
    kinds = {(c.padding_mode, c.x.dtype, c.x.dim(), c.bias is None) for c in CASES}
    assert {mode for mode, *_ in kinds} == set(PAD_MODES)
    assert {dtype for _, dtype, *_ in kinds} == {torch.float64, torch.float32}
    assert {dim for _, _, dim, _ in kinds} == {3, 4} and {b for *_, b in kinds} == {True, False}
    assert any(c.padding == "same" and c.weight.shape[-1] % 2 == 0 for c in CASES)
    assert any(c.groups == c.x.shape[-3] for c in CASES)  # depthwise
    assert any(isinstance(c.stride, tuple) for c in CASES)
    assert any((c.x.shape[-2] - c.weight.shape[-2]) % c.stride != 0
               for c in CASES if isinstance(c.stride, int) and c.stride > 1)
    assert len(CASES) == 2 * (len(SPECS) + 3 * len(PADDED))


def test_cases_are_the_same_for_the_same_seed_and_differ_for_another():
    again, other = conv2d_cases(seed=0), conv2d_cases(seed=1)
    assert all(torch.equal(a.x, b.x) for a, b in zip(CASES, again, strict=True))
    assert not torch.equal(CASES[0].x, other[0].x)


def test_same_padding_puts_the_odd_extra_after():
    case = Conv2dCase(torch.zeros(1, 1, 5, 5), torch.zeros(1, 1, 4, 2), padding="same",
                      dilation=(1, 3))
    assert explicit_padding(case) == (1, 2, 1, 2)  # W: 3*(2-1)=3 -> 1, 2; H: 1*(4-1)=3 -> 1, 2
