"""Tests of convcourse.figures.channels: the figures show what PyTorch computes."""

import matplotlib.figure
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from convcourse.figures.channels import (
    channel_partials,
    channel_sum_figure,
    group_connectivity,
    group_connectivity_figure,
)


def test_partials_are_single_channel_convolutions_that_sum_to_the_output():
    torch.manual_seed(0)
    x = torch.randn(3, 6, 5, dtype=torch.float64)
    weight = torch.randn(3, 3, 2, dtype=torch.float64)
    parts = channel_partials(x, weight)
    assert parts.shape == (3, 4, 4)
    # each partial sees one channel only: zeroing the others leaves it unchanged
    alone = x.clone()
    alone[1:] = 0
    assert torch.allclose(parts[0], F.conv2d(alone[None], weight[None])[0, 0])
    assert torch.allclose(parts.sum(0), F.conv2d(x[None], weight[None])[0, 0])


def test_partials_reject_mismatched_channels():
    with pytest.raises(ValueError):
        channel_partials(torch.zeros(3, 5, 5), torch.zeros(2, 3, 3))


def test_channel_sum_figure_draws_one_row_per_channel_and_the_sum():
    x = torch.arange(2 * 4 * 4, dtype=torch.float64).reshape(2, 4, 4)
    weight = torch.ones(2, 3, 3, dtype=torch.float64)
    fig = channel_sum_figure(x, weight)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 2 * 3 + 1
    total = F.conv2d(x[None], weight[None])[0, 0]
    shown = [text.get_text() for text in fig.axes[-1].texts if text.get_text() != "→"]
    assert shown == [f"{v:g}" for v in total.flatten().tolist()]


def brute_force_connectivity(in_channels, out_channels, groups):
    """Perturb each input channel of a random layer and see which output channels move."""
    torch.manual_seed(1)
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, groups=groups,
                     dtype=torch.float64)
    x = torch.randn(1, in_channels, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        base = conv(x)
        linked = torch.zeros(out_channels, in_channels, dtype=torch.bool)
        for c in range(in_channels):
            moved = x.clone()
            moved[0, c] += 1.0
            linked[:, c] = (conv(moved) - base).abs().amax(dim=(0, 2, 3)) > 1e-12
    return linked


@pytest.mark.parametrize("c_in, c_out, groups", [(6, 6, 1), (6, 6, 2), (6, 6, 6), (4, 8, 2),
                                                 (3, 6, 3)])
def test_connectivity_matches_perturbation_and_block_diagonal(c_in, c_out, groups):
    measured = group_connectivity(c_in, c_out, groups)
    assert torch.equal(measured, brute_force_connectivity(c_in, c_out, groups))
    o = torch.arange(c_out)[:, None] // (c_out // groups)
    c = torch.arange(c_in)[None, :] // (c_in // groups)
    assert torch.equal(measured, o == c)
    assert int(measured.sum()) == c_out * c_in // groups


def test_connectivity_figure_has_one_panel_per_groups_value():
    fig = group_connectivity_figure(6, 6, (1, 2, 6))
    assert len(fig.axes) == 3
    assert [ax.get_title().splitlines()[0] for ax in fig.axes] == [
        "groups=1", "groups=2", "groups=6"]
    assert fig.axes[2].get_title().splitlines()[1] == "weight (6, 1, kH, kW)"
    for ax, groups in zip(fig.axes, (1, 2, 6), strict=True):
        drawn = ax.images[0].get_array()
        assert torch.equal(torch.from_numpy(drawn.data == 1), group_connectivity(6, 6, groups))
        assert len(ax.patches) == groups  # one outline per group's block
