"""``expected_output_shape`` is the contract of assignment 1: nn.Conv2d's shapes and refusals.

nn.Conv2d on the CPU is the authority. For a seeded sweep of configurations, valid and invalid,
``expected_output_shape`` must give the CPU's output shape wherever the CPU gives one, and a
refusal wherever the CPU refuses, whether in the constructor or in the forward pass. Beyond
that it refuses in two places where PyTorch does not (an input without channels, a sequence
that is not a pair), and it answers an empty batch as it answers a batch of one; each is
tested beside the PyTorch behaviour that makes it a rule of its own. Last, arithmetic alone
(no nn.Conv2d) meets the contract, so the rules the notebook writes down are complete.
"""

from __future__ import annotations

import random
import warnings

import pytest
import torch
from torch import nn

from convcourse.grading.checks import check_output_shape, expected_output_shape


def cpu_outcome(input_shape, out_channels, kernel_size, **options):
    """What nn.Conv2d built and run on the CPU does: its output shape, or the error it raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero-element weights, 'same' with an even kernel
        try:
            conv = nn.Conv2d(input_shape[-3], out_channels, kernel_size, **options)
            with torch.no_grad():
                return tuple(conv(torch.zeros(input_shape)).shape)
        except Exception as error:  # noqa: BLE001  (PyTorch raises IndexError, too, at times)
            return error


def pick(rng: random.Random, good: list, bad: list, odds: float = 0.06):
    """Mostly a value from ``good``; now and then (``odds``) one from ``bad``."""
    return rng.choice(bad) if rng.random() < odds else rng.choice(good)


def size(rng: random.Random, good: list[int], bad: list[int]):
    """An int, or now and then a pair of two (possibly different) ints."""
    if rng.random() < 0.7:
        return pick(rng, good, bad)
    return (pick(rng, good, bad), pick(rng, good, bad))


def draw(rng: random.Random):
    """One configuration, quite often invalid, with C_in >= 1 and pairs of length 2."""
    groups = pick(rng, [1, 1, 1, 2, 3], [0, -1])
    c_in = rng.choice([1, 2, 3, 4, 6])
    height, width = pick(rng, [1, 2, 3, 5, 8, 9], [0]), pick(rng, [1, 2, 4, 7, 10], [0])
    batch = (pick(rng, [1, 2], [0], odds=0.2),) if rng.random() < 0.8 else ()
    options = {
        "stride": size(rng, [1, 1, 2, 3], [0, -1]),
        "padding": rng.choice(["same", "valid", "full"]) if rng.random() < 0.25
        else size(rng, [0, 0, 1, 2], [-1]),
        "dilation": size(rng, [1, 1, 2, 3], [0]),
        "groups": groups,
    }
    out_channels = pick(rng, [1, 2, 3, 4, 6], [0])
    return (*batch, c_in, height, width), out_channels, size(rng, [1, 2, 3, 4, 5], [0]), options


SWEEP = [draw(random.Random(seed)) for seed in range(1500)]


def test_the_sweep_equals_nn_conv2d_on_the_cpu():
    for input_shape, out_channels, kernel_size, options in SWEEP:
        expected = expected_output_shape(input_shape, out_channels, kernel_size, **options)
        # An empty batch gets the answer of a batch of one (see the test about empty batches).
        empty = len(input_shape) == 4 and input_shape[0] == 0
        probe = (1, *input_shape[1:]) if empty else input_shape
        actual = cpu_outcome(probe, out_channels, kernel_size, **options)
        config = (input_shape, out_channels, kernel_size, options)
        if isinstance(actual, Exception):
            assert isinstance(expected, Exception), (config, actual, expected)
        else:
            assert expected == ((0, *actual[1:]) if empty else actual), (config, actual, expected)
            assert all(type(v) is int for v in expected)


def test_the_sweep_meets_every_refusal_and_many_shapes():
    """The sweep is not vacuous: it meets each of PyTorch's refusals, and valid layers too."""
    messages = [str(cpu_outcome(*config[:3], **config[3])) for config in SWEEP]
    for words in ["in_channels must be divisible", "out_channels must be divisible",
                  "groups must be a positive integer", "not supported for strided",
                  "Invalid padding string", "Kernel size can't be greater",
                  "non-positive stride", "dilation should be greater than zero",
                  "negative padding", "kernel size should be greater than zero",
                  "expected weight to be at least 1", "Only zero batch or zero channel"]:
        assert any(words in message for message in messages), words
    shapes = [m for m in messages if m.startswith("(")]
    assert len(shapes) > len(SWEEP) // 6 and any(m.startswith("(0,") for m in shapes)


# Each family of refusals, with nn.Conv2d's own behaviour on the CPU beside it.
REFUSED_BY_PYTORCH = {
    "groups zero": ((1, 4, 8, 8), 8, 3, {"groups": 0}),
    "groups not dividing in_channels": ((1, 6, 8, 8), 8, 3, {"groups": 4}),
    "groups not dividing out_channels": ((1, 4, 8, 8), 6, 3, {"groups": 4}),
    "'same' with a stride": ((1, 1, 8, 8), 8, 3, {"padding": "same", "stride": 2}),
    "'same' with a stride pair": ((1, 1, 8, 8), 8, 3, {"padding": "same", "stride": (1, 2)}),
    "unknown padding string": ((1, 1, 8, 8), 8, 3, {"padding": "full"}),
    "padding string in capitals": ((1, 1, 8, 8), 8, 3, {"padding": "SAME"}),
    "out_channels zero": ((1, 1, 8, 8), 0, 3, {}),
    "out_channels negative": ((1, 1, 8, 8), -2, 3, {}),
    "in_channels negative": ((1, -1, 8, 8), 8, 3, {}),
    "kernel zero": ((1, 1, 8, 8), 8, 0, {}),
    "kernel zero in a pair": ((1, 1, 8, 8), 8, (3, 0), {}),
    "kernel negative": ((1, 1, 8, 8), 8, -1, {}),
    "stride zero": ((1, 1, 8, 8), 8, 3, {"stride": 0}),
    "stride negative in a pair": ((1, 1, 8, 8), 8, 3, {"stride": (1, -1)}),
    "dilation zero": ((1, 1, 8, 8), 8, 3, {"dilation": 0}),
    "dilation zero with 'same'": ((1, 1, 8, 8), 8, 3, {"dilation": 0, "padding": "same"}),
    "padding negative": ((1, 1, 8, 8), 8, 3, {"padding": -1}),
    "padding negative in a pair": ((1, 1, 8, 8), 8, 3, {"padding": (0, -1)}),
    "height zero": ((1, 1, 0, 8), 8, 1, {}),
    "width zero, padded": ((1, 1, 8, 0), 8, 1, {"padding": 1}),
    "batch negative": ((-1, 1, 8, 8), 8, 3, {}),
    "kernel larger than the input": ((1, 1, 3, 3), 8, 5, {}),
    "dilated kernel larger than the input": ((1, 1, 4, 4), 8, 3, {"dilation": 2}),
    "kernel larger in one axis only": ((2, 8, 8), 8, (1, 9), {"padding": (0, 0)}),
    "five axes": ((1, 1, 1, 8, 8), 8, 3, {}),
    "kernel triple": ((1, 1, 8, 8), 8, (3, 3, 3), {}),
    "stride triple": ((1, 1, 8, 8), 8, 3, {"stride": (1, 1, 1)}),
    "padding triple": ((1, 1, 8, 8), 8, 3, {"padding": (1, 1, 1)}),
}


@pytest.mark.parametrize("config", REFUSED_BY_PYTORCH.values(), ids=REFUSED_BY_PYTORCH)
def test_each_refusal_of_nn_conv2d_is_a_refusal(config):
    input_shape, out_channels, kernel_size, options = config
    assert isinstance(cpu_outcome(*config[:3], **options), Exception)
    assert isinstance(expected_output_shape(input_shape, out_channels, kernel_size, **options),
                      Exception)


def test_two_axes_are_refused_although_pytorch_fails_differently():
    # PyTorch's constructor trips over input_shape[-3] of a 2-axis shape (a TypeError).
    assert isinstance(cpu_outcome((8, 8), 8, 3), Exception)
    assert isinstance(expected_output_shape((8, 8), 8, 3), ValueError)


def test_an_input_without_channels_is_refused_where_pytorch_returns_nonsense():
    # PyTorch accepts it, warns, and answers 0 output channels although out_channels is 8.
    assert cpu_outcome((1, 0, 8, 8), 8, 3) == (1, 0, 6, 6)
    refusal = expected_output_shape((1, 0, 8, 8), 8, 3)
    assert isinstance(refusal, ValueError) and "channel" in str(refusal)


@pytest.mark.parametrize("name", ["kernel_size", "stride", "padding", "dilation"])
def test_a_sequence_that_is_not_a_pair_is_refused(name):
    options = {"kernel_size": 3, name: (1,)}
    refusal = expected_output_shape((1, 1, 8, 8), 8, **options)
    assert isinstance(refusal, ValueError) and name in str(refusal)
    if name != "kernel_size":  # PyTorch reads a 1-tuple stride, padding or dilation as an int
        as_int = cpu_outcome((1, 1, 8, 8), 8, **{**options, name: 1})
        assert cpu_outcome((1, 1, 8, 8), 8, **options) == as_int


def test_an_empty_batch_is_answered_like_a_batch_of_one():
    assert expected_output_shape((0, 3, 8, 8), 4, 3) == cpu_outcome((0, 3, 8, 8), 4, 3) == (
        0, 4, 6, 6)
    # An empty batch does not excuse a window that does not fit, in PyTorch either.
    assert isinstance(expected_output_shape((0, 1, 2, 2), 8, 3), Exception)
    assert isinstance(cpu_outcome((0, 1, 2, 2), 8, 3), Exception)
    # PyTorch skips some checks when there is no data: dilation 0, an input of height 0.
    # The contract does not: a layer's configuration is no better for an empty batch.
    for config in [((0, 1, 8, 8), 8, 3, {"dilation": 0}), ((0, 1, 0, 8), 8, 1, {"padding": 1})]:
        assert not isinstance(cpu_outcome(*config[:3], **config[3]), Exception)
        assert isinstance(cpu_outcome((1, *config[0][1:]), *config[1:3], **config[3]),
                          Exception)
        assert isinstance(expected_output_shape(*config[:3], **config[3]), ValueError)


@pytest.mark.parametrize("example, expected", [
    (((1, 1, 28, 28), 16, 3, {"stride": 1, "padding": 1}), (1, 16, 28, 28)),
    (((1, 3, 64, 64), 32, 5, {"stride": 2, "padding": 2}), (1, 32, 32, 32)),
    (((1, 1, 28, 28), 8, 3, {"stride": 1, "padding": 1, "dilation": 2}), (1, 8, 26, 26)),
    (((1, 28, 28), 8, 3, {"padding": 1, "dilation": 2}), (8, 26, 26)),
    (((1, 1, 8, 8), 8, 4, {"padding": "same"}), (1, 8, 8, 8)),
    (((1, 1, 8, 8), 8, 3, {"padding": "valid", "stride": 2}), (1, 8, 3, 3)),
    (((10, 3, 32, 32), 8, (3, 5), {"padding": (1, 0)}), (10, 8, 32, 28)),
], ids=["example 1", "example 2", "example 3", "unbatched", "'same' even", "'valid' strided",
        "pairs"])
def test_the_book_s_examples(example, expected):
    input_shape, out_channels, kernel_size, options = example
    assert expected_output_shape(input_shape, out_channels, kernel_size, **options) == expected


def test_refusals_are_returned_and_silent():
    with warnings.catch_warnings():
        # A warning goes to stderr, and plain `nbgrader autograde` scores a test cell that
        # writes there 0 (the course's grader does not: it only asks whether a test raised).
        warnings.simplefilter("error")
        assert expected_output_shape((1, 1, 8, 8), 8, 4, padding="same") == (1, 8, 8, 8)
        assert isinstance(expected_output_shape((1, 0, 8, 8), 8, 3), ValueError)
        assert isinstance(expected_output_shape((1, 1, 8, 8), 8, 3, padding="full"),
                          ValueError)


def arithmetic_output_shape(input_shape, out_channels, kernel_size, stride=1, padding=0,
                            dilation=1, groups=1):
    """The contract by arithmetic alone, as a learner writes it from the notebook's table."""

    def pair(name, value, smallest):
        values = (value, value) if isinstance(value, int) else tuple(value)
        if len(values) != 2 or min(values) < smallest:
            raise ValueError(f"bad {name}: {value!r}")
        return values

    if len(input_shape) not in (3, 4):
        raise ValueError("input_shape needs 3 or 4 axes")
    *batch, c_in, height, width = input_shape
    if (batch and batch[0] < 0) or min(c_in, height, width, out_channels, groups) < 1:
        raise ValueError("a size is not positive")
    if c_in % groups or out_channels % groups:
        raise ValueError("groups must divide both channel counts")
    k, s, d = pair("kernel_size", kernel_size, 1), pair("stride", stride, 1), pair(
        "dilation", dilation, 1)
    if padding == "same":
        if s != (1, 1):
            raise ValueError("'same' needs stride 1")
        return (*batch, out_channels, height, width)
    if isinstance(padding, str) and padding != "valid":
        raise ValueError(f"unknown padding {padding!r}")
    p = (0, 0) if padding == "valid" else pair("padding", padding, 0)
    spatial = tuple((size + 2 * p_ - d_ * (k_ - 1) - 1) // s_ + 1
                    for size, k_, s_, p_, d_ in zip((height, width), k, s, p, d, strict=True))
    if min(spatial) < 1:
        raise ValueError("the window does not fit")
    return (*batch, out_channels, *spatial)


def test_check_output_shape_passes_the_contract_and_names_what_is_wrong():
    """The rules written in the notebook are complete: arithmetic alone passes every check."""
    for input_shape, out_channels, kernel_size, options in SWEEP:
        check_output_shape(arithmetic_output_shape, input_shape, out_channels, kernel_size,
                           **options)
    for config in REFUSED_BY_PYTORCH.values():
        input_shape, out_channels, kernel_size, options = config
        with pytest.raises(ValueError):
            arithmetic_output_shape(input_shape, out_channels, kernel_size, **options)

    def ignores_dilation(input_shape, out_channels, kernel_size, **options):
        return arithmetic_output_shape(input_shape, out_channels, kernel_size,
                                       **{**options, "dilation": 1})

    with pytest.raises(AssertionError, match=r"returned \(1, 8, 28, 28\), expected"):
        check_output_shape(ignores_dilation, (1, 1, 28, 28), 8, 3, padding=1, dilation=2)

    def raises_runtime_error(*args, **options):
        raise RuntimeError("no")

    with pytest.raises(AssertionError, match=r"raised RuntimeError \(no\), expected ValueError: "
                                             "the configuration is invalid"):
        check_output_shape(raises_runtime_error, (1, 1, 3, 3), 8, 5)

    with pytest.raises(AssertionError, match="the configuration is invalid"):
        check_output_shape(ignores_dilation, (1, 1, 4, 4), 8, 3, dilation=2)
