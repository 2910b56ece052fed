"""Wrong conv2d_backward functions written from scratch (vectorised over images and
positions, a loop over the kernel's taps and the groups), the way learners write them: each
is a whole function with one misunderstanding in it (its entry in __init__.py says which)."""

import numpy as np


def _two(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _pads(padding, kh, kw, dh, dw):
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        return (th // 2, th - th // 2), (tw // 2, tw - tw // 2)
    ph, pw = _two(padding)
    return (ph, ph), (pw, pw)


def _begin(grad_out, x, weight, stride, padding, dilation):
    """Batched arrays, the steps, the padded x and its padding."""
    unbatched = x.ndim == 3
    if unbatched:
        x, grad_out = x[None], grad_out[None]
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    rows, cols = _pads(padding, kh, kw, dh, dw)
    xp = np.pad(x, ((0, 0), (0, 0), rows, cols))
    h_out = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    w_out = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    if grad_out.shape != (x.shape[0], c_out, h_out, w_out):
        raise ValueError(f"grad_out has shape {grad_out.shape}, expected "
                         f"{(x.shape[0], c_out, h_out, w_out)}")
    return unbatched, x, grad_out, xp, rows, cols


def _each_tap(grad_out, weight, groups, steps, taps):
    """For every group and kernel tap (u, v): the group's output and input channels, its
    grad_out, u, v, and the rows and columns of the padded x that the tap read."""
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = steps, taps
    h_out, w_out = grad_out.shape[2:]
    per = c_out // groups
    for g in range(groups):
        outs, ins = slice(g * per, (g + 1) * per), slice(g * cg, (g + 1) * cg)
        for u in range(kh):
            for v in range(kw):
                yield (outs, ins, grad_out[:, outs], u, v,
                       slice(u * dh, u * dh + sh * (h_out - 1) + 1, sh),
                       slice(v * dw, v * dw + sw * (w_out - 1) + 1, sw))


def _finish(grad_padded, grad_weight, grad_out, x, rows, cols, bias, unbatched):
    """grad_x cropped out of the padded input's gradient, grad_bias, the batch axis off."""
    grad_x = grad_padded[:, :, rows[0]:rows[0] + x.shape[2], cols[0]:cols[0] + x.shape[3]]
    grad_bias = grad_out.sum(axis=(0, 2, 3)) if bias else None
    return (grad_x[0] if unbatched else grad_x), grad_weight, grad_bias


def grad_x_kernel_flipped(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1,
                          bias=True):
    unbatched, x, grad_out, xp, rows, cols = _begin(grad_out, x, weight, stride, padding,
                                                    dilation)
    gxp, gw = np.zeros_like(xp), np.zeros_like(weight)
    flipped = weight[:, :, ::-1, ::-1]  # the gradient of a correlation is a convolution
    for outs, ins, go, u, v, r, c in _each_tap(grad_out, weight, groups, _two(stride),
                                               _two(dilation)):
        gw[outs, :, u, v] = np.einsum("nohw,nchw->oc", go, xp[:, ins, r, c])
        gxp[:, ins, r, c] += np.einsum("nohw,oc->nchw", go, flipped[outs, :, u, v])
    return _finish(gxp, gw, grad_out, x, rows, cols, bias, unbatched)


def correlate_without_flip(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1,
                           bias=True):
    """grad_x by the spread -> pad -> correlate method, with the kernel left unflipped."""
    unbatched, x, grad_out, xp, rows, cols = _begin(grad_out, x, weight, stride, padding,
                                                    dilation)
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    n, _, h_out, w_out = grad_out.shape
    spread = np.zeros((n, c_out, sh * (h_out - 1) + 1, sw * (w_out - 1) + 1), dtype=x.dtype)
    spread[:, :, ::sh, ::sw] = grad_out
    eh, ew = dh * (kh - 1), dw * (kw - 1)
    extra = (xp.shape[2] - eh - spread.shape[2], xp.shape[3] - ew - spread.shape[3])
    full = np.pad(spread, ((0, 0), (0, 0), (eh, eh + extra[0]), (ew, ew + extra[1])))
    gxp, gw = np.zeros_like(xp), np.zeros_like(weight)
    for outs, ins, go, u, v, r, c in _each_tap(grad_out, weight, groups, (sh, sw), (dh, dw)):
        gw[outs, :, u, v] = np.einsum("nohw,nchw->oc", go, xp[:, ins, r, c])
        # correlate the padded, spread grad_out with the kernel as it is
        part = full[:, outs, u * dh:u * dh + xp.shape[2], v * dw:v * dw + xp.shape[3]]
        gxp[:, ins] += np.einsum("nohw,oc->nchw", part, weight[outs, :, u, v])
    return _finish(gxp, gw, grad_out, x, rows, cols, bias, unbatched)


def scatter_without_stride(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1,
                           bias=True):
    unbatched, x, grad_out, xp, rows, cols = _begin(grad_out, x, weight, stride, padding,
                                                    dilation)
    (dh, dw), (h_out, w_out) = _two(dilation), grad_out.shape[2:]
    gxp, gw = np.zeros_like(xp), np.zeros_like(weight)
    for outs, ins, go, u, v, r, c in _each_tap(grad_out, weight, groups, _two(stride),
                                               (dh, dw)):
        gw[outs, :, u, v] = np.einsum("nohw,nchw->oc", go, xp[:, ins, r, c])
        # grad_out lands on the block of input rows each tap starts at
        gxp[:, ins, u * dh:u * dh + h_out, v * dw:v * dw + w_out] += np.einsum(
            "nohw,oc->nchw", go, weight[outs, :, u, v])
    return _finish(gxp, gw, grad_out, x, rows, cols, bias, unbatched)


def bias_per_image(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1, bias=True):
    unbatched, x, grad_out, xp, rows, cols = _begin(grad_out, x, weight, stride, padding,
                                                    dilation)
    gxp, gw = np.zeros_like(xp), np.zeros_like(weight)
    for outs, ins, go, u, v, r, c in _each_tap(grad_out, weight, groups, _two(stride),
                                               _two(dilation)):
        gw[outs, :, u, v] = np.einsum("nohw,nchw->oc", go, xp[:, ins, r, c])
        gxp[:, ins, r, c] += np.einsum("nohw,oc->nchw", go, weight[outs, :, u, v])
    grad_x, grad_weight, _ = _finish(gxp, gw, grad_out, x, rows, cols, False, unbatched)
    gb = grad_out.sum(axis=(2, 3)) if bias else None  # one sum per channel
    return grad_x, grad_weight, (gb[0] if bias and unbatched else gb)


def grad_weight_no_dilation(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1,
                            bias=True):
    unbatched, x, grad_out, xp, rows, cols = _begin(grad_out, x, weight, stride, padding,
                                                    dilation)
    (sh, sw), (h_out, w_out) = _two(stride), grad_out.shape[2:]
    gxp, gw = np.zeros_like(xp), np.zeros_like(weight)
    for outs, ins, go, u, v, r, c in _each_tap(grad_out, weight, groups, (sh, sw),
                                               _two(dilation)):
        # the windows x meets: stride apart, taps next to each other
        r_w = slice(u, u + sh * (h_out - 1) + 1, sh)
        c_w = slice(v, v + sw * (w_out - 1) + 1, sw)
        gw[outs, :, u, v] = np.einsum("nohw,nchw->oc", go, xp[:, ins, r_w, c_w])
        gxp[:, ins, r, c] += np.einsum("nohw,oc->nchw", go, weight[outs, :, u, v])
    return _finish(gxp, gw, grad_out, x, rows, cols, bias, unbatched)


def float32_gradients(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1,
                      bias=True):
    unbatched, x, grad_out, xp, rows, cols = _begin(grad_out, x, weight, stride, padding,
                                                    dilation)
    go32, xp32, w32 = (a.astype(np.float32) for a in (grad_out, xp, weight))  # faster
    gxp, gw = np.zeros_like(xp32), np.zeros_like(w32)
    for outs, ins, go, u, v, r, c in _each_tap(go32, weight, groups, _two(stride),
                                               _two(dilation)):
        gw[outs, :, u, v] = np.einsum("nohw,nchw->oc", go, xp32[:, ins, r, c])
        gxp[:, ins, r, c] += np.einsum("nohw,oc->nchw", go, w32[outs, :, u, v])
    grad_x, grad_weight, grad_bias = _finish(gxp, gw, grad_out, x, rows, cols, bias, unbatched)
    return grad_x.astype(x.dtype), grad_weight.astype(x.dtype), grad_bias


def grad_weight_windows_adjacent(grad_out, x, weight, stride=1, padding=0, dilation=1,
                                 groups=1, bias=True):
    unbatched, x, grad_out, xp, rows, cols = _begin(grad_out, x, weight, stride, padding,
                                                    dilation)
    (dh, dw), (h_out, w_out) = _two(dilation), grad_out.shape[2:]
    gxp, gw = np.zeros_like(xp), np.zeros_like(weight)
    for outs, ins, go, u, v, r, c in _each_tap(grad_out, weight, groups, _two(stride),
                                               (dh, dw)):
        # grad_weight = x correlated with grad_out: a block of grad_out's size
        block = xp[:, ins, u * dh:u * dh + h_out, v * dw:v * dw + w_out]
        gw[outs, :, u, v] = np.einsum("nohw,nchw->oc", go, block)
        gxp[:, ins, r, c] += np.einsum("nohw,oc->nchw", go, weight[outs, :, u, v])
    return _finish(gxp, gw, grad_out, x, rows, cols, bias, unbatched)
