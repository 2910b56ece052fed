"""Checks of assignment 4: a learner's ``numerical_gradient``, ``conv2d_backward``,
``NumpyConv2dFunction`` and the network trained with it, against PyTorch's autograd.

Every check fails with ``AssertionError`` and a sentence that says what is wrong, as the
checks of :mod:`convcourse.grading.checks` do (whose call helpers these use). The right
gradients always come from autograd of ``F.conv2d``; :mod:`convcourse.grading.backward` only
names the mistakes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convcourse.grading.backward import MISTAKES, mistaken, unread
from convcourse.grading.cases import course_seed
from convcourse.grading.checks import (
    LearnerRaised,
    about,
    call_learner,
    check_all,
    check_refuses,
    cpu_growth_problem,
    fail_if,
    name_of,
    python_lines,
)
from convcourse.grading.diagnose import UNDECIDED
from convcourse.grading.guard import torch_operations
from convcourse.grading.module_checks import gradient_problem
from convcourse.grading.probes import PROBES
from convcourse.grading.structure import within_float32
from convcourse.reference import (
    TOLERANCES,
    Conv2dCase,
    as_tensor,
    conv2d_forward,
    exact_float32,
    explicit_padding,
)

NAMES = ("grad_x", "grad_weight", "grad_bias")


# ---------------------------------------------------------------------------------------------
# The right answer, and the cases.
# ---------------------------------------------------------------------------------------------

def autograd_backward(case: Conv2dCase, grad_out: torch.Tensor) -> dict:
    """``{name: gradient or None}`` of ``F.conv2d`` on ``case`` for ``grad_out``, by autograd."""
    leaves = [None if t is None else t.requires_grad_() for t in case.inputs("torch")]
    out = conv2d_forward(case, *leaves)
    present = [t for t in leaves if t is not None]
    grads = iter(torch.autograd.grad(out, present, grad_out.to(out.dtype)))
    return {name: None if t is None else next(grads).detach()
            for name, t in zip(NAMES, leaves, strict=True)}


def output_shape(case: Conv2dCase) -> tuple[int, ...]:
    """The shape of ``F.conv2d``'s output on ``case`` (so of ``grad_out``)."""
    with torch.no_grad():
        return tuple(conv2d_forward(case, *case.inputs("torch")).shape)


def draw_grad_out(case: Conv2dCase, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(output_shape(case), generator=generator,
                       dtype=torch.float64).to(case.x.dtype)


def random_cases(seed: int, count: int, *, dtypes=(torch.float64, torch.float32)
                 ) -> list[tuple[Conv2dCase, torch.Tensor]]:
    """``count`` random ``(case, grad_out)`` pairs over the whole grid of arguments: ints and
    pairs, every padding form, even kernels, groups, unbatched inputs, bias or none."""
    rng = np.random.default_rng(course_seed(seed))
    generator = torch.Generator().manual_seed(course_seed(seed))
    pairs = []
    while len(pairs) < count:
        def size(low, high):
            a, b = (int(v) for v in rng.integers(low, high + 1, 2))
            return a if rng.random() < 0.5 else (a, b)

        groups = int(rng.choice([1, 1, 2, 3]))
        kernel, stride, dilation = size(1, 4), size(1, 3), size(1, 3)
        padding = rng.choice(["int", "pair", "same", "valid"])
        padding = {"int": int(rng.integers(0, 3)), "pair": tuple(int(v) for v in
                                                                 rng.integers(0, 3, 2)),
                   "same": "same", "valid": "valid"}[str(padding)]
        if padding == "same":
            stride = 1
        case = Conv2dCase(
            x=torch.empty(()), weight=torch.empty(()), stride=stride, padding=padding,
            dilation=dilation, groups=groups)
        n = int(rng.integers(0, 4))
        shape_x = ((groups * int(rng.integers(1, 3)),) + tuple(int(v) for v in
                                                            rng.integers(3, 12, 2)))
        shape_x = shape_x if n == 0 else (n, *shape_x)
        k_h, k_w = (kernel, kernel) if isinstance(kernel, int) else kernel
        c_out = groups * int(rng.integers(1, 3))
        dtype = dtypes[int(rng.integers(0, len(dtypes)))]

        def draw(*shape, dtype=dtype):
            return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)

        case = case.with_(x=draw(*shape_x), weight=draw(c_out, shape_x[-3] // groups, k_h, k_w),
                          bias=draw(c_out) if rng.random() < 0.7 else None)
        try:
            grad_out = draw_grad_out(case, generator)
        except RuntimeError:
            continue  # the kernel does not fit this input: no output, draw again
        pairs.append((case, grad_out))
    return pairs


def grid_cases(seed: int, cases: Iterable[Conv2dCase]) -> list[tuple[Conv2dCase, torch.Tensor]]:
    """Each of ``cases`` (zeros padding) with a seeded ``grad_out``."""
    generator = torch.Generator().manual_seed(course_seed(seed))
    return [(case, draw_grad_out(case, generator)) for case in cases]


# ---------------------------------------------------------------------------------------------
# conv2d_backward
# ---------------------------------------------------------------------------------------------

def _tolerance(dtype: torch.dtype) -> dict:
    return TOLERANCES.get(dtype, TOLERANCES[torch.float32])


def _as_values(value) -> torch.Tensor | None:
    try:
        return torch.from_numpy(np.array(value, dtype=np.float64))
    except Exception:  # noqa: BLE001  (ragged, not numbers: the caller says so)
        return None


def _close(values: torch.Tensor, expected: torch.Tensor) -> bool:
    return torch.allclose(values, expected.to(torch.float64), **_tolerance(expected.dtype))


def _grad_x_shape_hint(shape: tuple, case: Conv2dCase) -> str:
    left, right, top, bottom = explicit_padding(case)
    rows, cols = unread(case)
    h, w = case.x.shape[-2:]
    lead = tuple(case.x.shape[:-2])
    padded = lead + (h + top + bottom, w + left + right)
    if shape == (1, *case.x.shape):
        return (" x is unbatched, (C_in, H, W): remove the batch axis you added for it, "
                "grad_x[0].")
    if shape == padded and (top, bottom, left, right) != (0, 0, 0, 0):
        return (" That is the padded input's shape: crop the padding off, "
                f"grad_x_padded[..., {top}:{top + h}, {left}:{left + w}].")
    short = {lead + (h - rows, w - cols), lead + (h + top + bottom - rows,
                                                   w + left + right - cols)}
    if (rows or cols) and shape in short:
        return (f" The last {rows} row(s) and {cols} column(s) of the padded input are read by "
                "no window (the stride does not divide), so their gradient is zero, but they "
                "are still part of x: allocate grad_x with x's full (padded) size and crop.")
    return " grad_x always has x's shape."


def _shape_hint(name: str, shape: tuple, case: Conv2dCase, grad_out: torch.Tensor) -> str:
    if name == "grad_x":
        return _grad_x_shape_hint(shape, case)
    if name == "grad_weight":
        c_out, c_per_group = case.weight.shape[:2]
        if case.groups > 1 and shape[:2] == (c_out, c_per_group * case.groups):
            return (" With groups, each kernel sees only the C_in/groups channels of its group: "
                    "grad_weight has weight's shape (C_out, C_in/groups, kH, kW).")
        return (" grad_weight always has weight's shape; its (kH, kW) come from how many taps "
                "a kernel has, not from the size of the correlation you computed.")
    batched = grad_out if grad_out.dim() == 4 else grad_out.unsqueeze(0)
    for axes in [(0,), (2, 3), (0, 2), (0, 3), (1, 2, 3), (0, 1)]:
        if tuple(batched.sum(axes).shape) == shape or (
                grad_out.dim() == 3 and tuple(grad_out.sum(tuple(a - 1 for a in axes
                                                                 if a)).shape) == shape):
            return (" grad_bias has one value per output channel: sum grad_out over the batch "
                    "and the positions, axes (0, 2, 3) (for an unbatched grad_out (C_out, "
                    "H_out, W_out), axes (1, 2)).")
    return " grad_bias has one value per output channel."


def _mistake_named(name: str, values: torch.Tensor, case: Conv2dCase, grad_out: torch.Tensor,
                   expected: torch.Tensor) -> str | None:
    """The one mistake whose gradient ``values`` are; where several different mistakes give
    them, a sentence that says so and names none alone; None where none does."""
    fits = []
    for mistake in MISTAKES:
        if mistake.gradient != name:
            continue
        output = mistaken(case, grad_out, mistake)
        if output is None or output.shape != values.shape or _close(output, expected):
            continue  # not a candidate here, or no different from the right answer
        if _close(values, output.to(expected.dtype)) and mistake.message not in fits:
            fits.append(mistake.message)
    if len(fits) < 2:
        return fits[0] if fits else None
    return (f"{name} is what {len(fits)} different mistakes give on this input, and "
            f"{UNDECIDED} (try a second input of other sizes and compare with autograd). "
            "Either: " + " Or: ".join(fits))


def _where(name: str, values: torch.Tensor, case: Conv2dCase, expected: torch.Tensor) -> str:
    reference = expected.to(torch.float64)
    wrong = ~torch.isclose(values, reference, **_tolerance(expected.dtype))
    difference = (values - reference).abs()
    worst = tuple(int(i) for i in (difference == difference.max()).nonzero()[0])
    text = (f"{name} differs from autograd's at {int(wrong.sum())} of {wrong.numel()} "
            f"positions; the largest difference is {difference.max().item():.3g}, at "
            f"{name}[{', '.join(map(str, worst))}] (yours {values[worst].item():.6g}, expected "
            f"{reference[worst].item():.6g})")
    if name == "grad_x":
        rows, cols = unread(case)
        if rows or cols:
            mask = torch.zeros_like(wrong)
            if rows:
                mask[..., mask.shape[-2] - rows:, :] = True
            if cols:
                mask[..., mask.shape[-1] - cols:] = True
            if not (wrong & ~mask).any():
                return (text + ": only the last rows or columns, which no window reads, are "
                        "wrong. Their gradient is exactly zero: start grad_x from np.zeros.")
    if name == "grad_bias":
        return text + ": grad_bias[o] is the sum of grad_out[:, o] over images and positions."
    if expected.dtype == torch.float64 and within_float32(values, expected):
        return text + (": every value is right to float32's precision, not float64's, so part "
                       "of your computation ran in float32 (an astype, a dtype=..., an array "
                       "made without dtype=x.dtype); compute in x's dtype, float64.")
    return text + (". Compare with torch.nn.grad.conv2d_input / conv2d_weight on a tiny case "
                   "(one channel, a few pixels) to see where they part.")


def gradient_value_problem(name: str, got, expected: torch.Tensor | None, case: Conv2dCase,
                           grad_out: torch.Tensor) -> str | None:
    """What is wrong with the learner's ``got`` for gradient ``name``; None when it is right."""
    if expected is None:
        if got is None:
            return None
        return ("grad_bias must be None when bias=False: there is no bias to have a gradient.")
    if got is None:
        return f"{name} is None, expected an array of shape {tuple(expected.shape)}."
    if isinstance(got, torch.Tensor):
        return f"{name} is a torch.Tensor: conv2d_backward works in NumPy and returns arrays."
    if not isinstance(got, np.ndarray):
        return (f"{name} is a {type(got).__name__}, not a NumPy array: return an array of "
                f"shape {tuple(expected.shape)}.")
    want_dtype = str(expected.dtype).removeprefix("torch.")
    if got.dtype.kind not in "fiu":
        return f"{name} has dtype {got.dtype}, not numbers: return {want_dtype} values."
    if tuple(got.shape) != tuple(expected.shape):
        return (f"{name} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}."
                + _shape_hint(name, tuple(got.shape), case, grad_out))
    values = _as_values(got)
    if values is None or not torch.isfinite(values).all():
        return (f"{name} contains NaN or inf: a value was never written (np.empty) or "
                "overflowed; start every gradient from np.zeros.")
    if not _close(values, expected):
        named = _mistake_named(name, values, case, grad_out, expected)
        return named or _where(name, values, case, expected)
    if got.dtype.name != want_dtype:
        return (f"{name} is right but has dtype {got.dtype}, expected {want_dtype} (the input's): "
                "create arrays with dtype=x.dtype, or return .astype(x.dtype).")
    return None


def backward_problem(result, case: Conv2dCase, grad_out: torch.Tensor) -> str | None:
    """What is wrong with ``(grad_x, grad_weight, grad_bias)`` returned for ``case``."""
    expected = autograd_backward(case, grad_out)
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        what = (f"a {type(result).__name__} of {len(result)} items"
                if isinstance(result, (tuple, list)) else f"a {type(result).__name__}")
        return (f"it returned {what}: return the tuple (grad_x, grad_weight, grad_bias), with "
                "grad_bias None when bias=False.")
    for name, got in zip(NAMES, result, strict=True):
        problem = gradient_value_problem(name, got, expected[name], case, grad_out)
        if problem:
            return problem
    return None


@contextlib.contextmanager
def numpy_only():
    """Run the block with PyTorch's operators refused (the rule of ``conv2d_backward``), and
    fail saying so if it ran any; an error the refusal caused is not reported as the learner's."""
    with torch_operations() as used:
        try:
            yield
        except Exception:
            if not used:
                raise
    if used:
        raise AssertionError(
            f"it ran PyTorch operators ({', '.join(sorted(set(used))[:3])}): conv2d_backward "
            "computes the gradients itself, with NumPy; no autograd, no torch operations "
            "inside it.")


def _backward_call(case: Conv2dCase) -> str:
    return f"conv2d_backward(grad_out, {case.describe()})"


def run_backward_case(fn: Callable, case: Conv2dCase, grad_out: torch.Tensor) -> None:
    """Run the learner's ``conv2d_backward`` on one case, NumPy only, and check its result."""
    x, weight, _ = case.inputs("numpy")
    upstream = grad_out.detach().cpu().numpy().copy()
    arguments = case.arguments(padding_mode=False)
    with about(_backward_call(case).replace("conv2d_backward", name_of(fn))):
        with numpy_only():
            result = call_learner(fn, upstream, x, weight, **arguments,
                                  bias=case.bias is not None)
        fail_if(backward_problem(result, case, grad_out))


def check_conv2d_backward(fn: Callable, x, weight, stride=1, padding=0, dilation=1, groups=1,
                          bias=True, grad_out=None) -> None:
    """Check ``fn(grad_out, x, weight, ...)`` against autograd of ``F.conv2d``.

    ``grad_out`` is drawn (seeded, the output's shape and x's dtype) unless given. A bias of
    zeros stands in when ``bias=True``: its value does not change any gradient.
    """
    x_t, weight_t = as_tensor(x), as_tensor(weight)
    case = Conv2dCase(x_t, weight_t, weight_t.new_zeros(weight_t.shape[0]) if bias else None,
                      stride, padding, dilation, groups)
    if grad_out is None:
        grad_out = draw_grad_out(case, torch.Generator().manual_seed(course_seed(0)))
    run_backward_case(fn, case, as_tensor(grad_out))


def check_conv2d_backward_cases(fn: Callable, pairs: Iterable[tuple[Conv2dCase, torch.Tensor]],
                                *, show: int = 3) -> None:
    """:func:`run_backward_case` on each ``(case, grad_out)``, through :func:`check_all`."""
    check_all(pairs, lambda pair: run_backward_case(fn, *pair), what="cases", show=show)


def check_backward_refuses(fn: Callable, grad_out, x, weight, **arguments) -> None:
    """Check that ``fn`` raises ``ValueError`` for a ``grad_out`` whose shape is not the
    output's, saying which shape it expected."""
    case = Conv2dCase(as_tensor(x), as_tensor(weight), None, **arguments)
    check_refuses(fn, f"grad_out has shape {tuple(np.shape(grad_out))}, but the output of "
                  f"this convolution has shape {output_shape(case)}", grad_out, x, weight,
                  **arguments)


# ---------------------------------------------------------------------------------------------
# numerical_gradient
# ---------------------------------------------------------------------------------------------

def _simulated(probe, x: np.ndarray, eps: float, how: str) -> np.ndarray:
    """What a numerical gradient with a known slip returns (the feedback's candidates)."""
    x = x.astype(np.float64).copy()
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        start = x[index]
        x[index] = start + eps
        plus = probe(x)
        x[index] = start - eps if how != "forward" else start
        minus = probe(x)
        if how != "not restored":
            x[index] = start
        grad[index] = (plus - minus) / (eps if how in ("forward", "no factor 2") else 2 * eps)
    return grad


_SLIPS = {
    "forward": "you used a forward difference, (f(x + eps) - f(x)) / eps, which is accurate only "
               "to O(eps): use the central difference (f(x + eps) - f(x - eps)) / (2 eps)",
    "no factor 2": "you divided by eps, not 2·eps: the central difference spans 2·eps",
    "not restored": "after each entry you left x changed (x[i] - eps): put the entry back to "
                    "its value before moving on, or every later entry is measured at a "
                    "shifted point",
}


def check_numerical_gradient(fn: Callable, probe_name: str, x, eps: float = 1e-6) -> None:
    """Check ``fn(probe, x, eps)`` against the probe's exact gradient at ``x``."""
    probe = PROBES[probe_name]
    x = np.asarray(x, dtype=np.float64)
    with about(f"{name_of(fn)}({probe!r}, x of shape {x.shape}, eps={eps:g})"):
        got = call_learner(fn, probe, x.copy(), eps)
        exact = probe.gradient(x)
        if not isinstance(got, np.ndarray):
            raise AssertionError(f"returned a {type(got).__name__}: return a NumPy array of "
                                 f"x's shape {x.shape}, one partial derivative per entry.")
        if got.shape != x.shape:
            raise AssertionError(f"returned shape {got.shape}, expected x's shape {x.shape}: "
                                 "one partial derivative per entry of x.")
        if got.dtype != np.float64:
            raise AssertionError(f"returned dtype {got.dtype}: compute in float64 (finite "
                                 "differences in float32 lose most of their digits).")
        # Central differences are exact for polynomials up to degree 2, and within about
        # eps² · |f'''| / 6 otherwise; rounding adds about 1e-16 · |f| / eps.
        scale = 1 + abs(probe(x))
        tolerance = 10 * (eps ** 2 * 10 + 1e-15 * scale / eps) * max(1.0, float(np.abs(x).max())
                                                                      ** 3)
        difference = float(np.abs(got - exact).max()) if got.size else 0.0
        if difference <= tolerance:
            return
        for how, message in _SLIPS.items():
            if np.allclose(got, _simulated(probe, x, eps, how), rtol=1e-6, atol=1e-9):
                raise AssertionError(message + ".")
        raise AssertionError(f"differs from the exact gradient by up to {difference:.3g} "
                             f"(allowed {tolerance:.1g}): perturb one entry of x at a time by "
                             "+eps and -eps, evaluate f at both, and divide the difference by "
                             "2·eps.")


# ---------------------------------------------------------------------------------------------
# NumpyConv2dFunction
# ---------------------------------------------------------------------------------------------

def applied(cls) -> Callable:
    """``cls.apply`` as a conv2d function: ``(x, weight, bias, **arguments)``."""

    def conv2d_function(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                        padding_mode="zeros"):
        return cls.apply(x, weight, bias, stride, padding, dilation, groups)

    conv2d_function.__name__ = f"{name_of(cls)}.apply"
    return conv2d_function


#: Where a wrong gradient of ``NumpyConv2dFunction`` comes from: its backward is the learner's.
FUNCTION_WHY = ("your backward calls conv2d_backward, so the gradient for {name} is its "
                "grad_{name}: run the conv2d_backward tests above and fix the ones that fail "
                "(their feedback says which gradient is wrong, and how); if they all pass, "
                "check that backward returns the gradients in the order of forward's inputs.")


def check_function_case(cls, case: Conv2dCase) -> None:
    """``cls.apply`` on one case: the output and the gradients for x, weight and bias are
    those of ``F.conv2d``."""
    fn = applied(cls)
    with about(f"{name_of(fn)}({case.describe()})"):
        try:
            problem = gradient_problem(fn, case, why=FUNCTION_WHY)
        except LearnerRaised as error:
            if case.bias is None and "gradient different than None at position 3" in str(error):
                raise LearnerRaised(
                    f"{error}. With bias=None there is no bias to differentiate: backward must "
                    "return None in its place (conv2d_backward(..., bias=False) gives "
                    "grad_bias None).") from None
            raise
        fail_if(problem)


def check_function_cases(cls, cases: Iterable[Conv2dCase], *, show: int = 3) -> None:
    check_all(cases, lambda case: check_function_case(cls, case), what="cases", show=show)


def check_gradcheck(cls, x_shape=(1, 2, 5, 5), weight_shape=(3, 2, 3, 3), **arguments) -> None:
    """``torch.autograd.gradcheck`` of ``cls.apply`` in float64 on a small seeded case.

    Its fast mode compares the gradients along random directions (as PyTorch's own tests
    do): a handful of calls, where the full Jacobian takes two forward passes per input value.
    """
    generator = torch.Generator().manual_seed(course_seed(41))
    tensors = [torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True)
               for shape in (x_shape, weight_shape, weight_shape[:1])]
    fn = applied(cls)
    options = dict(stride=1, padding=0, dilation=1, groups=1) | arguments

    def gradcheck():
        return torch.autograd.gradcheck(lambda x, w, b: fn(x, w, b, **options), tuple(tensors),
                                        eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)

    gradcheck.__name__ = name_of(fn)  # a stub or a crash is the learner's function's
    with about(f"gradcheck of {name_of(fn)}(x {x_shape}, weight {weight_shape}, {options})"):
        try:
            call_learner(gradcheck)
        except LearnerRaised as failure:
            said = str(failure).removeprefix(f"{name_of(fn)} raised ")
            raise AssertionError(f"failed: {said[:600]}") from None


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

class FunctionConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose forward pass is a learner's ``autograd.Function`` (zeros padding)."""

    def __init__(self, function, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.function = function

    def forward(self, x):
        return self.function.apply(x, self.weight, self.bias, self.stride, self.padding,
                                   self.dilation, self.groups)


def digit_network(conv: Callable[..., nn.Module]) -> nn.Sequential:
    """The assignment's small CNN for 8×8 digits: two convolutions, then a linear layer."""
    return nn.Sequential(conv(1, 8, 3, padding=1), nn.ReLU(),
                         conv(8, 16, 3, stride=2, padding=1, groups=2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(16 * 4 * 4, 10))


def load_digit_data(seed: int = 0, test_size: float = 0.2):
    """scikit-learn's bundled handwritten digits as float64 tensors ``(N, 1, 8, 8)`` in
    [0, 1], split into train and test: ``(x_train, y_train, x_test, y_test)``."""
    # Imported here: scikit-learn imports SciPy, which the grader's sandbox does not have.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.from_numpy(digits.images / 16.0).unsqueeze(1)
    labels = torch.from_numpy(digits.target).long()
    train, test = train_test_split(np.arange(len(labels)), test_size=test_size,
                                   random_state=seed, stratify=digits.target)
    return images[train], labels[train], images[test], labels[test]


def _train_step(net: nn.Module, optimizer, images, labels) -> float:
    optimizer.zero_grad()
    loss = F.cross_entropy(net(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def loss_curves(cls, images: torch.Tensor, labels: torch.Tensor, *, steps: int,
                batch_size: int = 64, lr: float = 0.1, seed: int = 0) -> dict[str, list]:
    """The training losses of :func:`digit_network` built from ``nn.Conv2d`` and from
    ``cls``, step by step, from the same initial weights and the same batches (float64).
    The learner's steps run as learner code (library convolutions refused)."""
    torch.manual_seed(seed)
    library = digit_network(nn.Conv2d).double()
    learner = digit_network(lambda *a, **k: FunctionConv2d(cls, *a, **k)).double()
    learner.load_state_dict(library.state_dict())
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    name = name_of(cls)

    def learner_step(*args) -> float:
        return _train_step(*args)

    learner_step.__name__ = name  # its stub or crash is reported as the learner's class's
    curves: dict[str, list] = {"nn.Conv2d": [], name: []}
    optimizers = [torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
                  for net in (library, learner)]
    for step in range(steps):
        start = (step * batch_size) % len(labels)
        batch = order[start:start + batch_size]
        curves["nn.Conv2d"].append(_train_step(library, optimizers[0], images[batch],
                                               labels[batch]))
        curves[name].append(call_learner(learner_step, learner, optimizers[1], images[batch],
                                         labels[batch]))
    return curves


def check_training(cls, *, steps: int = 8, examples: int = 256) -> None:
    """Train :func:`digit_network` built from ``nn.Conv2d`` and from ``cls`` side by side on
    real digits: the losses must agree at every step (float64, rtol 1e-7)."""
    images, labels, _, _ = load_digit_data()
    with about(f"training with {name_of(cls)}"), exact_float32():
        curves = loss_curves(cls, images[:examples], labels[:examples], steps=steps)
    library, learner = curves.values()
    for step, (want, got) in enumerate(zip(library, learner, strict=True)):
        if not math.isclose(got, want, rel_tol=1e-7, abs_tol=1e-9):
            raise AssertionError(
                f"training with {name_of(cls)}: at step {step} the loss is {got:.10g}, with "
                f"nn.Conv2d {want:.10g} (same weights, same batches). "
                + ("The forward pass already differs." if step == 0 else
                   "The first step agreed, so the forward pass is right and a gradient "
                   "(through your backward) is not."))


def check_backward_vectorised(fn: Callable, small: tuple, large: tuple, weight_shape: tuple,
                              **arguments) -> None:
    """Check that ``fn`` runs about as many lines of Python for x of shape ``large`` as for
    ``small``: loops over the kernel's taps or the groups are fine, loops over images or
    positions are not."""
    generator = torch.Generator().manual_seed(7)
    weight = torch.randn(weight_shape, generator=generator, dtype=torch.float64)
    lines, calls, cases = [], [], []
    for shape in (small, large):
        x = torch.randn(shape, generator=generator, dtype=torch.float64)
        case = Conv2dCase(x, weight, None, **arguments)
        grad_out = draw_grad_out(case, generator)
        arrays = grad_out.numpy(), x.numpy(), weight.numpy()
        with about(name_of(fn)), numpy_only():
            lines.append(python_lines(fn, *arrays, **arguments, bias=True))
        calls.append((arrays, {**arguments, "bias": True}))
        cases.append((Conv2dCase(x, weight, torch.zeros(weight.shape[0], dtype=x.dtype),
                                 **arguments), grad_out))
    if lines[1] > lines[0] + 25:
        raise AssertionError(
            f"{name_of(fn)} ran {lines[0]} lines of Python for x of shape {small} but "
            f"{lines[1]} for x of shape {large}: a loop runs once per image or per position. "
            "Loop over the kernel's taps (and the groups) at most, and let each step work on "
            "whole arrays.")
    with about(name_of(fn)):
        fail_if(cpu_growth_problem(fn, *calls,
                                   lambda value, index: backward_problem(value, *cases[index])))
