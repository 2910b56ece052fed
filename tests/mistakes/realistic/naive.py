"""Wrong conv2d_naive functions written from scratch, loops and all, the way learners write
them: each is a whole function with one misunderstanding in it (its entry in __init__.py says
which). Not edits of a solution: the styles differ as learners' do."""

import math

import numpy as np


def same_split_evenly(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    n, c_in, h, w = x.shape
    c_out, cg, kh, kw = weight.shape
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "valid":
        ph, pw = 0, 0
    elif padding == "same":
        ph, pw = dh * (kh - 1) // 2, dw * (kw - 1) // 2  # the same on both sides
    else:
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)
    per_group = c_out // groups
    for b in range(n):
        for o in range(c_out):
            g = o // per_group
            for i in range(h_out):
                for j in range(w_out):
                    total = 0.0
                    for c in range(cg):
                        for u in range(kh):
                            for v in range(kw):
                                total += (weight[o, c, u, v]
                                          * xp[b, g * cg + c, i * sh + u * dh, j * sw + v * dw])
                    out[b, o, i, j] = total
            if bias is not None:
                out[b, o] += bias[o]
    return out[0] if unbatched else out


def stride_on_taps(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    single = x.ndim == 3
    xb = x[np.newaxis] if single else x
    N, C, H, W = xb.shape
    F, Cg, KH, KW = weight.shape
    s = (stride, stride) if isinstance(stride, int) else tuple(stride)
    d = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
    if padding == "same":
        tot = (d[0] * (KH - 1), d[1] * (KW - 1))
        pad = ((tot[0] // 2, tot[0] - tot[0] // 2), (tot[1] // 2, tot[1] - tot[1] // 2))
    elif padding == "valid":
        pad = ((0, 0), (0, 0))
    else:
        p = (padding, padding) if isinstance(padding, int) else tuple(padding)
        pad = ((p[0], p[0]), (p[1], p[1]))
    xp = np.pad(xb, ((0, 0), (0, 0)) + pad)
    HO = (xp.shape[2] - d[0] * (KH - 1) - 1) // s[0] + 1
    WO = (xp.shape[3] - d[1] * (KW - 1) - 1) // s[1] + 1
    out = np.zeros((N, F, HO, WO), dtype=x.dtype)
    fpg = F // groups
    for nn_ in range(N):
        for f in range(F):
            first = (f // fpg) * Cg
            for r in range(HO):
                for q in range(WO):
                    acc = 0.0
                    for c in range(Cg):
                        for a in range(KH):
                            for b in range(KW):
                                # the step between taps: stride times dilation
                                acc += xp[nn_, first + c, r + a * s[0] * d[0],
                                          q + b * s[1] * d[1]] * weight[f, c, a, b]
                    out[nn_, f, r, q] = acc + (0 if bias is None else bias[f])
    return out[0] if single else out


def dilation_on_window_start(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    n, c_in, h, w = x.shape
    c_out, cg, kh, kw = weight.shape
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "valid":
        pads = (0, 0, 0, 0)
    elif padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    else:
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        pads = (ph, ph, pw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))
    h_out = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    w_out = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)
    per = c_out // groups
    for b in range(n):
        for o in range(c_out):
            ch = (o // per) * cg
            for i in range(h_out):
                for j in range(w_out):
                    top, left = i * sh * dh, j * sw * dw  # dilation moves the window
                    patch = xp[b, ch:ch + cg, top:top + kh, left:left + kw]
                    if patch.shape[1:] != (kh, kw):
                        continue  # the window ran off the input
                    out[b, o, i, j] = np.sum(patch * weight[o])
            if bias is not None:
                out[b, o] += bias[o]
    return out[0] if unbatched else out


def float32_accumulator(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    n, c_in, h, w = x.shape
    c_out, cg, kh, kw = weight.shape
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "valid":
        pads = ((0, 0), (0, 0))
    elif padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    else:
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        pads = ((ph, ph), (pw, pw))
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    h_out = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    w_out = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, c_out, h_out, w_out), dtype=np.float32)  # float32 saves memory
    per = c_out // groups
    for b in range(n):
        for o in range(c_out):
            g = o // per
            for i in range(h_out):
                for j in range(w_out):
                    rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
                    cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
                    window = xp[b, g * cg:(g + 1) * cg, rows, cols].astype(np.float32)
                    out[b, o, i, j] = np.sum(window * weight[o].astype(np.float32))
                    if bias is not None:
                        out[b, o, i, j] += np.float32(bias[o])
    out = out.astype(x.dtype)
    return out[0] if unbatched else out


def _pads(padding, kh, kw, dh, dw):
    """(top, bottom, left, right) for conv2d_naive's padding argument."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return ph, ph, pw, pw


def flipped_kernel(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if x.ndim == 3:
        return flipped_kernel(x[None], weight, bias, stride, padding, dilation, groups)[0]
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    top, bottom, left, right = _pads(padding, kh, kw, dh, dw)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    h_out, w_out = _sizes(xp, (kh, kw), (sh, sw), (dh, dw))
    out = np.zeros((x.shape[0], c_out, h_out, w_out), dtype=x.dtype)
    kernel = weight[:, :, ::-1, ::-1]  # a convolution flips its kernel
    per = c_out // groups
    for b in range(x.shape[0]):
        for o in range(c_out):
            start = (o // per) * cg
            for i in range(h_out):
                for j in range(w_out):
                    for u in range(kh):
                        for v in range(kw):
                            column = xp[b, start:start + cg, i * sh + u * dh, j * sw + v * dw]
                            out[b, o, i, j] += column @ kernel[o, :, u, v]
            if bias is not None:
                out[b, o] += bias[o]
    return out


def bias_forgotten(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    squeeze = x.ndim == 3
    if squeeze:
        x = np.expand_dims(x, 0)
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    top, bottom, left, right = _pads(padding, kh, kw, dh, dw)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    h_out, w_out = _sizes(xp, (kh, kw), (sh, sw), (dh, dw))
    out = np.zeros((x.shape[0], c_out, h_out, w_out), dtype=x.dtype)
    for b in range(x.shape[0]):
        for o in range(c_out):
            g = o // (c_out // groups)
            for i in range(h_out):
                for j in range(w_out):
                    window = xp[b, g * cg:(g + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                                j * sw:j * sw + dw * (kw - 1) + 1:dw]
                    out[b, o, i, j] = (window * weight[o]).sum()
    return out[0] if squeeze else out


def groups_from_channel_zero(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    xb = x[None] if x.ndim == 3 else x
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    top, bottom, left, right = _pads(padding, kh, kw, dh, dw)
    xp = np.pad(xb, ((0, 0), (0, 0), (top, bottom), (left, right)))
    h_out, w_out = _sizes(xp, (kh, kw), (sh, sw), (dh, dw))
    out = np.zeros((xb.shape[0], c_out, h_out, w_out), dtype=x.dtype)
    for b in range(xb.shape[0]):
        for o in range(c_out):
            for i in range(h_out):
                for j in range(w_out):
                    for c in range(cg):  # weight.shape[1] input channels
                        for u in range(kh):
                            for v in range(kw):
                                out[b, o, i, j] += (xp[b, c, i * sh + u * dh, j * sw + v * dw]
                                                    * weight[o, c, u, v])
            if bias is not None:
                out[b, o] += bias[o]
    return out[0] if x.ndim == 3 else out


def groups_round_robin(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    xb = x[None] if x.ndim == 3 else x
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    top, bottom, left, right = _pads(padding, kh, kw, dh, dw)
    xp = np.pad(xb, ((0, 0), (0, 0), (top, bottom), (left, right)))
    h_out, w_out = _sizes(xp, (kh, kw), (sh, sw), (dh, dw))
    out = np.zeros((xb.shape[0], c_out, h_out, w_out), dtype=x.dtype)
    for o in range(c_out):
        g = o % groups  # deal the filters out to the groups in turn
        for i in range(h_out):
            for j in range(w_out):
                window = xp[:, g * cg:(g + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                            j * sw:j * sw + dw * (kw - 1) + 1:dw]
                out[:, o, i, j] = np.tensordot(window, weight[o], axes=3)
        if bias is not None:
            out[:, o] += bias[o]
    return out[0] if x.ndim == 3 else out


def _two(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _sizes(xp, kernel, steps, taps):
    """(H_out, W_out) of the padded ``xp``: nn.Conv2d's formula."""
    return tuple((xp.shape[2 + a] - taps[a] * (kernel[a] - 1) - 1) // steps[a] + 1
                 for a in (0, 1))


def _slide(xp, weight, bias, steps, taps, size, groups, dtype):
    """The loops of the entries below (their mistakes are elsewhere): output (i, j) of channel
    o from the window of the padded ``xp`` at (i*sH, j*sW), taps (dH, dW) apart."""
    (sh, sw), (dh, dw), (h_out, w_out) = steps, taps, size
    c_out, cg, kh, kw = weight.shape
    out = np.zeros((xp.shape[0], c_out, h_out, w_out), dtype=dtype)
    per = c_out // groups
    for o in range(c_out):
        g = o // per
        for i in range(h_out):
            for j in range(w_out):
                window = xp[:, g * cg:(g + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                            j * sw:j * sw + dw * (kw - 1) + 1:dw]
                out[:, o, i, j] = np.tensordot(window, weight[o], axes=3)
        if bias is not None:
            out[:, o] += bias[o]
    return out


def never_pads(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    xb = x[None] if x.ndim == 3 else x
    kh, kw = weight.shape[2:]
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    size = _sizes(xb, (kh, kw), (sh, sw), (dh, dw))
    out = _slide(xb, weight, bias, (sh, sw), (dh, dw), size, groups, x.dtype)
    return out[0] if x.ndim == 3 else out


def same_extra_first(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    xb = x[None] if x.ndim == 3 else x
    kh, kw = weight.shape[2:]
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    if padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        top, bottom = math.ceil(th / 2), th // 2  # the odd one first
        left, right = math.ceil(tw / 2), tw // 2
    else:
        top, bottom, left, right = _pads(padding, kh, kw, dh, dw)
    xp = np.pad(xb, ((0, 0), (0, 0), (top, bottom), (left, right)))
    size = _sizes(xp, (kh, kw), (sh, sw), (dh, dw))
    out = _slide(xp, weight, bias, (sh, sw), (dh, dw), size, groups, x.dtype)
    return out[0] if x.ndim == 3 else out


def no_plus_one(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    xb = x[None] if x.ndim == 3 else x
    kh, kw = weight.shape[2:]
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    top, bottom, left, right = _pads(padding, kh, kw, dh, dw)
    xp = np.pad(xb, ((0, 0), (0, 0), (top, bottom), (left, right)))
    h_out = (xp.shape[2] - dh * (kh - 1)) // sh  # windows that fit
    w_out = (xp.shape[3] - dw * (kw - 1)) // sw
    out = _slide(xp, weight, bias, (sh, sw), (dh, dw), (h_out, w_out), groups, x.dtype)
    return out[0] if x.ndim == 3 else out


def dilation_forgotten(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    xb = x[None] if x.ndim == 3 else x
    kh, kw = weight.shape[2:]
    sh, sw = _two(stride)
    top, bottom, left, right = _pads(padding, kh, kw, 1, 1)
    xp = np.pad(xb, ((0, 0), (0, 0), (top, bottom), (left, right)))
    size = ((xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1)
    out = _slide(xp, weight, bias, (sh, sw), (1, 1), size, groups, x.dtype)
    return out[0] if x.ndim == 3 else out


def bias_in_channel_loop(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    xb = x[None] if x.ndim == 3 else x
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    top, bottom, left, right = _pads(padding, kh, kw, dh, dw)
    xp = np.pad(xb, ((0, 0), (0, 0), (top, bottom), (left, right)))
    h_out, w_out = _sizes(xp, (kh, kw), (sh, sw), (dh, dw))
    out = np.zeros((xb.shape[0], c_out, h_out, w_out), dtype=x.dtype)
    per = c_out // groups
    for o in range(c_out):
        g = o // per
        for c in range(cg):
            for i in range(h_out):
                for j in range(w_out):
                    window = xp[:, g * cg + c, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                                j * sw:j * sw + dw * (kw - 1) + 1:dw]
                    out[:, o, i, j] += np.tensordot(window, weight[o, c], axes=2)
            if bias is not None:
                out[:, o] += bias[o]  # inside the loop over input channels
    return out[0] if x.ndim == 3 else out


def batch_axis_stays(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if x.ndim == 3:
        x = x[None]  # a batch of one, to loop the same way
    kh, kw = weight.shape[2:]
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    top, bottom, left, right = _pads(padding, kh, kw, dh, dw)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    size = _sizes(xp, (kh, kw), (sh, sw), (dh, dw))
    return _slide(xp, weight, bias, (sh, sw), (dh, dw), size, groups, x.dtype)


def stride_read_width_first(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    xb = x[None] if x.ndim == 3 else x
    kh, kw = weight.shape[2:]
    sw, sh = _two(stride)  # (x, y) as in images
    dh, dw = _two(dilation)
    top, bottom, left, right = _pads(padding, kh, kw, dh, dw)
    xp = np.pad(xb, ((0, 0), (0, 0), (top, bottom), (left, right)))
    size = _sizes(xp, (kh, kw), (sh, sw), (dh, dw))
    out = _slide(xp, weight, bias, (sh, sw), (dh, dw), size, groups, x.dtype)
    return out[0] if x.ndim == 3 else out


def float64_output(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    xb = x[None] if x.ndim == 3 else x
    kh, kw = weight.shape[2:]
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    top, bottom, left, right = _pads(padding, kh, kw, dh, dw)
    xp = np.pad(xb, ((0, 0), (0, 0), (top, bottom), (left, right)))
    size = _sizes(xp, (kh, kw), (sh, sw), (dh, dw))
    out = _slide(xp, weight, bias, (sh, sw), (dh, dw), size, groups, float)  # float64
    return out[0] if x.ndim == 3 else out


def dilation_as_gaps(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    xb = x[None] if x.ndim == 3 else x
    kh, kw = weight.shape[2:]
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    gh, gw = dh + 1, dw + 1  # dilation = the gap between taps, so taps sit d + 1 apart
    top, bottom, left, right = _pads(padding, kh, kw, dh, dw)
    xp = np.pad(xb, ((0, 0), (0, 0), (top, bottom), (left, right)))
    size = _sizes(xp, (kh, kw), (sh, sw), (gh, gw))
    out = _slide(xp, weight, bias, (sh, sw), (gh, gw), size, groups, x.dtype)
    return out[0] if x.ndim == 3 else out
