"""Checks for assignment 3: a learner's conv2d is differentiable like ``F.conv2d``, and a
learner's ``ScratchConv2d`` can stand in for ``nn.Conv2d``.

Like :mod:`convcourse.grading.checks`, every check raises ``AssertionError`` with one sentence that
says what is wrong, runs the learner's code with library convolutions refused (the backward
pass too), and reports an exception inside the learner's code instead of propagating it.
References are computed with ``F.conv2d`` and TF32 off; every random tensor is seeded.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable

import torch
from torch import nn

from convcourse.grading.cases import PADDED, SPECS, course_seed
from convcourse.grading.checks import (
    LearnerRaised,
    about,
    call_learner,
    call_text,
    check_all,
    fail_if,
    is_stub,
    name_of,
    refusal_problem,
)
from convcourse.grading.diagnose import close, diagnose
from convcourse.reference import PAD_MODES, Conv2dCase, as_tensor, conv2d_forward, exact_float32

#: Seed of the random ``grad_output`` that the gradient checks backpropagate.
GRAD_SEED = 0
#: Seed of the layers that :func:`check_scratch_conv2d` builds.
INIT_SEED = 0
#: How many initial values the distribution checks would like (weight, bias), and the most
#: seeded layers they build to get them.
INIT_SAMPLES = {"weight": 2000, "bias": 200}
INIT_LAYERS = 8
NAMES = ("x", "weight", "bias")


def _grad_output(shape, like: torch.Tensor, seed: int = GRAD_SEED) -> torch.Tensor:
    generator = torch.Generator().manual_seed(course_seed(seed))
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(like.device,
                                                                          like.dtype)


def _named(fn: Callable, name: str) -> Callable:
    fn.__name__ = name
    return fn


def _gradients(out, leaves: list[torch.Tensor], grad_output, who: str) -> list:
    """Backpropagate ``grad_output`` through the learner's ``out`` to ``leaves`` (None where
    ``out`` does not depend on a leaf), with library convolutions refused."""

    def backward():
        with exact_float32():
            return torch.autograd.grad(out, leaves, grad_output, allow_unused=True)

    return list(call_learner(_named(backward, f"the backward pass of {who}")))


#: Why a gradient may be wrong when the output is right and autograd differentiates it.
AUTOGRAD_WHY = ("is there a hand-written backward, or an in-place change of a tensor autograd "
                "saved?")


def _gradient_problem(out, leaves: dict, expected: dict, grad_output, who: str,
                      *, what: str = "x, weight or bias", why: str = AUTOGRAD_WHY) -> str | None:
    """What is wrong with the gradients of the learner's ``out`` for the named ``leaves``,
    compared with ``expected`` (name: reference gradient); None when nothing is. ``why``
    ends the sentence for a wrong gradient of a right output: where to look."""
    if not out.requires_grad:
        return (f"the output is not connected to {what} (it has no grad_fn), so autograd "
                "cannot differentiate it: did you detach, use .data or torch.no_grad(), "
                "or convert to NumPy or Python numbers?")
    names = list(leaves)
    got = _gradients(out, [leaves[name] for name in names], grad_output, who)
    for name, grad in zip(names, got, strict=True):
        if grad is None:
            return (f"the output is not connected to {name}: did you detach it, use .data, "
                    "or convert it to NumPy or Python numbers?")
        want = expected[name]
        if not close(grad, want):
            worst = (grad.detach().to("cpu", torch.float64)
                     - want.to("cpu", torch.float64)).abs().max().item()
            return (f"the gradient for {name} differs from F.conv2d's (largest difference "
                    f"{worst:.3g}), although the output is right: {why.format(name=name)}")
    return None


def gradient_problem(fn: Callable, case: Conv2dCase, *, seed: int = GRAD_SEED,
                     why: str = AUTOGRAD_WHY) -> str | None:
    """``None`` if ``fn``'s output and its gradients for x, weight and bias are those of
    ``F.conv2d`` on ``case``; else a sentence saying what is wrong (an ``AssertionError``
    from running the learner's code propagates). ``why`` says where to look when a gradient
    is wrong and the output right (``{name}`` is the gradient's input)."""
    leaves = {name: t.requires_grad_() for name, t in zip(NAMES, case.inputs("torch"),
                                                           strict=True) if t is not None}
    refs = {name: t.detach().clone().requires_grad_() for name, t in leaves.items()}
    expected_out = conv2d_forward(case, refs["x"], refs["weight"], refs.get("bias"))
    grad_output = _grad_output(expected_out.shape, expected_out, seed)
    expected = dict(zip(refs, torch.autograd.grad(expected_out, list(refs.values()),
                                                  grad_output), strict=True))
    with exact_float32():
        out = call_learner(fn, leaves["x"], leaves["weight"], leaves.get("bias"),
                           **case.arguments())
    problem = diagnose(out, case, expected=expected_out.detach())
    if problem:
        return f"the output is wrong, so its gradients cannot be right: {problem}"
    return _gradient_problem(out, leaves, expected, grad_output, name_of(fn), why=why)


def check_conv2d_gradients(fn: Callable, x, weight, bias=None, **arguments) -> None:
    """Check that the gradients of ``fn(x, weight, bias, **arguments)`` for x, weight and
    bias are those of ``F.conv2d`` (``nn.Conv2d`` with ``padding_mode``).

    ``fn`` gets fresh copies that require grad; a seeded random ``grad_output`` is
    backpropagated through its output and through the reference's.
    """
    case = Conv2dCase(as_tensor(x), as_tensor(weight), None if bias is None else as_tensor(bias),
                      **arguments)
    check_case_gradients(fn, case)


def check_case_gradients(fn: Callable, case: Conv2dCase) -> None:
    """:func:`gradient_problem` of one case, raised as ``name(case): problem``."""
    with about(f"{name_of(fn)}({case.describe()})"):
        fail_if(gradient_problem(fn, case))


def check_conv2d_gradient_cases(fn: Callable, cases: Iterable[Conv2dCase], *,
                                show: int = 3) -> None:
    """:func:`check_case_gradients` on each case, through
    :func:`~convcourse.grading.checks.check_all` (it stops at the ``show``-th failure)."""
    check_all(cases, lambda case: check_case_gradients(fn, case), what="gradient cases",
              show=show)


def check_conv2d_meta(fn: Callable, x, weight, bias=None, **arguments) -> None:
    """Check that ``fn`` keeps its input's device and dtype, on PyTorch's ``meta`` device.

    A meta tensor has a shape, a dtype and a device, but no data: operations on it compute
    only the shape of their result. A function that creates a tensor without
    ``device=x.device`` gets a CPU tensor, and mixing it with a meta tensor fails just as it
    would on a GPU; reading a value (``.item()``, ``.tolist()``, ``.numpy()``) fails too. So
    this check catches, on any machine, what would go wrong on a GPU.
    """
    case = Conv2dCase(*(None if t is None else as_tensor(t).detach().to("meta")
                        for t in (x, weight, bias)), **arguments)
    call = f"{name_of(fn)}({case.describe()})"
    expected = conv2d_forward(case, *case.inputs("torch"))

    def on_meta(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NotImplementedError as error:
            if is_stub(error):
                raise  # the unwritten function's `raise NotImplementedError()`
            # PyTorch's refusal to read data on the meta device (.numpy(), ...)
            raise RuntimeError(f"NotImplementedError: {error}") from None

    with about(call):
        try:
            out = call_learner(_named(on_meta, name_of(fn)), *case.inputs("torch"),
                               **case.arguments())
        except LearnerRaised as failure:
            raise AssertionError(_with_meta_hint(str(failure))) from None
        fail_if(_meta_problem(out, expected))


def _with_meta_hint(problem: str) -> str:
    """The learner's exception on the meta device, and what usually causes one there."""
    if not problem.endswith((".", "!", "?")):
        problem += "."
    return (f"{problem} On the meta device (a shape and a dtype, no data) this usually means a "
            "tensor made on the CPU by default (create it with device=x.device, or "
            "x.new_zeros(...)), or a value read with .item(), .tolist() or .numpy().")


def _meta_problem(out, expected: torch.Tensor) -> str | None:
    """What differs between the output on the meta device and the reference's."""
    if not isinstance(out, torch.Tensor):
        return f"it returned {type(out).__name__}, not a tensor."
    if out.device != expected.device:
        return f"the output is on {out.device}, but x is on meta: compute on x.device."
    if out.dtype != expected.dtype:
        return f"the output's dtype is {out.dtype}, but x's is {expected.dtype}: keep x.dtype."
    if out.shape != expected.shape:
        return (f"the output has shape {tuple(out.shape)}, expected "
                f"{tuple(expected.shape)}.")
    return None


# ---------------------------------------------------------------------------------------------
# ScratchConv2d
# ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed the random state inside the block and restore it afterwards (the CPU's, and
    ``device``'s if it is a GPU: parameters on a GPU are drawn by its generator)."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.manual_seed(course_seed(seed))
        yield


def _parameter_problem(layer, reference: nn.Conv2d) -> str | None:
    """Names, kinds, shapes, dtypes and devices of the parameters, as nn.Conv2d has them."""
    if not isinstance(layer, nn.Module):
        return (f"it made a {type(layer).__name__}, not an nn.Module: subclass nn.Module and "
                "call super().__init__() first.")
    got, want = dict(layer.named_parameters()), dict(reference.named_parameters())
    for name in want:
        if name in got:
            continue
        value = getattr(layer, name, None)
        if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
            return (f"{name} is a plain tensor, not an nn.Parameter, so the module does not "
                    f"register it (no state_dict key, no gradient for an optimizer): wrap it "
                    "in nn.Parameter.")
        return (f"it has parameters {sorted(got)}, but nn.Conv2d has {list(want)}: the "
                "state_dict's keys are the attribute names, so name them exactly so.")
    extra = [name for name in got if name not in want]
    if extra == ["bias"]:
        return ("it has a bias parameter, but bias=False asks for none: register bias as None "
                "instead, as nn.Conv2d does.")
    if extra:
        return (f"it has parameters {sorted(got)}, but nn.Conv2d has only {list(want)}: "
                "remove the others.")
    if "bias" not in want and getattr(layer, "bias", "missing") is not None:
        return ("with bias=False, nn.Conv2d's bias attribute exists and is None (code tests "
                "`layer.bias is None`): set it so, without making it a parameter.")
    keys, reference_keys = list(layer.state_dict()), list(reference.state_dict())
    if keys != reference_keys:
        return (f"its state_dict has keys {keys}, but nn.Conv2d's has {reference_keys}: a "
                "registered buffer or submodule adds keys, so an nn.Conv2d state_dict will "
                "not load.")
    layouts = {"weight": "(C_out, C_in/groups, kH, kW)", "bias": "(C_out,)"}
    for name, parameter in want.items():
        mine = got[name]
        if mine.shape != parameter.shape:
            return (f"{name} has shape {tuple(mine.shape)}, but nn.Conv2d's is "
                    f"{tuple(parameter.shape)} = {layouts.get(name, '')}.")
        if mine.dtype != parameter.dtype:
            return (f"{name} has dtype {mine.dtype}, but nn.Conv2d's is {parameter.dtype}: "
                    "create the parameters with the constructor's dtype argument.")
        if mine.device != parameter.device:
            return (f"{name} is on {mine.device}, but nn.Conv2d's is on {parameter.device}: "
                    "create the parameters with the constructor's device argument.")
    return None


def _distribution_problem(name: str, values: torch.Tensor, fan_in: int) -> str | None:
    """Do ``values`` (a parameter's initial values, from seeded layers) look drawn from
    U(-b, b), b = 1/sqrt(fan_in), as nn.Conv2d draws them?

    The bound is checked exactly. The centre, the spread and the reach are checked when there
    are at least 100 values, each with a margin of about five standard errors: a correct
    layer fails them with a probability of about one in a million, whatever its seed.
    """
    values = values.detach().to("cpu", torch.float64).flatten()
    bound = 1 / math.sqrt(fan_in)
    rule = (f"nn.Conv2d draws it from U(-b, b) with b = 1/sqrt(fan_in) = {bound:.4g} "
            f"(fan_in = C_in/groups * kH * kW = {fan_in})")
    if not torch.isfinite(values).all():
        return (f"{name} starts with NaN or infinite values: it was never initialised "
                f"(torch.empty leaves whatever was in memory); {rule}.")
    if not values.any():
        return f"{name} starts all zeros; {rule}."
    largest = values.abs().max().item()
    if largest > bound * (1 + 1e-6):
        return f"{name} starts with values up to {largest:.4g}, beyond b; {rule}."
    count = values.numel()
    if count < 100:
        return None  # too few values to judge their distribution
    uniform = bound / math.sqrt(3)  # the standard deviation of U(-b, b)
    if abs(values.mean().item()) > 5 * uniform / math.sqrt(count):
        return (f"{name}'s initial values are not centred on 0 (mean {values.mean():.4g}); "
                f"{rule}.")
    spread = values.std().item()
    if abs(spread - uniform) > 5 * math.sqrt(0.2 / count) * uniform or (
            largest < bound * (1 - 10 / count)):
        return (f"{name}'s initial values have standard deviation {spread:.4g} and reach "
                f"{largest:.4g}, but U(-b, b) has b/sqrt(3) = {uniform:.4g} and reaches b; "
                f"{rule}.")
    return None


def _init_problem(cls, args, kwargs, layer, reference: nn.Conv2d) -> str | None:
    """The initial distributions of weight and bias, over a few seeded layers."""
    fan_in = reference.weight[0].numel()
    if fan_in == 0:
        return None
    parameters = dict(reference.named_parameters())
    needed = max(math.ceil(INIT_SAMPLES[name] / p.numel()) for name, p in parameters.items())
    layers = [layer]
    for seed in range(INIT_SEED + 1, INIT_SEED + min(needed, INIT_LAYERS)):
        with _seeded(seed, reference.weight.device):
            layers.append(call_learner(cls, *args, **kwargs))
    for name in parameters:
        values = torch.cat([getattr(each, name).detach().flatten().cpu() for each in layers])
        problem = _distribution_problem(name, values, fan_in)
        if problem:
            return problem
    return None


def _input_for(reference: nn.Conv2d, *, batch: int = 2) -> torch.Tensor:
    """A seeded input big enough for the layer's kernel, stride and padding (reflect too)."""
    (k_h, k_w), (s_h, s_w), (d_h, d_w) = (reference.kernel_size, reference.stride,
                                          reference.dilation)
    pads = (0, 0) if isinstance(reference.padding, str) else reference.padding
    span_h, span_w = d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1
    h = max(span_h + 2 * s_h, 2 * max(pads[0], span_h) + 1, 5)
    w = max(span_w + 2 * s_w, 2 * max(pads[1], span_w) + 1, 6)
    generator = torch.Generator().manual_seed(course_seed(INIT_SEED))
    x = torch.randn(batch, reference.in_channels, h, w, generator=generator, dtype=torch.float64)
    return x.to(reference.weight.device, reference.weight.dtype)


def scratch_conv2d_problem(cls, *args, check_init: bool = True, **kwargs) -> str | None:
    """``None`` if ``cls(*args, **kwargs)`` behaves like ``nn.Conv2d(*args, **kwargs)``; else a
    sentence saying what is wrong (an ``AssertionError`` from running learner code propagates).
    ``check_init=False`` leaves the initial values unchecked.
    """
    try:
        with _seeded(INIT_SEED + 1000, torch.device("cpu")), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. 'Initializing zero-element tensors'
            reference = nn.Conv2d(*args, **kwargs)
    except ValueError as refusal:
        return refusal_problem(cls, args, kwargs,
                               reason=f"nn.Conv2d refuses them ({refusal})")
    device = reference.weight.device
    with _seeded(INIT_SEED, device), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = call_learner(cls, *args, **kwargs)
        problem = (_parameter_problem(layer, reference)
                   or (check_init and _init_problem(cls, args, kwargs, layer, reference))
                   or None)
    if problem:
        return problem
    state = reference.state_dict()
    call_learner(_named(lambda: layer.load_state_dict(state), f"{name_of(cls)}.load_state_dict"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'same' with an even kernel: a note about speed
        return _forward_problem(layer, reference, name_of(cls))


def _forward_problem(layer, reference: nn.Conv2d, who: str) -> str | None:
    """After loading nn.Conv2d's state_dict: outputs and gradients, batched and unbatched."""
    for x in (_input_for(reference), _input_for(reference)[0]):
        which = "an unbatched x" if x.dim() == 3 else "x"
        case = Conv2dCase(x, reference.weight.detach(),
                          None if reference.bias is None else reference.bias.detach(),
                          reference.stride, reference.padding, reference.dilation,
                          reference.groups, reference.padding_mode)
        mine = x.clone().requires_grad_()
        theirs = x.clone().requires_grad_()
        with exact_float32():
            expected_out = reference(theirs)
        grad_output = _grad_output(expected_out.shape, expected_out)
        leaves = {"x": theirs, **dict(reference.named_parameters())}
        expected = dict(zip(leaves, torch.autograd.grad(expected_out, list(leaves.values()),
                                                        grad_output), strict=True))
        with exact_float32():
            out = call_learner(layer, mine)
        problem = diagnose(out, case, expected=expected_out.detach())
        if problem:
            return (f"after load_state_dict of nn.Conv2d's state_dict, its output for {which} "
                    f"of shape {tuple(x.shape)} is wrong: {problem}{_DELEGATES}")
        mine_leaves = {"x": mine, **dict(layer.named_parameters())}
        problem = _gradient_problem(out, mine_leaves, expected, grad_output, who,
                                    what="x or the parameters")
        if problem:
            return (f"after load_state_dict of nn.Conv2d's state_dict, for {which} of shape "
                    f"{tuple(x.shape)}: {problem}{_DELEGATES}")
    return None


_DELEGATES = (" (The layer computes with your conv2d function: if that passes its own tests, "
              "look at how forward calls it.)")


def check_scratch_conv2d(cls, *args, check_init: bool = True, **kwargs) -> None:
    """Check that ``cls(*args, **kwargs)`` can replace ``nn.Conv2d(*args, **kwargs)``.

    In order: it refuses (``ValueError``) exactly where ``nn.Conv2d`` does; its parameters have
    nn.Conv2d's names, kinds, shapes, dtypes and devices; seeded layers start from nn.Conv2d's
    initial distribution (unless ``check_init=False``, so that a test of something else does
    not fail for a wrong initialisation too); after
    ``load_state_dict(nn.Conv2d(...).state_dict())`` its outputs and its gradients for the input
    and the parameters are nn.Conv2d's. The first problem found is reported in one sentence.
    """
    with about(call_text(cls, args, kwargs)):
        fail_if(scratch_conv2d_problem(cls, *args, check_init=check_init, **kwargs))


def scratch_conv2d_configurations(*, dtypes=(None,), devices=(None,)) -> list[tuple]:
    """``(args, kwargs)`` for ``nn.Conv2d(*args, **kwargs)``, one per spec of the case grid
    (every padding mode for the padded specs), in every dtype and on every device given."""
    configurations = []
    for device in devices:
        for dtype in dtypes:
            for name, spec in SPECS.items():
                modes = tuple(PAD_MODES) if name in PADDED else ("zeros",)
                for mode in modes:
                    kwargs = {"stride": spec.stride, "padding": spec.padding,
                              "dilation": spec.dilation, "groups": spec.groups,
                              "bias": spec.bias, "padding_mode": mode}
                    kwargs.update({k: v for k, v in (("device", device), ("dtype", dtype))
                                   if v is not None})
                    configurations.append(((spec.c_in, spec.c_out, spec.kernel_size), kwargs))
    return configurations


def check_scratch_conv2d_cases(cls, configurations: Iterable[tuple], *, check_init: bool = True,
                               show: int = 3) -> None:
    """:func:`check_scratch_conv2d` on each ``(args, kwargs)``, through
    :func:`~convcourse.grading.checks.check_all` (it stops at the ``show``-th failure)."""
    check_all(configurations,
              lambda config: check_scratch_conv2d(cls, *config[0], check_init=check_init,
                                                  **config[1]),
              what="configurations", show=show)
