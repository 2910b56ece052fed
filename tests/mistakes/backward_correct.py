"""The control of the backward corpus: a correct, vectorised conv2d_backward in plain NumPy.

A second correct implementation (the padding by hand, the gradient of the padded input built
in place), kept apart from the solution so that the solution may change without touching the
corpus: each mistake in backward.py is this file with a few lines changed.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def as_pair(value):
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1, bias=True):
    unbatched = x.ndim == 3
    if unbatched:
        x, grad_out = x[None], grad_out[None]
    n, c_in, h, w = x.shape
    c_out, c_group, k_h, k_w = weight.shape
    o_group = c_out // groups
    (s_h, s_w), (d_h, d_w) = as_pair(stride), as_pair(dilation)
    if padding == "same":
        top, left = d_h * (k_h - 1) // 2, d_w * (k_w - 1) // 2
        bottom, right = d_h * (k_h - 1) - top, d_w * (k_w - 1) - left
    elif padding == "valid":
        top = bottom = left = right = 0
    else:
        (top, left) = as_pair(padding)
        bottom, right = top, left
    padded = np.zeros((n, c_in, h + top + bottom, w + left + right), dtype=x.dtype)
    padded[:, :, top:top + h, left:left + w] = x
    h_out = (padded.shape[2] - d_h * (k_h - 1) - 1) // s_h + 1
    w_out = (padded.shape[3] - d_w * (k_w - 1) - 1) // s_w + 1
    if grad_out.shape != (n, c_out, h_out, w_out):
        raise ValueError(f"grad_out should have shape {(n, c_out, h_out, w_out)}")
    span = (d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1)
    windows = sliding_window_view(padded, span, axis=(2, 3))[:, :, ::s_h, ::s_w, ::d_h, ::d_w]
    grad_weight = np.zeros_like(weight)
    grad_padded = np.zeros(padded.shape, dtype=x.dtype)
    for g in range(groups):
        ins, outs = slice(g * c_group, (g + 1) * c_group), slice(g * o_group, (g + 1) * o_group)
        grad_weight[outs] = np.einsum("nohw,nchwuv->ocuv", grad_out[:, outs], windows[:, ins],
                                      optimize=True)
        for u in range(k_h):
            for v in range(k_w):
                rows = slice(u * d_h, u * d_h + s_h * (h_out - 1) + 1, s_h)
                cols = slice(v * d_w, v * d_w + s_w * (w_out - 1) + 1, s_w)
                grad_padded[:, ins, rows, cols] += np.einsum(
                    "nohw,oc->nchw", grad_out[:, outs], weight[outs, :, u, v])
    grad_x = grad_padded[:, :, top:top + h, left:left + w]
    grad_bias = grad_out.sum(axis=(0, 2, 3)) if bias else None
    if unbatched:
        grad_x = grad_x[0]
    return grad_x, grad_weight, grad_bias
