"""The dilation pictures are computed truthfully through F.conv2d and autograd."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convcourse.figures.dilation import (
    dilated_kernel,
    dilated_taps_figure,
    extent,
    receptive_field,
    receptive_field_figure,
)


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_dilated_kernel_spreads_taps_d_apart(dilation):
    weight = torch.arange(1.0, 10.0, dtype=torch.float64).reshape(3, 3)
    dense = dilated_kernel(weight, dilation)
    assert dense.shape == (2 * dilation + 1,) * 2
    assert int((dense != 0).sum()) == 9
    assert torch.equal(dense[::dilation, ::dilation], weight)
    torch.manual_seed(0)
    x = torch.randn(1, 1, 11, 11, dtype=torch.float64)
    assert torch.allclose(
        F.conv2d(x, weight[None, None], dilation=dilation), F.conv2d(x, dense[None, None])
    )


def test_taps_figure_draws_one_panel_per_dilation():
    fig = dilated_taps_figure(3, (1, 2, 3))
    for ax, d in zip(fig.axes, (1, 2, 3), strict=True):
        drawn = np.asarray(ax.images[0].get_array())
        assert drawn.shape == (2 * d + 1,) * 2
        assert len(ax.patches) == 9  # one outline per tap
        assert np.array_equal(np.argwhere(drawn != 0) % d, np.zeros((9, 2)))


@pytest.mark.parametrize(
    "dilations, kernel_size",
    [((1,), 3), ((1, 1, 1), 3), ((1, 2, 4), 3), ((2, 3), 5), ((1, 2), 4)],
)
def test_receptive_field_extent(dilations, kernel_size):
    field = receptive_field(dilations, kernel_size)
    side = 1 + sum(d * (kernel_size - 1) for d in dilations)
    assert extent(field) == (side, side)
    assert field.shape == (side + 2, side + 2)  # a margin that stays unread


def test_receptive_field_density():
    assert bool((receptive_field((1, 2, 4))[1:-1, 1:-1] > 0).all())  # 15 x 15, no holes
    gridded = receptive_field((2, 2, 2))
    assert extent(gridded) == (13, 13) and int((gridded > 0).sum()) == 7 * 7


def test_receptive_field_figure_titles():
    fig = receptive_field_figure(((1, 2, 4),))
    assert [ax.get_title().splitlines()[1] for ax in fig.axes] == [
        "receptive field 3×3",
        "receptive field 7×7",
        "receptive field 15×15",
    ]
