"""The control of the corpus of mistakes: a correct, vectorised conv2d_numpy in NumPy.

tests/mistakes/corpus.py derives every mistake from this file with a small edit.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NP_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
                "circular": "wrap"}


def _pair(value, name, smallest):
    """An int or a pair of ints as (height, width); ValueError below ``smallest``."""
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) != 2 or any(not isinstance(v, int) or v < smallest for v in values):
        raise ValueError(f"{name} must be an int or a pair of ints of at least {smallest}, "
                         f"got {value!r}")
    return values


def conv2d_numpy(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros"):
    """nn.Conv2d's output for x (N, C_in, H, W) or (C_in, H, W), in NumPy."""
    if x.ndim not in (3, 4) or weight.ndim != 4:
        raise ValueError(f"x must be (N, C_in, H, W) or (C_in, H, W) and weight "
                         f"(C_out, C_in/groups, kH, kW), got {x.shape} and {weight.shape}")
    unbatched = x.ndim == 3
    if unbatched:
        x = x[np.newaxis]
    n, c_in, h, w = x.shape
    c_out, c_group, k_h, k_w = weight.shape
    if not isinstance(groups, int) or groups < 1 or c_out % groups or c_group * groups != c_in:
        raise ValueError(f"groups={groups!r} does not fit x's {c_in} input channels and "
                         f"weight {weight.shape}")
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {bias.shape}")
    if padding_mode not in NP_PAD_MODES:
        raise ValueError(f"unknown padding_mode {padding_mode!r}")
    (s_h, s_w), (d_h, d_w) = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)

    # Pad: `padding` on each side; 'same' pads d*(k-1) in total, the odd extra after.
    if padding == "valid":
        pads = [(0, 0), (0, 0)]
    elif padding == "same":
        if (s_h, s_w) != (1, 1):
            raise ValueError("padding='same' needs stride 1")
        totals = (d_h * (k_h - 1), d_w * (k_w - 1))
        pads = [(t // 2, t - t // 2) for t in totals]
    elif isinstance(padding, str):
        raise ValueError(f"padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    else:
        pads = [(p, p) for p in _pair(padding, "padding", 0)]
    widest = [max(pads[0]), max(pads[1])]
    if (padding_mode == "reflect" and (widest[0] >= h or widest[1] >= w)
            or padding_mode == "circular" and (widest[0] > h or widest[1] > w)):
        raise ValueError(f"padding {pads} is too wide for {padding_mode} padding of {h}x{w}")
    x = np.pad(x, [(0, 0), (0, 0), *pads], mode=NP_PAD_MODES[padding_mode])

    # Every window as a view: (N, C_in, H_out, W_out, kH, kW), taps dilation apart.
    spans = (d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1)
    if spans[0] > x.shape[2] or spans[1] > x.shape[3]:
        raise ValueError(f"the kernel spans {spans}, more than the padded input {x.shape[2:]}")
    windows = sliding_window_view(x, spans, axis=(2, 3))[:, :, ::s_h, ::s_w, ::d_h, ::d_w]
    h_out, w_out = windows.shape[2:4]

    # Each group: its own input channels, its own block of output channels.
    out = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)
    per_group = c_out // groups
    for g in range(groups):
        group_windows = windows[:, g * c_group:(g + 1) * c_group]
        group_weight = weight[g * per_group:(g + 1) * per_group]
        out[:, g * per_group:(g + 1) * per_group] = np.einsum(
            "nchwij,ocij->nohw", group_windows, group_weight, optimize=True)
    if bias is not None:
        out += bias[:, np.newaxis, np.newaxis]
    return out[0] if unbatched else out
