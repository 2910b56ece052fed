"""The pictures of the receptive-field and initialisation pages draw what PyTorch computes."""

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from convcourse.figures.aliasing import BLUR, aliasing_figure, downsample, shift, striped_blob
from convcourse.figures.initialisation import INITS, depth_figure, mean_squares


def test_downsampling_keeps_every_other_cell_after_a_circular_blur():
    x = torch.randn(2, 1, 10, 12, dtype=torch.float64)
    assert torch.equal(downsample(x), x[..., ::2, ::2])
    blur = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False,
                     dtype=torch.float64)
    with torch.no_grad():
        blur.weight.copy_(BLUR)
    assert torch.allclose(downsample(x, blur=True), blur(x)[..., ::2, ::2])


def test_the_blur_keeps_constants_and_removes_the_finest_stripes():
    constant = torch.full((1, 1, 12, 12), 3.0, dtype=torch.float64)
    assert torch.allclose(downsample(constant, blur=True), constant[..., ::2, ::2])
    columns = torch.where(torch.arange(12) % 2 == 0, 1.0, -1.0).double().repeat(1, 1, 12, 1)
    assert torch.allclose(downsample(columns, blur=True), torch.zeros(1, 1, 6, 6,
                                                                     dtype=torch.float64))
    assert torch.equal(downsample(columns), torch.ones(1, 1, 6, 6, dtype=torch.float64))
    assert torch.equal(downsample(shift(columns, 1)), -torch.ones(1, 1, 6, 6,
                                                                  dtype=torch.float64))
    assert striped_blob(12).shape == (1, 1, 12, 12)


def test_shift_wraps_around_like_roll():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    assert torch.equal(shift(x, 1)[..., 0], x[..., -1])
    assert torch.equal(shift(shift(x, 1), 3), x)


def test_the_default_initialisation_shrinks_the_signal_about_sixfold_per_relu_layer():
    # E[y^2] = fan_in Var(w) E[x^2] with Var(w) = 1/(3 fan_in), halved by the ReLU: 1/6.
    squares = mean_squares(next(iter(INITS)), depth=6, channels=64, size=16)
    typical = (squares[-1] / squares[0]) ** (1 / 6)
    assert len(squares) == 7 and 0.12 < typical < 0.22
    kaiming = mean_squares("kaiming_normal_, fan_in, relu", depth=6, channels=64, size=16)
    assert 0.25 < kaiming[-1] / kaiming[0] < 4


def test_bad_names_and_closed_figures():
    with pytest.raises(ValueError, match="init must be one of"):
        mean_squares("xavier")
    assert isinstance(aliasing_figure(8), Figure) and len(aliasing_figure(8).axes) == 6
    assert len(depth_figure(depth=2, channels=8).axes) == 1
