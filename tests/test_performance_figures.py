"""The performance chapter's helpers compute what F.conv2d computes, and count what they claim."""

import math

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from convcourse.figures.performance import (
    arithmetic_intensity,
    conv2d_fft,
    conv2d_flops,
    conv2d_im2col,
    conv2d_loops,
    conv_backend,
    copy_bandwidth,
    im2col,
    matmul_peak,
    onednn_primitives,
    roofline_figure,
    round_to_mantissa,
    sweep_figure,
)


def inputs(n=2, c_in=3, size=(7, 6), c_out=4, kernel=(3, 2), dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_in, *size, generator=generator, dtype=dtype)
    weight = torch.randn(c_out, c_in, *kernel, generator=generator, dtype=dtype)
    bias = torch.randn(c_out, generator=generator, dtype=dtype)
    return x, weight, bias


@pytest.mark.parametrize("padding", [0, 1, 2])
def test_loops_are_f_conv2d(padding):
    x, weight, bias = inputs()
    expected = F.conv2d(x, weight, bias, padding=padding)
    assert torch.allclose(conv2d_loops(x, weight, bias, padding), expected, rtol=1e-7, atol=1e-9)
    assert torch.allclose(conv2d_loops(x, weight, None, padding),
                          F.conv2d(x, weight, padding=padding), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("arguments", [{}, {"padding": 1}, {"stride": 2, "padding": (1, 0)},
                                       {"dilation": (2, 1), "padding": 2}])
def test_im2col_and_its_matrix_product_are_f_conv2d(arguments):
    x, weight, bias = inputs()
    expected = F.conv2d(x, weight, bias, **arguments)
    assert torch.allclose(conv2d_im2col(x, weight, bias, **arguments), expected,
                          rtol=1e-7, atol=1e-9)


def test_the_column_matrix_is_kh_kw_times_the_input_for_same_size_outputs():
    x, weight, _ = inputs(size=(8, 8), kernel=(3, 5))
    columns = im2col(x, (3, 5), padding=(1, 2))
    assert columns.shape == (2, 3 * 3 * 5, 8 * 8)
    assert columns.numel() == 3 * 5 * x.numel()


@pytest.mark.parametrize("kernel,padding", [((3, 3), 1), ((5, 5), 0), ((1, 1), 0), ((4, 2), 2)])
def test_the_fft_convolution_is_f_conv2d(kernel, padding):
    x, weight, bias = inputs(kernel=kernel)
    expected = F.conv2d(x, weight, bias, padding=padding)
    out = conv2d_fft(x, weight, bias, padding)
    assert out.shape == expected.shape
    assert torch.allclose(out, expected, rtol=1e-7, atol=1e-9)
    x32, w32, b32 = (t.float() for t in (x, weight, bias))
    assert torch.allclose(conv2d_fft(x32, w32, b32, padding),
                          F.conv2d(x32, w32, b32, padding=padding), rtol=1e-4, atol=1e-4)


def test_flops_are_two_per_tap_and_output():
    x, weight, _ = inputs(n=2, c_in=6, size=(9, 8), c_out=4, kernel=(3, 3))
    weight = weight[:, :3]  # groups=2: each filter sees 3 of the 6 channels
    out = F.conv2d(x, weight, stride=2, padding=1, groups=2)
    n, c_out, h_out, w_out = out.shape
    assert conv2d_flops(out.shape, weight.shape) == 2 * n * c_out * h_out * w_out * (6 // 2) * 3 * 3


def test_intensity_counts_each_tensor_once():
    a, b = torch.zeros(10), torch.zeros(5, dtype=torch.float64)
    assert arithmetic_intensity(120.0, a, b) == 120.0 / (10 * 4 + 5 * 8)


def test_mantissa_rounding_keeps_the_chosen_bits_and_rounds_to_nearest_even():
    one = torch.tensor([1.0])
    step = 2.0 ** -10  # TF32's spacing just above 1
    values = torch.tensor([1 + step, 1 + step / 2, 1 + 3 * step / 2, 1 + step / 4, -1 - step / 4,
                           2 ** -20, 3.0])
    expected = torch.tensor([1 + step, 1.0, 1 + 2 * step, 1.0, -1.0, 2 ** -20, 3.0])
    assert torch.equal(round_to_mantissa(values), expected)
    assert torch.equal(round_to_mantissa(one, bits=23), one)
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(0))
    relative = ((round_to_mantissa(x) - x).abs() / x.abs()).max()
    assert 2 ** -12 < relative <= 2 ** -11  # half a unit in the 10th bit
    with pytest.raises(ValueError, match="float32"):
        round_to_mantissa(x.double())


def test_the_machine_measurements_are_positive_and_finite():
    assert math.isfinite(matmul_peak(64, repeats=2)) and matmul_peak(64, repeats=2) > 0
    assert math.isfinite(copy_bandwidth(1, repeats=2)) and copy_bandwidth(1, repeats=2) > 0


def test_figures_are_closed_figures():
    fig = roofline_figure({"a": (1.0, 1e9), "b": (30.0, 5e10)}, peak=1e11, bandwidth=1e10)
    assert isinstance(fig, Figure) and len(fig.axes[0].collections) == 2
    fig = sweep_figure([3, 5, 7], {"F.conv2d": [1e-3, 2e-3, 4e-3], "FFT": [3e-3, 3e-3, 3e-3]})
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 2
    import matplotlib.pyplot as plt
    assert not plt.get_fignums()


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN in this build")
def test_onednn_logs_the_last_run_of_a_convolution():
    calls = onednn_primitives("F.conv2d(torch.randn(2, 16, 8, 8), torch.randn(16, 16, 3, 3))")
    convolutions = [c for c in calls if c["kind"] == "convolution"]
    assert len(convolutions) == 1, calls  # the last run's primitives only
    assert convolutions[0]["algorithm"].startswith("convolution_")
    assert "ic16oc16" in convolutions[0]["problem"] and convolutions[0]["ms"] >= 0
    assert onednn_primitives("torch.ones(3) + 1") == []  # no oneDNN primitive at all


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN in this build")
@pytest.mark.parametrize(("shapes", "padding"), [
    (((1, 3, 32, 32), (8, 3, 3, 3)), 1),     # the tiny layer: PyTorch's own im2col
    (((2, 16, 8, 8), (16, 16, 3, 3)), 0),    # a batch: oneDNN
])
def test_the_backend_named_is_the_one_that_runs(shapes, padding):
    x_shape, w_shape = shapes
    named = conv_backend(torch.randn(x_shape), torch.randn(w_shape), padding=padding)
    logged = onednn_primitives(f"F.conv2d(torch.randn{x_shape}, torch.randn{w_shape}, "
                               f"padding={padding})")
    ran_onednn = any(call["kind"] == "convolution" for call in logged)
    assert named in ("Mkldnn", "Slow2d") and ran_onednn == (named == "Mkldnn"), (named, logged)
    double = conv_backend(torch.randn(x_shape, dtype=torch.float64),
                          torch.randn(w_shape, dtype=torch.float64), padding=padding)
    assert double == "Slow2d"  # oneDNN takes no float64 convolution
