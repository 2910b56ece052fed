"""The sliding-window pictures show what F.conv2d really does."""

import itertools
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.text import Annotation

from convcourse.figures import sliding


def _texts(ax) -> list[str]:
    """The cell labels of a grid (the ⋆ and = between panels are annotations, left out)."""
    return [text.get_text() for text in ax.texts if not isinstance(text, Annotation)]


@pytest.mark.parametrize(
    ("stride", "padding", "dilation"), [(1, 0, 1), (2, 1, 1), ((1, 2), (0, 1), (2, 1))]
)
def test_window_products_sum_to_conv2d(stride, padding, dilation):
    torch.manual_seed(0)
    x = torch.randint(-3, 4, (6, 7)).double()
    weight = torch.randint(-2, 3, (3, 2)).double()
    window = sliding._Window(x, weight, stride, padding, dilation)
    expected = F.conv2d(x[None, None], weight[None, None], stride=stride, padding=padding,
                        dilation=dilation)[0, 0]
    assert window.taps.shape[:2] == expected.shape
    for i, j in np.ndindex(*expected.shape):
        assert window.products(i, j).sum().item() == expected[i, j].item()
        assert window.arithmetic(i, j).endswith(f"= {expected[i, j].item():g}")


def test_window_taps_are_dilated_and_strided():
    taps = sliding.window_taps((7, 7), 3, stride=2, dilation=2)
    assert taps.shape == (2, 2, 3, 3, 2)
    assert taps[1, 1, 0, 0].tolist() == [2, 2]  # second window starts one stride further
    assert taps[1, 1, 2, 2].tolist() == [6, 6]  # and spans d(k-1) + 1 = 5 cells


def test_animation_has_one_frame_per_output_and_ends_on_conv2d():
    x = torch.arange(16.0).reshape(4, 4)
    weight = torch.tensor([[1.0, -1.0], [2.0, 0.0]])
    anim = sliding.sliding_window_animation(x, weight, stride=2, padding=1, dpi=30)
    html = anim.to_jshtml()
    expected = F.conv2d(x[None, None], weight[None, None], stride=2, padding=1)[0, 0]
    assert len(re.findall(r"frames\[\d+\] = ", html)) == expected.numel() == 9
    assert not plt.fignum_exists(anim._fig.number)
    out_ax = anim._fig.axes[2]  # after rendering, the last frame shows the whole output
    assert _texts(out_ax) == [f"{v:g}" for v in expected.flatten().tolist()]


def test_window_figure_draws_padding_and_output():
    x = torch.arange(9.0).reshape(3, 3)
    fig = sliding.window_figure(x, torch.ones(2, 2), at=(1, 0), padding=1)
    padded = F.pad(x, (1, 1, 1, 1))
    assert _texts(fig.axes[0]) == [f"{v:g}" for v in padded.flatten().tolist()]
    out = F.conv2d(x[None, None], torch.ones(1, 1, 2, 2), padding=1)[0, 0]
    assert _texts(fig.axes[2]) == [f"{v:g}" for v in out.flatten().tolist()]
    assert fig._suptitle.get_text() == "out[1, 0] = 0·1 + 0·1 + 0·1 + 3·1 = 3"
    assert not plt.fignum_exists(fig.number)


@pytest.mark.parametrize(
    ("size", "k", "s", "p", "d"),
    [(8, 3, 2, 0, 1), (9, 2, 3, 1, 1), (10, 3, 3, 0, 2), (7, 4, 1, 2, 1)],
)
def test_coverage_matches_brute_force(size, k, s, p, d):
    counts = sliding.coverage(size, size + 1, k, stride=s, padding=p, dilation=d)
    padded_h, padded_w = size + 2 * p, size + 1 + 2 * p
    brute = torch.zeros(padded_h, padded_w, dtype=torch.long)
    span = d * (k - 1)
    for top, left in itertools.product(range(0, padded_h - span, s), range(0, padded_w - span, s)):
        for a, b in itertools.product(range(k), range(k)):
            brute[top + a * d, left + b * d] += 1
    assert torch.equal(counts, brute)


def test_unread_cells_are_what_the_floor_drops():
    unread = sliding.unread_cells(8, 8, 3, stride=2)
    assert unread[7].all() and unread[:, 7].all() and unread.sum() == 15
    assert not sliding.unread_cells(8, 8, 3, stride=2, padding=1).any()
    fig = sliding.unread_cells_figure(8, 8, 3, stride=2)
    assert len(fig.axes[0].patches) == 15  # one red outline per unread cell


def test_positions_figure_labels_one_start_per_output():
    fig = sliding.window_positions_figure(7, 7, 3, [1, 2, (2, 1)])
    for ax, stride in zip(fig.axes, [1, 2, (2, 1)], strict=True):
        out = F.conv2d(torch.zeros(1, 1, 7, 7), torch.zeros(1, 1, 3, 3), stride=stride)
        assert len(ax.texts) == out.shape[2] * out.shape[3]
    assert fig.axes[1].texts[1].get_position() == (2, 0)  # stride 2: second window at column 2


def test_output_size_figure_plots_measured_sizes():
    heights = list(range(5, 15))
    fig = sliding.output_size_figure(heights, 3, [2], padding=1)
    measured = fig.axes[0].lines[0].get_ydata()
    assert list(measured) == [(h + 2 - 2 - 1) // 2 + 1 for h in heights]
