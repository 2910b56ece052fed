"""The upsampling pictures (nn.ConvTranspose2d's page) show what the layers compute."""

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from convcourse.figures.upsampling import (
    METHODS,
    checkerboard_figure,
    interior,
    phases,
    upsample_constant,
    upsampler,
)


def stamp_count(size: int, kernel_size: int, stride: int, padding: int, out_size: int):
    """How many (input cell, tap) pairs land on each output cell, counted with loops."""
    count = torch.zeros(out_size, out_size, dtype=torch.float64)
    for i in range(size):
        for j in range(size):
            for a in range(kernel_size):
                for b in range(kernel_size):
                    r, c = stride * i + a - padding, stride * j + b - padding
                    if 0 <= r < out_size and 0 <= c < out_size:
                        count[r, c] += 1
    return count


@pytest.mark.parametrize("method", METHODS)
def test_every_method_doubles_the_size(method):
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    assert upsampler(method, channels=3)(x).shape == (2, 3, 10, 14)


@pytest.mark.parametrize(("method", "kernel_size"), [("transposed k=3", 3), ("transposed k=4", 4)])
def test_with_weights_one_a_transposed_layer_counts_its_stamps(method, kernel_size):
    got = upsample_constant(method, size=5, weights="ones")
    assert torch.equal(got, stamp_count(5, kernel_size, 2, 1, 10))


def test_random_weights_are_the_modules_own():
    got = upsample_constant("transposed k=3", size=4, weights="random", seed=3)
    weight = torch.randn((1, 1, 3, 3), generator=torch.Generator().manual_seed(3),
                         dtype=torch.float64)
    expected = F.conv_transpose2d(torch.ones(1, 1, 4, 4, dtype=torch.float64), weight, stride=2,
                                  padding=1, output_padding=1)[0, 0]
    assert torch.allclose(got, expected)


def test_only_resize_then_convolve_keeps_a_constant_constant():
    for method in METHODS:
        inside = interior(upsample_constant(method, size=6, weights="random", seed=1))
        flat = torch.allclose(inside, inside[0, 0].expand_as(inside))
        assert flat == (method == "resize + conv"), method
        assert all(torch.allclose(p, p[0, 0].expand_as(p)) for p in phases(inside)), method


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="method must be one of"):
        upsampler("bilinear")
    with pytest.raises(ValueError, match="weights must be"):
        upsample_constant("resize + conv", weights="zeros")


def test_the_figure_is_returned_closed():
    figure = checkerboard_figure(size=3)
    assert isinstance(figure, Figure) and len(figure.axes) == 2 * len(METHODS)
