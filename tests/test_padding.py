"""The padding pictures show what F.pad and F.conv2d really do."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from convcourse.figures.padding import (
    MODES,
    pad_2d,
    pad_amounts,
    padded_border_figure,
    read_count,
    read_count_figure,
)
from convcourse.reference import same_padding

X = torch.arange(1.0, 17.0).reshape(4, 4)


def test_pad_amounts_follow_f_pad_order():
    assert pad_amounts(2) == (2, 2, 2, 2)
    assert pad_amounts((1, 3)) == (3, 3, 1, 1)  # (p_H, p_W) -> (left, right, top, bottom)
    assert pad_amounts((0, 1, 2, 3)) == (0, 1, 2, 3)
    with pytest.raises(ValueError):
        pad_amounts((1, 2, 3))


@pytest.mark.parametrize("mode", MODES)
def test_pad_2d_equals_nn_conv2d_padding(mode):
    padded, border = pad_2d(X, (1, 2), mode)
    conv = nn.Conv2d(1, 1, 3, padding=(1, 2), padding_mode=mode, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(9.0).reshape(1, 1, 3, 3))
        expected = conv(X[None, None])[0, 0]
    assert torch.equal(F.conv2d(padded[None, None], conv.weight)[0, 0], expected)
    assert padded.shape == (6, 8) and int(border.sum()) == 6 * 8 - 16
    assert torch.equal(padded[~border].reshape(4, 4), X)


def test_figure_draws_f_pad_for_every_mode():
    fig = padded_border_figure(X, 2)
    assert len(fig.axes) == len(MODES)
    for ax, mode in zip(fig.axes, MODES, strict=True):
        f_mode = "constant" if mode == "zeros" else mode
        drawn = np.asarray(ax.images[0].get_array())
        assert np.array_equal(drawn, F.pad(X[None, None], (2, 2, 2, 2), mode=f_mode)[0, 0])
        assert ax.get_title() == f"padding_mode='{mode}'"


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_same_padding_matches_torch(kernel_size, dilation):
    torch.manual_seed(0)
    x = torch.randn(1, 1, 9, 9, dtype=torch.float64)
    w = torch.randn(1, 1, kernel_size, kernel_size, dtype=torch.float64)
    before, after = same_padding(kernel_size, dilation)
    ours = F.conv2d(F.pad(x, (before, after, before, after)), w, dilation=dilation)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # even kernels warn that a padded copy is made
        torch_same = F.conv2d(x, w, padding="same", dilation=dilation)
    assert torch.allclose(ours, torch_same)


def test_read_count_corners_and_full_padding():
    assert read_count((5, 5), 3, 0)[0, 0] == 1 and read_count((5, 5), 3, 0)[2, 2] == 9
    assert read_count((5, 5), 3, 1)[0, 0] == 4
    assert bool((read_count((5, 6), 3, 2) == 9).all())
    fig = read_count_figure((5, 5), 3, (0, 1))
    assert np.array_equal(np.asarray(fig.axes[1].images[0].get_array()), read_count((5, 5), 3, 1))
