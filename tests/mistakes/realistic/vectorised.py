"""Wrong conv2d_numpy functions written from scratch, vectorised with sliding_window_view or
im2col, the way learners write them: each is a whole function with one misunderstanding in
it (its entry in __init__.py says which)."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _two(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def same_split_evenly(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                      padding_mode="zeros"):
    squeeze = x.ndim == 3
    if squeeze:
        x = x[None]
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    if padding == "same":
        ph, pw = dh * (kh - 1) // 2, dw * (kw - 1) // 2
    elif padding == "valid":
        ph = pw = 0
    else:
        ph, pw = _two(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode=MODES[padding_mode])
    win = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]
    per = c_out // groups
    out = np.concatenate([np.einsum("nchwij,ocij->nohw", win[:, g * cg:(g + 1) * cg],
                                    weight[g * per:(g + 1) * per]) for g in range(groups)], 1)
    if bias is not None:
        out = out + bias[:, None, None]
    return out[0] if squeeze else out


def float32_einsum(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                   padding_mode="zeros"):
    squeeze = x.ndim == 3
    if squeeze:
        x = x[None]
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    if padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    elif padding == "valid":
        pads = ((0, 0), (0, 0))
    else:
        pads = tuple((p, p) for p in _two(padding))
    xp = np.pad(x, ((0, 0), (0, 0)) + pads, mode=MODES[padding_mode]).astype(np.float32)
    w32 = weight.astype(np.float32)  # float32 is faster
    win = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]
    per = c_out // groups
    out = np.concatenate([np.einsum("nchwij,ocij->nohw", win[:, g * cg:(g + 1) * cg],
                                    w32[g * per:(g + 1) * per]) for g in range(groups)], 1)
    if bias is not None:
        out = out + bias.astype(np.float32)[:, None, None]
    out = out.astype(x.dtype)
    return out[0] if squeeze else out


def _padded(x, padding, kh, kw, dh, dw, mode):
    """x padded as conv2d's padding says, in np.pad's ``mode``."""
    if padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    elif padding == "valid":
        pads = ((0, 0), (0, 0))
    else:
        pads = tuple((p, p) for p in _two(padding))
    return np.pad(x, ((0, 0), (0, 0)) + pads, mode=mode)


def _windows(xp, kernel, steps, taps):
    """Every window of the padded ``xp``: (N, C, H_out, W_out, kH, kW), taps ``taps`` apart."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, steps, taps
    spans = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    return sliding_window_view(xp, spans, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]


def _by_groups(windows, weight, groups):
    """Each group's windows with its own filters, the groups side by side."""
    c_out, cg = weight.shape[:2]
    per = c_out // groups
    return np.concatenate([np.einsum("nchwij,ocij->nohw", windows[:, g * cg:(g + 1) * cg],
                                     weight[g * per:(g + 1) * per], optimize=True)
                           for g in range(groups)], axis=1)


def _biased(out, bias):
    return out if bias is None else out + bias.reshape(-1, 1, 1)


def kernel_flipped(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                   padding_mode="zeros"):
    if x.ndim == 3:
        return kernel_flipped(x[None], weight, bias, stride, padding, dilation, groups,
                              padding_mode)[0]
    kernel, steps, taps = weight.shape[2:], _two(stride), _two(dilation)
    xp = _padded(x, padding, *kernel, *taps, MODES[padding_mode])
    flipped = np.flip(weight, axis=(2, 3))  # convolution = flip, then slide
    return _biased(_by_groups(_windows(xp, kernel, steps, taps), flipped, groups), bias)


def groups_share_first_channels(x, weight, bias=None, stride=1, padding=0, dilation=1,
                                groups=1, padding_mode="zeros"):
    if x.ndim == 3:
        return groups_share_first_channels(x[None], weight, bias, stride, padding, dilation,
                                           groups, padding_mode)[0]
    kernel, steps, taps = weight.shape[2:], _two(stride), _two(dilation)
    xp = _padded(x, padding, *kernel, *taps, MODES[padding_mode])
    windows = _windows(xp[:, :weight.shape[1]], kernel, steps, taps)  # the weight's channels
    return _biased(np.einsum("nchwij,ocij->nohw", windows, weight, optimize=True), bias)


def stride_dilation_swapped(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                            padding_mode="zeros"):
    if x.ndim == 3:
        return stride_dilation_swapped(x[None], weight, bias, stride, padding, dilation, groups,
                                       padding_mode)[0]
    kernel, steps, taps = weight.shape[2:], _two(dilation), _two(stride)  # the wrong order
    xp = _padded(x, padding, *kernel, *_two(dilation), MODES[padding_mode])
    return _biased(_by_groups(_windows(xp, kernel, steps, taps), weight, groups), bias)


def reflect_as_symmetric(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                         padding_mode="zeros"):
    if x.ndim == 3:
        return reflect_as_symmetric(x[None], weight, bias, stride, padding, dilation, groups,
                                    padding_mode)[0]
    modes = {"zeros": "constant", "reflect": "symmetric", "replicate": "edge",
             "circular": "wrap"}
    kernel, steps, taps = weight.shape[2:], _two(stride), _two(dilation)
    xp = _padded(x, padding, *kernel, *taps, modes[padding_mode])
    return _biased(_by_groups(_windows(xp, kernel, steps, taps), weight, groups), bias)


def zeros_whatever_the_mode(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                            padding_mode="zeros"):
    if x.ndim == 3:
        return zeros_whatever_the_mode(x[None], weight, bias, stride, padding, dilation, groups,
                                       padding_mode)[0]
    kernel, steps, taps = weight.shape[2:], _two(stride), _two(dilation)
    xp = _padded(x, padding, *kernel, *taps, "constant")
    return _biased(_by_groups(_windows(xp, kernel, steps, taps), weight, groups), bias)


def im2col_channels_last(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                         padding_mode="zeros"):
    if x.ndim == 3:
        return im2col_channels_last(x[None], weight, bias, stride, padding, dilation, groups,
                                    padding_mode)[0]
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    xp = _padded(x, padding, kh, kw, dh, dw, MODES[padding_mode])
    win = _windows(xp, (kh, kw), (sh, sw), (dh, dw))  # (N, C, Ho, Wo, kH, kW)
    n, _, h_out, w_out = win.shape[:4]
    per = c_out // groups
    parts = []
    for g in range(groups):
        cols = win[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 4, 5, 1)  # (N, Ho, Wo, kH, kW, C)
        cols = cols.reshape(n, h_out * w_out, -1)
        kernels = weight[g * per:(g + 1) * per].reshape(per, -1)  # (C, kH, kW) order
        parts.append((cols @ kernels.T).transpose(0, 2, 1).reshape(n, per, h_out, w_out))
    return _biased(np.concatenate(parts, axis=1), bias)


def bias_broadcast_last(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                        padding_mode="zeros"):
    if x.ndim == 3:
        return bias_broadcast_last(x[None], weight, bias, stride, padding, dilation, groups,
                                   padding_mode)[0]
    kernel, steps, taps = weight.shape[2:], _two(stride), _two(dilation)
    xp = _padded(x, padding, *kernel, *taps, MODES[padding_mode])
    out = _by_groups(_windows(xp, kernel, steps, taps), weight, groups)
    return out if bias is None else out + bias


def padding_halved(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                   padding_mode="zeros"):
    if x.ndim == 3:
        return padding_halved(x[None], weight, bias, stride, padding, dilation, groups,
                              padding_mode)[0]
    kernel, steps, taps = weight.shape[2:], _two(stride), _two(dilation)
    if isinstance(padding, str):
        xp = _padded(x, padding, *kernel, *taps, MODES[padding_mode])
    else:
        ph, pw = _two(padding)  # the padding, shared out between the two sides
        xp = np.pad(x, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)),
                    mode=MODES[padding_mode])
    return _biased(_by_groups(_windows(xp, kernel, steps, taps), weight, groups), bias)


def window_mean(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                padding_mode="zeros"):
    if x.ndim == 3:
        return window_mean(x[None], weight, bias, stride, padding, dilation, groups,
                           padding_mode)[0]
    c_out, cg = weight.shape[:2]
    kernel, steps, taps = weight.shape[2:], _two(stride), _two(dilation)
    win = _windows(_padded(x, padding, *kernel, *taps, MODES[padding_mode]), kernel, steps, taps)
    per = c_out // groups
    parts = [(win[:, None, g * cg:(g + 1) * cg] * weight[g * per:(g + 1) * per, :, None, None]
              ).mean(axis=(2, 5, 6)) for g in range(groups)]
    return _biased(np.concatenate(parts, axis=1), bias)


def weight_read_in_out(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                       padding_mode="zeros"):
    if x.ndim == 3:
        return weight_read_in_out(x[None], weight, bias, stride, padding, dilation, groups,
                                  padding_mode)[0]
    c_out, cg, kh, kw = weight.shape
    kernel, steps, taps = weight.shape[2:], _two(stride), _two(dilation)
    win = _windows(_padded(x, padding, *kernel, *taps, MODES[padding_mode]), kernel, steps, taps)
    per = c_out // groups
    parts = []
    for g in range(groups):
        w_g = weight[g * per:(g + 1) * per].reshape(cg, per, kh, kw)  # (in, out) as in x @ W
        parts.append(np.einsum("nchwij,coij->nohw", win[:, g * cg:(g + 1) * cg], w_g))
    return _biased(np.concatenate(parts, axis=1), bias)


def dilation_moves_windows(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                           padding_mode="zeros"):
    if x.ndim == 3:
        return dilation_moves_windows(x[None], weight, bias, stride, padding, dilation, groups,
                                      padding_mode)[0]
    kernel, (sh, sw), (dh, dw) = weight.shape[2:], _two(stride), _two(dilation)
    xp = _padded(x, padding, *kernel, dh, dw, MODES[padding_mode])
    windows = _windows(xp, kernel, (sh * dh, sw * dw), (1, 1))  # dilation spreads the windows
    return _biased(_by_groups(windows, weight, groups), bias)
