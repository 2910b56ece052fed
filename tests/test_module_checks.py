"""The checks of assignment 3 pass a correct conv2d and a correct ScratchConv2d, and fail each
common mistake with the sentence that names it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convcourse.grading.cases import PADDED, SPECS, conv2d_cases
from convcourse.grading.checks import NotWritten
from convcourse.grading.module_checks import (
    check_conv2d_gradient_cases,
    check_conv2d_gradients,
    check_conv2d_meta,
    check_scratch_conv2d,
    check_scratch_conv2d_cases,
    scratch_conv2d_configurations,
)
from convcourse.reference import PAD_MODES, Conv2dCase, explicit_padding

CASES = conv2d_cases(seed=0, devices=["cpu"])


def conv2d_unfold(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                  padding_mode="zeros"):
    """A correct conv2d from tensor operations: F.unfold (im2col) and one matmul per group."""
    unbatched = x.dim() == 3
    x = x.unsqueeze(0) if unbatched else x
    case = Conv2dCase(x, weight, bias, stride, padding, dilation, groups, padding_mode)
    x = F.pad(x, explicit_padding(case), mode=PAD_MODES[padding_mode])
    c_out, c_group, k_h, k_w = weight.shape
    cols = F.unfold(x, (k_h, k_w), dilation=dilation, stride=stride)
    d_h, d_w = (dilation, dilation) if isinstance(dilation, int) else dilation
    s_h, s_w = (stride, stride) if isinstance(stride, int) else stride
    h_out = (x.shape[2] - d_h * (k_h - 1) - 1) // s_h + 1
    w_out = (x.shape[3] - d_w * (k_w - 1) - 1) // s_w + 1
    cols = cols.view(x.shape[0], groups, c_group * k_h * k_w, h_out * w_out)
    out = weight.view(groups, c_out // groups, -1) @ cols
    out = out.reshape(x.shape[0], c_out, h_out, w_out)
    if bias is not None:
        out = out + bias.view(-1, 1, 1)
    return out.squeeze(0) if unbatched else out


class Correct(nn.Module):
    """A correct ScratchConv2d: nn.Conv2d's checks, parameters and initialisation."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None):
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError("groups must divide in_channels and out_channels")
        if isinstance(padding, str) and (padding not in ("same", "valid") or (
                padding == "same" and stride not in (1, (1, 1)))):
            raise ValueError(f"padding={padding!r} is refused here")
        if padding_mode not in PAD_MODES:
            raise ValueError(f"unknown padding_mode {padding_mode!r}")
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.arguments = {"stride": stride, "padding": padding, "dilation": dilation,
                          "groups": groups, "padding_mode": padding_mode}
        self.make_parameters(in_channels, out_channels, k, groups, bias,
                             {"device": device, "dtype": dtype})
        self.initialise()

    def make_parameters(self, in_channels, out_channels, k, groups, bias, made):
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *k, **made))
        self.bias = nn.Parameter(torch.empty(out_channels, **made)) if bias else None

    def initialise(self):
        bound = 1 / math.sqrt(self.weight[0].numel())
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def forward(self, x):
        return conv2d_unfold(x, self.weight, self.bias, **self.arguments)


CONFIGURATIONS = [
    ((3, 8, 3), {}),
    ((4, 6, (2, 3)), {"stride": 2, "padding": 1, "groups": 2, "bias": False}),
    ((2, 4, 3), {"padding": "same", "dilation": 2, "padding_mode": "reflect",
                 "dtype": torch.float64}),
    ((1, 2, 4), {"padding": "same", "padding_mode": "circular"}),
    ((4, 4, 3), {"groups": 4, "padding": (1, 0), "padding_mode": "replicate"}),
    ((3, 4, 3), {"groups": 2}),  # refused: 2 does not divide 3
    ((2, 2, 3), {"stride": 2, "padding": "same"}),  # refused
    ((2, 2, 3), {"padding_mode": "mirror"}),  # refused
]


# --- the checks accept what is right ---------------------------------------------------------

def test_a_correct_conv2d_passes_the_gradient_grid():
    check_conv2d_gradient_cases(conv2d_unfold, CASES)


def test_a_correct_conv2d_passes_with_numpy_inputs_converted():
    x, weight, bias = torch.randn(2, 3, 6, 6), torch.randn(4, 3, 3, 3), torch.randn(4)
    check_conv2d_gradients(conv2d_unfold, x.numpy(), weight.numpy(), bias.numpy(), padding=1)
    check_conv2d_gradients(conv2d_unfold, x, weight, None, stride=2, padding_mode="zeros")


@pytest.mark.parametrize("args, kwargs", CONFIGURATIONS,
                         ids=[f"{a}-{sorted(k)}" for a, k in CONFIGURATIONS])
def test_a_correct_scratch_conv2d_passes(args, kwargs):
    check_scratch_conv2d(Correct, *args, **kwargs)


def test_the_checks_leave_the_random_state_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    check_scratch_conv2d(Correct, 3, 8, 3)
    check_conv2d_gradients(conv2d_unfold, torch.ones(1, 1, 4, 4), torch.ones(1, 1, 2, 2))
    assert torch.equal(torch.get_rng_state(), before)


# --- and name what is wrong ------------------------------------------------------------------

def detached(x, weight, bias=None, **arguments):
    return conv2d_unfold(x, weight, bias, **arguments).detach()


def bias_detached(x, weight, bias=None, **arguments):
    out = conv2d_unfold(x, weight, None, **arguments)
    return out if bias is None else out + bias.detach().view(-1, 1, 1)


def through_numpy(x, weight, bias=None, **arguments):
    out = conv2d_unfold(x, weight, bias, **arguments)
    return torch.from_numpy(out.detach().numpy())


class _DoubledInputGradient(torch.autograd.Function):
    """The identity, whose backward doubles the gradient (a hand-written backward gone wrong)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


def wrong_x_gradient(x, weight, bias=None, **arguments):
    return conv2d_unfold(_DoubledInputGradient.apply(x), weight, bias, **arguments)


class _LibraryBackward(torch.autograd.Function):
    """A forward from tensor operations, a backward from torch's convolution kernels."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return conv2d_unfold(x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        return (torch.nn.grad.conv2d_input(x.shape, weight, grad),
                torch.nn.grad.conv2d_weight(x, weight.shape, grad))


def library_backward(x, weight, bias=None, **arguments):
    return _LibraryBackward.apply(x, weight)


def library_forward(x, weight, bias=None, **arguments):
    return F.conv2d(x, weight, bias)


def no_bias(x, weight, bias=None, **arguments):
    return conv2d_unfold(x, weight, None, **arguments)


def unwritten(x, weight, bias=None, **arguments):
    raise NotImplementedError()


X, WEIGHT, BIAS = torch.randn(2, 3, 6, 6), torch.randn(4, 3, 3, 3), torch.randn(4)


@pytest.mark.parametrize("fn, bias, sentence", [
    (detached, BIAS, "the output is not connected to x, weight or bias (it has no grad_fn)"),
    (through_numpy, BIAS, "convert to NumPy or Python numbers?"),
    (bias_detached, BIAS, "the output is not connected to bias: did you detach it"),
    (wrong_x_gradient, BIAS, "the gradient for x differs from F.conv2d's"),
    (library_backward, None, "the backward pass of library_backward called a library "
                             "convolution"),
    (library_forward, BIAS, "library_forward called a library convolution"),
    (no_bias, BIAS, "the output is wrong, so its gradients cannot be right"),
    (unwritten, BIAS, "unwritten is not written yet"),
])
def test_gradient_mistakes_are_named(fn, bias, sentence):
    with pytest.raises(AssertionError) as failure:
        check_conv2d_gradients(fn, X, WEIGHT, bias)
    assert sentence in str(failure.value)
    assert failure.value.__cause__ is None  # the learner sees the sentence, not a chain
    assert isinstance(failure.value, NotWritten) == (fn is unwritten)


def test_a_correct_conv2d_keeps_the_meta_device_on_every_case():
    for case in CASES:
        check_conv2d_meta(conv2d_unfold, *case.inputs(), **case.arguments())


def bias_made_on_the_cpu(x, weight, bias=None, **arguments):
    out = conv2d_unfold(x, weight, None, **arguments)
    return out + (torch.zeros(weight.shape[0]) if bias is None else bias).view(-1, 1, 1)


def reads_a_value(x, weight, bias=None, **arguments):
    scale = float(weight.abs().max().item())
    return conv2d_unfold(x, weight / scale, bias, **arguments) * scale


def through_numpy_on_the_device(x, weight, bias=None, **arguments):
    out = conv2d_unfold(x, weight, bias, **arguments)
    return torch.from_numpy(out.detach().cpu().numpy()).to(x.device)


def returns_on_the_cpu(x, weight, bias=None, **arguments):
    return torch.zeros(conv2d_unfold(x, weight, bias, **arguments).shape)


def returns_float64(x, weight, bias=None, **arguments):
    return conv2d_unfold(x, weight, bias, **arguments).double()


@pytest.mark.parametrize("fn, sentence", [
    (bias_made_on_the_cpu, "raised RuntimeError: Tensor on device cpu is not on the expected "
                           "device meta! (at line "),
    (reads_a_value, "a value read with .item()"),
    (through_numpy_on_the_device, "raised RuntimeError: NotImplementedError: Cannot copy out of "
                                  "meta tensor"),
    (returns_on_the_cpu, "the output is on cpu, but x is on meta"),
    (returns_float64, "the output's dtype is torch.float64, but x's is torch.float32"),
    (library_forward, "library_forward called a library convolution"),
    (unwritten, "unwritten is not written yet"),
])
def test_device_mistakes_are_named_on_the_meta_device(fn, sentence):
    with pytest.raises(AssertionError) as failure:
        check_conv2d_meta(fn, X, WEIGHT, None, padding=1)
    assert sentence in str(failure.value)
    assert isinstance(failure.value, NotWritten) == (fn is unwritten)


def test_the_gradient_grid_stops_at_the_third_failure_and_shows_those():
    with pytest.raises(AssertionError) as failure:
        check_conv2d_gradient_cases(bias_detached, CASES)
    run = [i for i, case in enumerate(CASES) if case.bias is not None][2] + 1
    message = str(failure.value)
    assert message.startswith(f"3 of the first {run} of {len(CASES)} gradient cases failed "
                              f"(the other {len(CASES) - run} were not run):")
    assert message.count("\n- ") == 3 and message.count("not connected to bias") == 3


class WrongName(Correct):
    def make_parameters(self, in_channels, out_channels, k, groups, bias, made):
        self.kernel = nn.Parameter(torch.empty(out_channels, in_channels // groups, *k, **made))
        self.bias = nn.Parameter(torch.empty(out_channels, **made))

    def initialise(self):
        self.weight = self.kernel  # only for the parent's code: the parameter is `kernel`
        super().initialise()
        del self.weight

    def forward(self, x):
        return conv2d_unfold(x, self.kernel, self.bias, **self.arguments)


class PlainTensor(Correct):
    def make_parameters(self, in_channels, out_channels, k, groups, bias, made):
        super().make_parameters(in_channels, out_channels, k, groups, bias, made)
        weight = self.weight.detach()
        del self.weight
        self.weight = weight.requires_grad_()


class KaimingDefault(Correct):
    def initialise(self):
        nn.init.kaiming_uniform_(self.weight)  # a=0: bound sqrt(6 / fan_in), not 1/sqrt(fan_in)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class NormalInit(Correct):
    def initialise(self):
        bound = 1 / math.sqrt(self.weight[0].numel())
        with torch.no_grad():
            nn.init.trunc_normal_(self.weight, 0, bound / 4, -bound, bound)  # too narrow
            self.bias.uniform_(-bound, bound)


class PositiveInit(Correct):
    def initialise(self):
        bound = 1 / math.sqrt(self.weight[0].numel())
        with torch.no_grad():
            self.weight.uniform_(0, bound)
            self.bias.uniform_(-bound, bound)


class ZeroBias(Correct):
    def initialise(self):
        super().initialise()
        nn.init.zeros_(self.bias)


class UnusedBiasFlag(Correct):
    def make_parameters(self, in_channels, out_channels, k, groups, bias, made):
        super().make_parameters(in_channels, out_channels, k, groups, True, made)


class NoBiasAttribute(Correct):
    def make_parameters(self, in_channels, out_channels, k, groups, bias, made):
        super().make_parameters(in_channels, out_channels, k, groups, bias, made)
        if not bias:
            del self.bias

    def initialise(self):
        bound = 1 / math.sqrt(self.weight[0].numel())
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)

    def forward(self, x):
        return conv2d_unfold(x, self.weight, None, **self.arguments)


class GroupsIgnoredInShape(Correct):
    def make_parameters(self, in_channels, out_channels, k, groups, bias, made):
        super().make_parameters(in_channels * groups, out_channels, k, groups, bias, made)


class DtypeIgnored(Correct):
    def make_parameters(self, in_channels, out_channels, k, groups, bias, made):
        super().make_parameters(in_channels, out_channels, k, groups, bias, {})


class Buffer(Correct):
    def make_parameters(self, in_channels, out_channels, k, groups, bias, made):
        super().make_parameters(in_channels, out_channels, k, groups, bias, made)
        self.register_buffer("scale", torch.ones(1))


class NoRefusal(Correct):
    def __init__(self, in_channels, out_channels, kernel_size, **kwargs):
        super().__init__(in_channels - in_channels % kwargs.get("groups", 1), out_channels,
                         kernel_size, **kwargs)


class WrongRefusal(Correct):
    def __init__(self, *args, **kwargs):
        try:
            super().__init__(*args, **kwargs)
        except ValueError as error:
            raise TypeError(str(error)) from None


class DetachedWeight(Correct):
    def forward(self, x):
        return conv2d_unfold(x, self.weight.detach(), self.bias, **self.arguments)


class ModeIgnored(Correct):
    def forward(self, x):
        return conv2d_unfold(x, self.weight, self.bias,
                             **{**self.arguments, "padding_mode": "zeros"})


class CachedWeight(Correct):
    """Keeps a copy of the initial weight and computes with it: load_state_dict cannot reach."""

    def initialise(self):
        super().initialise()
        self.frozen = self.weight.detach().clone()

    def forward(self, x):
        return conv2d_unfold(x, self.frozen, self.bias, **self.arguments)


class LibraryForward(Correct):
    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias)


class Unwritten(Correct):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        raise NotImplementedError()


def test_check_init_false_leaves_the_initial_values_alone():
    check_scratch_conv2d(KaimingDefault, 3, 8, 3, check_init=False)
    check_scratch_conv2d_cases(KaimingDefault, CONFIGURATIONS[:2], check_init=False)
    with pytest.raises(AssertionError, match="weight starts with values up to"):
        check_scratch_conv2d_cases(KaimingDefault, CONFIGURATIONS[:2])


def test_the_configurations_cover_the_grid_and_a_correct_layer_passes_them():
    configurations = scratch_conv2d_configurations(dtypes=(None, torch.float64))
    assert len(configurations) == 2 * (len(SPECS) + 3 * len(PADDED))
    assert {k["padding_mode"] for _, k in configurations} == set(PAD_MODES)
    check_scratch_conv2d_cases(Correct, configurations[::5])


def test_a_failing_configuration_grid_stops_at_the_third_failure_and_shows_those():
    configurations = scratch_conv2d_configurations()
    with pytest.raises(AssertionError) as failure:
        check_scratch_conv2d_cases(ModeIgnored, configurations)
    message = str(failure.value)
    # ModeIgnored fails every padded spec in every mode but 'zeros', and nothing else.
    failing = [i for i, (_, kwargs) in enumerate(configurations)
               if kwargs["padding_mode"] != "zeros"]
    assert len(failing) == 3 * len(PADDED) and len(configurations) == len(SPECS) + len(failing)
    run = failing[2] + 1
    assert message.startswith(f"3 of the first {run} of {len(configurations)} configurations "
                              f"failed (the other {len(configurations) - run} were not run):")
    listed = message.split("\n- ")[1:]
    assert len(listed) == 3
    for line in listed:  # each names its call, with the padding mode that was ignored
        call = line.split(": ")[0]
        assert call.startswith("ModeIgnored(") and "padding_mode='zeros'" not in call
        assert "padding_mode=" in call


@pytest.mark.parametrize("cls, args, kwargs, sentence", [
    (WrongName, (3, 8, 3), {}, "it has parameters ['bias', 'kernel'], but nn.Conv2d has "
                               "['weight', 'bias']"),
    (PlainTensor, (3, 8, 3), {}, "weight is a plain tensor, not an nn.Parameter"),
    (KaimingDefault, (3, 8, 3), {}, "weight starts with values up to"),
    (NormalInit, (3, 8, 3), {}, "weight's initial values have standard deviation"),
    (PositiveInit, (3, 8, 3), {}, "weight's initial values are not centred on 0"),
    (ZeroBias, (3, 8, 3), {}, "bias starts all zeros; nn.Conv2d draws it from U(-b, b) with "
                              "b = 1/sqrt(fan_in) = 0.1925 (fan_in = C_in/groups * kH * kW = 27)"),
    (UnusedBiasFlag, (3, 8, 3), {"bias": False}, "bias=False asks for none"),
    (NoBiasAttribute, (3, 8, 3), {"bias": False}, "bias attribute exists and is None"),
    (GroupsIgnoredInShape, (4, 6, 3), {"groups": 2}, "weight has shape (6, 4, 3, 3), but "
                                                     "nn.Conv2d's is (6, 2, 3, 3)"),
    (DtypeIgnored, (3, 8, 3), {"dtype": torch.float64}, "weight has dtype torch.float32, but "
                                                        "nn.Conv2d's is torch.float64"),
    (Buffer, (3, 8, 3), {}, "its state_dict has keys ['weight', 'bias', 'scale']"),
    (NoRefusal, (3, 4, 3), {"groups": 2}, "accepted these arguments, expected ValueError: "
                                          "nn.Conv2d refuses them (in_channels must be "
                                          "divisible by groups)"),
    (WrongRefusal, (2, 2, 3), {"padding_mode": "mirror"}, "raised TypeError (unknown "
                                                          "padding_mode 'mirror'), expected "
                                                          "ValueError: nn.Conv2d refuses them"),
    (DetachedWeight, (3, 8, 3), {}, "the output is not connected to weight"),
    (ModeIgnored, (2, 4, 3), {"padding": 1, "padding_mode": "reflect"},
     "its output for x of shape (2, 2, 7, 7) is wrong"),
    (CachedWeight, (3, 8, 3), {}, "after load_state_dict of nn.Conv2d's state_dict, its output"),
    (LibraryForward, (3, 8, 3), {}, "LibraryForward called a library convolution"),
    (Unwritten, (3, 8, 3), {}, "Unwritten is not written yet"),
])
def test_scratch_conv2d_mistakes_are_named(cls, args, kwargs, sentence):
    with pytest.raises(AssertionError) as failure:
        check_scratch_conv2d(cls, *args, **kwargs)
    message = str(failure.value)
    assert sentence in message
    assert isinstance(failure.value, NotWritten) == (cls is Unwritten)
    if cls is not Unwritten:
        assert message.startswith(f"{cls.__name__}({', '.join(map(repr, args))}")
