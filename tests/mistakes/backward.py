"""The corpus of backward-pass mistakes (assignment 4), each the control with one edit.

``backward_correct.py`` beside this file is the control, a correct ``conv2d_backward``; each
mistake changes a few of its lines (marked ``MISTAKE``), so its :func:`source` is a whole
submission for the conv2d_backward answer cell of notebooks/04-gradients/conv2d-backward.ipynb.
A mistake's ``case`` holds the arguments of ``check_conv2d_backward`` on which it shows.
"""

from __future__ import annotations

from pathlib import Path

from mistakes.corpus import Mistake, edited

CONTROL = Path(__file__).with_name("backward_correct.py")

SCATTER = ('                grad_padded[:, ins, rows, cols] += np.einsum(\n'
           '                    "nohw,oc->nchw", grad_out[:, outs], weight[outs, :, u, v])\n')
ROWS = '                rows = slice(u * d_h, u * d_h + s_h * (h_out - 1) + 1, s_h)\n'
COLS = '                cols = slice(v * d_w, v * d_w + s_w * (w_out - 1) + 1, s_w)\n'
STRIDED = dict(x_shape=(1, 2, 8, 9), weight_shape=(3, 2, 3, 3), stride=2, padding=1)

MISTAKES = {
    "correct": Mistake(
        what="The control: a correct conv2d_backward.",
        feedback=None,
        case=dict(x_shape=(2, 4, 7, 6), weight_shape=(6, 2, 3, 2), stride=(2, 1), padding=1,
                  dilation=(1, 2), groups=2),
    ),
    "kernel_flipped": Mistake(
        what="Flips the kernel for grad_x, as a textbook convolution's gradient would.",
        feedback="kernel flipped the wrong way round",
        case=dict(x_shape=(1, 2, 6, 6), weight_shape=(3, 2, 3, 3), padding=1),
        edits=((SCATTER, SCATTER.replace("weight[outs, :, u, v]",
                                         "weight[outs, :, k_h - 1 - u, k_w - 1 - v]")
                + "                # MISTAKE: the kernel flipped\n"),),
    ),
    "stride_not_spread": Mistake(
        what="Scatters grad_out into consecutive rows and columns: the stride is lost.",
        feedback="the stride was lost",
        case=STRIDED,
        edits=((ROWS + COLS,
                '                rows = slice(u * d_h, u * d_h + h_out)  # MISTAKE: no stride\n'
                '                cols = slice(v * d_w, v * d_w + w_out)\n'),),
    ),
    "stride_not_dilation": Mistake(
        what="Correlates x with grad_out for grad_weight as if the windows were 1 apart.",
        feedback="the stride must become the dilation",
        case=STRIDED,
        edits=(('        grad_weight[outs] = np.einsum("nohw,nchwuv->ocuv", grad_out[:, outs], '
                'windows[:, ins],\n',
                '        dense = sliding_window_view(padded, span, axis=(2, 3))[:, :, :h_out, '
                ':w_out, ::d_h, ::d_w]\n'
                '        # MISTAKE: windows 1 apart, not stride apart\n'
                '        grad_weight[outs] = np.einsum("nohw,nchwuv->ocuv", grad_out[:, outs], '
                'dense[:, ins],\n'),),
    ),
    "dilation_ignored": Mistake(
        what="Sends each tap's gradient to consecutive positions: the dilation is ignored.",
        feedback="grad_x ignores the dilation",
        case=dict(x_shape=(1, 2, 9, 9), weight_shape=(2, 2, 3, 3), dilation=2),
        edits=((ROWS + COLS,
                '                rows = slice(u, u + s_h * (h_out - 1) + 1, s_h)  # MISTAKE\n'
                '                cols = slice(v, v + s_w * (w_out - 1) + 1, s_w)\n'),),
    ),
    "stride_dilation_swapped": Mistake(
        what="Puts the stride between the taps and the dilation between the windows.",
        feedback="dilation is applied to the wrong operand",
        case=dict(x_shape=(1, 1, 10, 10), weight_shape=(2, 1, 3, 3), stride=2, dilation=3),
        edits=((ROWS + COLS,
                '                rows = slice(u * s_h, u * s_h + d_h * (h_out - 1) + 1, d_h)'
                '  # MISTAKE\n'
                '                cols = slice(v * s_w, v * s_w + d_w * (w_out - 1) + 1, d_w)\n'),),
    ),
    "not_cropped": Mistake(
        what="Returns the gradient of the padded input, padding and all.",
        feedback="crop the padding off",
        case=dict(x_shape=(1, 2, 5, 5), weight_shape=(3, 2, 3, 3), padding=1),
        edits=(('    grad_x = grad_padded[:, :, top:top + h, left:left + w]\n',
                '    grad_x = grad_padded  # MISTAKE: the padding is not cropped\n'),),
    ),
    "unread_rows_dropped": Mistake(
        what="Allocates grad_x only as large as the windows reach, losing the unread rows.",
        feedback="read by no window",
        case=dict(x_shape=(1, 1, 8, 10), weight_shape=(2, 1, 3, 3), stride=3),
        edits=(('    grad_x = grad_padded[:, :, top:top + h, left:left + w]\n',
                '    reach_h = s_h * (h_out - 1) + d_h * (k_h - 1) + 1  # MISTAKE: unread rows\n'
                '    reach_w = s_w * (w_out - 1) + d_w * (k_w - 1) + 1\n'
                '    grad_x = grad_padded[:, :, top:reach_h - bottom, left:reach_w - right]\n'),),
    ),
    "groups_not_transposed": Mistake(
        what="Sends every output channel's gradient to every group's input channels.",
        feedback="not transposed per group",
        case=dict(x_shape=(1, 4, 5, 5), weight_shape=(6, 2, 3, 3), padding=1, groups=2),
        edits=((SCATTER,
                '                grad_padded[:, ins, rows, cols] += np.einsum(  # MISTAKE\n'
                '                    "nohw,oc->nchw", grad_out, weight[:, :, u, v])\n'),),
    ),
    "bias_mean": Mistake(
        what="Averages grad_out for grad_bias instead of summing it.",
        feedback="the mean of grad_out, not its sum",
        case=dict(x_shape=(2, 2, 5, 5), weight_shape=(3, 2, 3, 3)),
        edits=(('    grad_bias = grad_out.sum(axis=(0, 2, 3)) if bias else None\n',
                '    grad_bias = grad_out.mean(axis=(0, 2, 3)) if bias else None  # MISTAKE\n'),),
    ),
    "bias_wrong_axes": Mistake(
        what="Sums grad_out over the positions only, keeping one grad_bias per image.",
        feedback="one value per output channel",
        case=dict(x_shape=(2, 2, 5, 5), weight_shape=(3, 2, 3, 3)),
        edits=(('    grad_bias = grad_out.sum(axis=(0, 2, 3)) if bias else None\n',
                '    grad_bias = grad_out.sum(axis=(2, 3)) if bias else None  # MISTAKE\n'),),
    ),
    "bias_not_none": Mistake(
        what="Returns a grad_bias even when the convolution has no bias.",
        feedback="grad_bias must be None when bias=False",
        case=dict(x_shape=(1, 2, 5, 5), weight_shape=(3, 2, 3, 3), bias=False),
        edits=(('    grad_bias = grad_out.sum(axis=(0, 2, 3)) if bias else None\n',
                '    grad_bias = grad_out.sum(axis=(0, 2, 3))  # MISTAKE: bias=False too\n'),),
    ),
    "batch_axis_kept": Mistake(
        what="Returns an unbatched input's grad_x with the batch axis still on.",
        feedback="remove the batch axis",
        case=dict(x_shape=(2, 6, 5), weight_shape=(3, 2, 3, 3), padding=1),
        edits=(('    if unbatched:\n        grad_x = grad_x[0]\n',
                '    # MISTAKE: the batch axis added for an unbatched x stays\n'),),
    ),
    "float64_always": Mistake(
        what="Computes grad_x in float64 whatever the input's dtype.",
        feedback="expected float32",
        case=dict(x_shape=(1, 2, 5, 5), weight_shape=(3, 2, 3, 3), dtype="float32"),
        edits=(('    grad_padded = np.zeros(padded.shape, dtype=x.dtype)\n',
                '    grad_padded = np.zeros(padded.shape)  # MISTAKE: float64 always\n'),),
    ),
    "autograd_inside": Mistake(
        what="Lets PyTorch's autograd compute the gradients.",
        feedback="ran PyTorch operators",
        case=dict(x_shape=(1, 2, 5, 5), weight_shape=(3, 2, 3, 3)),
        edits=(('    unbatched = x.ndim == 3\n',
                '    import torch  # MISTAKE: autograd does the work\n'
                '    x_t = torch.from_numpy(x).requires_grad_()\n'
                '    torch.autograd.grad((x_t * 2).sum(), x_t)\n'
                '    unbatched = x.ndim == 3\n'),),
    ),
}


def source(name: str) -> str:
    """The submission of mistake ``name``: the control with that mistake's edits applied."""
    return edited(name, MISTAKES[name], control=CONTROL)
