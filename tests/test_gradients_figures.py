"""The backward-pass and training pictures draw what PyTorch computes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input

from convcourse.figures.gradients import (
    footprint,
    gradient_reach_figure,
    input_gradient,
    output_size,
    reach_count,
    spread,
    transposed_figure,
    transposed_steps,
    unread,
)
from convcourse.figures.training import (
    feature_maps,
    feature_maps_figure,
    filters_figure,
    images_figure,
)
from convcourse.reference import pair

# (size, kernel_size, stride, padding, dilation): dividing and non-dividing strides, padding,
# dilation, pairs.
CALLS = [
    (8, 3, 1, 0, 1),
    (8, 3, 2, 0, 1),
    (8, 3, 3, 0, 1),
    (7, 2, 2, 0, 2),
    (10, 3, 2, 1, 2),
    (9, 3, 3, 1, 1),
    ((9, 7), (3, 2), (2, 3), (1, 2), 1),
    ((11, 8), (2, 3), (3, 2), (2, 0), (3, 2)),
]


def drawn(ax) -> np.ndarray:
    """The numbers a grid panel shows (its first image)."""
    return np.asarray(ax.images[0].get_array())


def autograd_grad_x(size, kernel_size, stride, padding, dilation, seed=0):
    """grad_x of a random two-channel conv2d with a random upstream gradient, by autograd."""
    generator = torch.Generator().manual_seed(seed)
    (h, w), (kh, kw) = pair(size), pair(kernel_size)
    x = torch.randn(2, 2, h, w, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(3, 2, kh, kw, dtype=torch.float64, generator=generator)
    out = F.conv2d(x, weight, stride=stride, padding=padding, dilation=dilation)
    out.backward(torch.randn(out.shape, dtype=torch.float64, generator=generator))
    return x.grad


@pytest.mark.parametrize("call", CALLS)
def test_unread_rows_and_columns_are_where_autograd_gives_zero(call):
    grad_x = autograd_grad_x(*call)
    zero_rows = [r for r in range(grad_x.shape[2]) if (grad_x[:, :, r, :] == 0).all()]
    zero_cols = [c for c in range(grad_x.shape[3]) if (grad_x[:, :, :, c] == 0).all()]
    assert unread(*call) == (zero_rows, zero_cols)
    # and every other cell does get a gradient
    count = reach_count(*call)
    assert torch.equal(count == 0, grad_x[0, 0] == 0)


@pytest.mark.parametrize(
    ("call", "rows"),
    [((8, 3, 2), [7]), ((8, 3, 3), [6, 7]), ((7, 2, 2, 0, 2), [1, 3, 5]), ((8, 3, 1), []),
     ((10, 2, 3, 0, 2), [1, 4, 7, 9])],
)
def test_unread_rows_by_hand(call, rows):
    assert unread(*call)[0] == rows


@pytest.mark.parametrize("call", CALLS)
def test_reach_count_counts_every_tap_of_every_window(call):
    size, kernel_size, stride, padding, dilation = call
    count = reach_count(*call)
    h_out, w_out = output_size(*call)
    kernel = torch.ones(1, 1, *pair(kernel_size))
    ph, pw = pair(padding)
    padded = F.pad(torch.ones(1, 1, *count.shape), (pw, pw, ph, ph))  # 1 on x, 0 on padding
    # reads of real input cells = sum over windows of the real cells under the window's taps
    reads = F.conv2d(padded, kernel, stride=stride, dilation=dilation).sum()
    assert int(count.sum()) == int(reads)
    assert (h_out, w_out) == F.conv2d(padded, kernel, stride=stride, dilation=dilation).shape[-2:]


@pytest.mark.parametrize("call", CALLS)
def test_footprint_puts_tap_a_b_where_the_window_read(call):
    size, kernel_size, stride, padding, dilation = call
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (pair(v) for v in
                                              (kernel_size, stride, padding, dilation))
    h_out, w_out = output_size(*call)
    at = (h_out - 1, w_out // 2)
    taps = footprint(*call, at=at)
    expected = torch.zeros_like(taps)
    for a in range(kh):
        for b in range(kw):
            r, c = sh * at[0] + dh * a - ph, sw * at[1] + dw * b - pw
            if 0 <= r < taps.shape[0] and 0 <= c < taps.shape[1]:
                expected[r, c] = a * kw + b + 1
    assert torch.equal(taps, expected)


def test_input_gradient_refuses_a_grad_out_of_the_wrong_shape():
    with pytest.raises(ValueError, match="grad_out must be"):
        input_gradient(torch.ones(3, 3), torch.ones(3, 3), 8, stride=1)


def test_spread_inserts_stride_minus_one_zeros():
    g = torch.arange(1.0, 7.0).reshape(2, 3)
    s = spread(g, (2, 3))
    assert s.shape == (3, 7)
    assert torch.equal(s[::2, ::3], g)
    assert int((s != 0).sum()) == 6


@pytest.mark.parametrize(("stride", "dilation", "k"), [(1, 1, 3), (2, 1, 3), (3, 2, 2),
                                                       ((2, 1), (1, 2), 3), (2, 2, 3)])
def test_transposed_steps_give_autograds_grad_x(stride, dilation, k):
    generator = torch.Generator().manual_seed(1)
    grad_out = torch.randn(3, 2, dtype=torch.float64, generator=generator)
    weight = torch.randn(k, k, dtype=torch.float64, generator=generator)
    steps = transposed_steps(grad_out, weight, stride, dilation)
    assert torch.equal(steps["flipped"], weight.rot90(2))
    size = steps["result"].shape  # exactly the cells that the windows read
    assert output_size(tuple(size), k, stride, 0, dilation) == (3, 2)
    assert torch.allclose(steps["result"], input_gradient(grad_out, weight, tuple(size), stride,
                                                          0, dilation))
    library = conv2d_input((1, 1, *size), weight[None, None], grad_out[None, None],
                           stride=stride, dilation=dilation)
    assert torch.allclose(steps["result"], library[0, 0])


def test_transposed_steps_without_the_flip_would_be_wrong():
    grad_out = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    weight = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    steps = transposed_steps(grad_out, weight, 2)
    no_flip = F.conv2d(steps["padded"][None, None], weight[None, None].double())[0, 0]
    assert not torch.allclose(no_flip, steps["result"])


def test_reach_figure_draws_grad_out_footprint_and_counts():
    fig = gradient_reach_figure(size=8, kernel_size=3, stride=2, at=(1, 1))
    one_hot, taps, count = (drawn(ax) for ax in fig.axes)
    assert one_hot.shape == (3, 3) and one_hot.sum() == 1 and one_hot[1, 1] == 1
    assert np.array_equal(taps, footprint(8, 3, 2, at=(1, 1)).numpy())
    assert np.array_equal(count, reach_count(8, 3, 2).numpy())
    assert len(fig.axes[1].patches) == 9  # one outline per reached cell
    assert "unread rows: 7; cols: 7" in fig.axes[2].get_title()


def test_reach_figure_names_no_unread_rows_when_the_stride_divides():
    fig = gradient_reach_figure(size=7, kernel_size=3, stride=2, at=(0, 0))
    assert "unread rows: none; cols: none" in fig.axes[2].get_title()


def test_transposed_figure_draws_the_steps():
    grad_out = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    weight = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    fig = transposed_figure(grad_out, weight, stride=2)
    panels = [drawn(ax) for ax in fig.axes]
    steps = transposed_steps(grad_out, weight, 2)
    assert np.array_equal(panels[0], grad_out.numpy())
    assert np.array_equal(panels[1], steps["padded"].numpy())
    assert np.array_equal(panels[2], weight.flip(0, 1).numpy())
    x = torch.zeros(1, 1, 5, 5, requires_grad=True)
    F.conv2d(x, weight[None, None], stride=2).backward(grad_out[None, None])
    assert np.allclose(panels[3], x.grad[0, 0].numpy())
    # the four entries of grad_out are outlined, at stride 2 inside the padding of 2
    corners = sorted((round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in fig.axes[1].patches)
    assert corners == [(2, 2), (2, 4), (4, 2), (4, 4)]


def test_filters_figure_draws_each_filter():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 5, kernel_size=3)
    fig = filters_figure(conv, per_row=3)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 5
    for o, ax in enumerate(shown):
        assert np.allclose(drawn(ax), conv.weight[o, 0].detach().numpy())
        assert ax.get_title() == f"filter {o}"


def test_filters_figure_uses_the_given_colour_scale():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 2, kernel_size=3)
    default = filters_figure(conv).axes[0].images[0].get_clim()
    largest = conv.weight.abs().max().item()
    assert np.allclose(default, (-largest, largest))
    assert filters_figure(conv, limit=2.5).axes[0].images[0].get_clim() == (-2.5, 2.5)


def test_images_figure_draws_each_image_with_its_title():
    images = torch.arange(3 * 4 * 4, dtype=torch.float32).reshape(3, 4, 4)
    fig = images_figure(images, ["a", "b", "c"], per_row=2)
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["a", "b", "c"]
    for image, ax in zip(images, shown, strict=True):
        assert np.array_equal(drawn(ax), image.numpy())
        assert ax.images[0].get_clim() == (0, 47)  # one grey scale for all


def test_filters_figure_refuses_several_input_channels():
    with pytest.raises(ValueError, match="single-input-channel"):
        filters_figure(nn.Conv2d(2, 4, kernel_size=3))


def test_feature_maps_are_the_relu_of_the_layer():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 6, kernel_size=3, padding=1)
    image = torch.rand(8, 8)
    maps = feature_maps(conv, image)
    expected = torch.relu(F.conv2d(image[None, None], conv.weight, conv.bias, padding=1))[0]
    assert torch.allclose(maps, expected) and (maps >= 0).all() and (maps == 0).any()
    fig = feature_maps_figure(conv, image, per_row=4)
    assert np.allclose(drawn(fig.axes[0]), image.numpy())
    for o, ax in enumerate(fig.axes[1:]):
        assert np.allclose(drawn(ax), expected[o].detach().numpy())
    assert len(fig.axes) == 1 + 6
