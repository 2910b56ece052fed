"""Assignment 4's checks: the reference backward and its mistakes against autograd, the
solutions on a thousand random configurations, and feedback that names each mistake."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from course import SOLUTIONS, definitions
from mistakes import backward as corpus
from mistakes.corpus import load

from convcourse.grading import backward_checks as checks
from convcourse.grading.backward import MISTAKES, RIGHT, backward, mistaken
from convcourse.grading.cases import conv2d_cases
from convcourse.grading.guard import torch_operations
from convcourse.grading.probes import PROBES, conv_parts

SOLUTION = definitions(SOLUTIONS / "04-gradients" / "conv2d-backward.ipynb")
GRID = checks.grid_cases(0, conv2d_cases(0, padding_modes=("zeros",), devices=["cpu"],
                                         dtypes=(torch.float64,)))


def fails(check, *args, **kwargs) -> str:
    """The message with which ``check`` fails (the test fails if it passes)."""
    with pytest.raises(AssertionError) as failure:
        check(*args, **kwargs)
    return str(failure.value)


# --- the reference and its switches ---------------------------------------------------------

@pytest.mark.parametrize("case, grad_out", GRID + checks.random_cases(1, 200,
                                                                       dtypes=(torch.float64,)))
def test_the_reference_backward_is_autograds(case, grad_out):
    expected = checks.autograd_backward(case, grad_out)
    for name, mine in zip(checks.NAMES, backward(case, grad_out, RIGHT), strict=True):
        if expected[name] is None:
            assert mine is None
        else:
            torch.testing.assert_close(mine, expected[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: f"{m.gradient}:{m.slips}")
def test_every_mistake_differs_from_the_right_answer_somewhere(mistake):
    names = list(checks.NAMES)
    differs = False
    for case, grad_out in GRID:
        right = backward(case, grad_out)[names.index(mistake.gradient)]
        wrong = mistaken(case, grad_out, mistake)
        if right is not None and wrong is not None and (
                wrong.shape != right.shape or not torch.allclose(wrong, right)):
            differs = True
    assert differs


# --- the solution ----------------------------------------------------------------------------

def test_the_solution_agrees_with_autograd_on_a_thousand_random_configurations():
    pairs = checks.random_cases(2024, 1000, dtypes=(torch.float64,))
    forms = {type(case.padding).__name__ for case, _ in pairs} | {
        case.padding for case, _ in pairs if isinstance(case.padding, str)}
    assert {"int", "tuple", "same", "valid"} <= forms  # every padding form is drawn
    assert any(case.x.dim() == 3 for case, _ in pairs) and any(c.groups > 1 for c, _ in pairs)
    for case, grad_out in pairs:
        x, weight, _ = case.inputs("numpy")
        got = SOLUTION["conv2d_backward"](grad_out.numpy(), x, weight,
                                          **case.arguments(padding_mode=False),
                                          bias=case.bias is not None)
        expected = checks.autograd_backward(case, grad_out)
        for name, value in zip(checks.NAMES, got, strict=True):
            if expected[name] is None:
                assert value is None
            else:
                np.testing.assert_allclose(value, expected[name].numpy(), rtol=1e-7,
                                           atol=1e-9, err_msg=f"{name}, {case.describe()}")


def test_the_solution_passes_every_check_in_float32_too():
    checks.check_conv2d_backward_cases(SOLUTION["conv2d_backward"],
                                       checks.random_cases(7, 100, dtypes=(torch.float32,)))


def test_the_solutions_function_passes_gradcheck_and_trains_like_nn_conv2d():
    function = SOLUTION["NumpyConv2dFunction"]
    checks.check_gradcheck(function, (2, 4, 7, 6), (6, 2, 3, 2), stride=(2, 1),
                           padding=(1, 2), dilation=(1, 2), groups=2)
    checks.check_function_cases(function, conv2d_cases(5, padding_modes=("zeros",),
                                                        devices=["cpu"]))
    checks.check_training(function, steps=8, examples=256)


def test_the_network_on_the_solutions_function_reads_95_percent_of_the_test_digits():
    """The notebook's real run, here in full: ten epochs in float32 (about a second)."""
    torch.manual_seed(0)
    net = checks.digit_network(lambda *a, **k: checks.FunctionConv2d(
        SOLUTION["NumpyConv2dFunction"], *a, **k))
    x_train, y_train, x_test, y_test = checks.load_digit_data()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        order = torch.randperm(len(y_train), generator=generator)
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            F.cross_entropy(net(x_train[batch].float()), y_train[batch]).backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = (net(x_test.float()).argmax(1) == y_test).float().mean().item()
    assert accuracy >= 0.95


# --- feedback ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", corpus.MISTAKES)
def test_feedback_names_each_backward_mistake_and_passes_the_control(name):
    mistake = corpus.MISTAKES[name]
    fn = load(name, corpus.source(name))["conv2d_backward"]
    case = dict(mistake.case)
    dtype = case.pop("dtype", "float64")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(case.pop("x_shape")).astype(dtype)
    weight = rng.standard_normal(case.pop("weight_shape")).astype(dtype)
    if mistake.feedback is None:
        checks.check_conv2d_backward(fn, x, weight, **case)
        checks.check_conv2d_backward_cases(fn, checks.random_cases(3, 100))
    else:
        assert mistake.feedback in fails(checks.check_conv2d_backward, fn, x, weight, **case)


def test_a_stub_and_a_crash_are_reported_as_such():
    def stub(*args, **kwargs):
        raise NotImplementedError()

    def crash(grad_out, x, weight, **kwargs):
        return grad_out[99]

    x, weight = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    assert "not written yet" in fails(checks.check_conv2d_backward, stub, x, weight)
    assert "IndexError" in fails(checks.check_conv2d_backward, crash, x, weight)


def test_wrong_return_values_get_a_sentence():
    x, weight = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    for returned, phrase in [(None, "return the tuple"), ((1, 2), "2 items"),
                             ((torch.ones(1, 1, 4, 4), None, None), "torch.Tensor")]:
        assert phrase in fails(checks.check_conv2d_backward, lambda *a, r=returned, **k: r,
                               x, weight)


def test_the_refusal_check_wants_a_value_error_for_a_wrong_grad_out():
    x, weight = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    checks.check_backward_refuses(SOLUTION["conv2d_backward"], np.ones((1, 1, 4, 4)), x, weight)
    assert "expected ValueError" in fails(checks.check_backward_refuses,
                                          lambda *a, **k: (None, None, None),
                                          np.ones((1, 1, 4, 4)), x, weight)


def test_a_loop_over_images_is_not_vectorised():
    def per_image(grad_out, x, weight, **kwargs):
        parts = [SOLUTION["conv2d_backward"](grad_out[i:i + 1], x[i:i + 1], weight, **kwargs)
                 for i in range(len(x))]
        return (np.concatenate([p[0] for p in parts]), sum(p[1] for p in parts),
                sum(p[2] for p in parts))

    checks.check_backward_vectorised(SOLUTION["conv2d_backward"], (1, 2, 5, 5), (8, 2, 20, 20),
                                     (3, 2, 3, 3), padding=1)
    assert "a loop runs once per image" in fails(checks.check_backward_vectorised, per_image,
                                                 (1, 2, 5, 5), (8, 2, 20, 20), (3, 2, 3, 3),
                                                 padding=1)


def test_the_numpy_only_guard_refuses_torch_and_lets_numpy_through():
    with torch_operations() as used:
        np.ones(3) @ np.ones(3)
    assert used == []
    with torch_operations() as used, pytest.raises(RuntimeError):
        torch.ones(2) + 1
    assert used


# --- numerical_gradient, the function, training -------------------------------------------------

@pytest.mark.parametrize("name", PROBES)
def test_each_probes_value_and_gradient_are_autograds(name):
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 5))
    x_t = torch.tensor(x, requires_grad=True)
    weight, upstream = (torch.from_numpy(a) for a in conv_parts(x))
    value = {"cubes": lambda t: (t ** 3).sum(),
             "waves": lambda t: (t.sin() * (2 * t).cos()).sum(),
             "norm": lambda t: (1 + (t ** 2).sum()).sqrt(),
             "conv": lambda t: (F.conv2d(t, weight) * upstream).sum()}[name](x_t)
    (expected,) = torch.autograd.grad(value, x_t)
    probe = PROBES[name]
    np.testing.assert_allclose(probe(x), value.item(), rtol=1e-12)
    np.testing.assert_allclose(probe.gradient(x), expected.numpy(), rtol=1e-10, atol=1e-12)


def test_numerical_gradient_slips_are_named():
    def differences(how):
        def numerical_gradient(f, x, eps=1e-6):
            x = np.array(x, dtype=np.float64)
            grad = np.zeros_like(x)
            for index in np.ndindex(x.shape):
                start = x[index]
                x[index] = start + eps
                plus = f(x)
                x[index] = start if how == "forward" else start - eps
                minus = f(x)
                if how != "not restored":
                    x[index] = start
                span = eps if how in ("forward", "no factor 2") else 2 * eps
                grad[index] = (plus - minus) / span
            return grad
        return numerical_gradient

    x = np.random.default_rng(1).standard_normal((3, 4))
    checks.check_numerical_gradient(SOLUTION["numerical_gradient"], "waves", x)
    checks.check_numerical_gradient(differences("central"), "cubes", x)
    assert "forward difference" in fails(checks.check_numerical_gradient, differences("forward"),
                                         "cubes", x)
    assert "not 2·eps" in fails(checks.check_numerical_gradient, differences("no factor 2"),
                                "cubes", x)
    assert "left x changed" in fails(checks.check_numerical_gradient,  # f's partials must
                                     differences("not restored"), "norm", x)  # mix entries
    assert "float64" in fails(checks.check_numerical_gradient,
                              lambda f, x, eps: np.zeros(x.shape, np.float32), "cubes", x)


class _WeightGradientDoubled(torch.autograd.Function):
    """The solution's function with a wrong weight gradient (twice the right one)."""

    @staticmethod
    def forward(ctx, *args):
        ctx.args = args
        return SOLUTION["NumpyConv2dFunction"].forward(ctx, *args)

    @staticmethod
    def backward(ctx, grad_output):
        grads = list(SOLUTION["NumpyConv2dFunction"].backward(ctx, grad_output))
        grads[1] = 2 * grads[1]
        return tuple(grads)


def test_a_wrong_backward_fails_gradcheck_and_training_with_the_step_named():
    assert "gradcheck" in fails(checks.check_gradcheck, _WeightGradientDoubled)
    message = fails(checks.check_training, _WeightGradientDoubled, steps=3, examples=64)
    assert "at step 1" in message and "forward pass is right" in message
    assert "weight" in fails(checks.check_function_case, _WeightGradientDoubled, GRID[0][0])
