"""The corpus of learner-like mistakes, each the control with one deliberate edit.

``correct.py`` beside this file is the control: a correct, vectorised ``conv2d_numpy`` in plain
NumPy. Every mistake is that file with a few lines changed (each marked ``MISTAKE``), so a
mistake's :func:`source` is a whole, self-contained submission: paste it into the conv2d_numpy
answer cell of notebooks/02-numpy/conv2d-numpy.ipynb and the feedback names the mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONTROL = Path(__file__).with_name("correct.py")


@dataclass(frozen=True)
class Mistake:
    """One mistake: what the learner did, the feedback that must name it, where it shows."""

    what: str
    feedback: str | None  # a phrase the feedback must contain; None for the control
    case: dict  # a small case on which the mistake shows (shapes and conv2d's arguments)
    edits: tuple[tuple[str, str], ...] = ()  # (lines of the control, what replaces them)


MISTAKES = {
    "correct": Mistake(
        what="The control: a correct conv2d_numpy.",
        feedback=None,
        case=dict(x_shape=(1, 2, 7, 6), weight_shape=(4, 2, 3, 3), stride=1, padding=1,
                  dilation=1, groups=1, bias=True),
    ),
    "batch_kept": Mistake(
        what="Returns an unbatched input's output with the batch axis still on.",
        feedback='remove the batch axis',
        case=dict(x_shape=[3, 6, 5], weight_shape=[2, 3, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('    return out[0] if unbatched else out\n',
             '    return out  # MISTAKE: the batch axis added for unbatched x stays\n'),
        ),
    ),
    "bias_last_axis": Mistake(
        what='Adds the bias with `out + bias`, which broadcasts it over the last axis (W).',
        feedback='along the last axis',
        case=dict(x_shape=[1, 2, 6, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=0, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('        out += bias[:, np.newaxis, np.newaxis]\n',
             '        out += bias  # MISTAKE: broadcasts over W, not over the channels\n'),
        ),
    ),
    "bias_missing": Mistake(
        what='Never adds the bias.',
        feedback='exactly the bias: you did not add it',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('    if bias is not None:\n        out += bias[:, np.newaxis, np.newaxis]\n',
             '    # MISTAKE: the bias is never added\n'),
        ),
    ),
    "bias_twice": Mistake(
        what='Starts from the bias, then adds it again at the end.',
        feedback='bias added twice',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('    out = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)\n',
             (
                 '    out = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)\n'
                 '    if bias is not None:  # MISTAKE: starts from the bias, and adds it again below\n'
                 '        out += bias[:, np.newaxis, np.newaxis]\n'
             )),
            ('        out[:, g * per_group:(g + 1) * per_group] = np.einsum(\n',
             '        out[:, g * per_group:(g + 1) * per_group] += np.einsum(\n'),
        ),
    ),
    "channels_swapped": Mistake(
        what='Reads the weight as (C_in, C_out, kH, kW), as if it multiplied x from the right.',
        feedback="you read the weight's first two axes as (C_in, C_out)",
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('        group_weight = weight[g * per_group:(g + 1) * per_group]\n',
             (
                 '        group_weight = weight[g * per_group:(g + 1) * per_group]\n'
                 '        # MISTAKE: the weight read as (C_in/groups, C_out/groups, kH, kW)\n'
                 '        group_weight = group_weight.reshape(c_group, per_group, k_h, k_w)\n'
             )),
            ('            "nchwij,ocij->nohw", group_windows, group_weight, optimize=True)\n',
             '            "nchwij,coij->nohw", group_windows, group_weight, optimize=True)\n'),
        ),
    ),
    "dilation_ignored": Mistake(
        what='Ignores dilation: plain windows of kH x kW.',
        feedback='you ignored dilation',
        case=dict(x_shape=[1, 2, 10, 9], weight_shape=[2, 2, 3, 3], stride=1, padding=2, dilation=2,
                  groups=1, bias=True),
        edits=(
            ('    spans = (d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1)\n',
             '    spans = (k_h, k_w)  # MISTAKE: dilation ignored\n'),
            ((
                 '    windows = sliding_window_view(x, spans, axis=(2, 3))[:, :, ::s_h, ::s_w, ::d_h, ::d_w]\n'
             ),
             '    windows = sliding_window_view(x, spans, axis=(2, 3))[:, :, ::s_h, ::s_w]\n'),
        ),
    ),
    "dilation_off_by_one": Mistake(
        what='Reads dilation as the number of gaps between taps, so taps sit dilation + 1 apart.',
        feedback='dilation + 1 apart',
        case=dict(x_shape=[1, 2, 10, 9], weight_shape=[2, 2, 3, 3], stride=1, padding=2, dilation=2,
                  groups=1, bias=True),
        edits=(
            ((
                 '    (s_h, s_w), (d_h, d_w) = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)\n'
             ),
             (
                 '    (s_h, s_w), (d_h, d_w) = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)\n'
                 '    d_h, d_w = d_h + 1, d_w + 1  # MISTAKE: taps dilation + 1 apart\n'
             )),
        ),
    ),
    "flatten_order": Mistake(
        what='im2col with windows flattened (kH, kW, C) but the weight flattened (C, kH, kW).',
        feedback='flattened in different orders',
        case=dict(x_shape=[1, 3, 7, 6], weight_shape=[4, 3, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ((
                 '        out[:, g * per_group:(g + 1) * per_group] = np.einsum(\n'
                 '            "nchwij,ocij->nohw", group_windows, group_weight, optimize=True)\n'
             ),
             (
                 '        # One row per window, flattened (kH, kW, C): (N, H_out, W_out, kH*kW*C).\n'
                 '        rows = group_windows.transpose(0, 2, 3, 4, 5, 1).reshape(n, h_out, w_out, -1)\n'
                 '        # MISTAKE: the weight is flattened (C, kH, kW), the windows (kH, kW, C)\n'
                 '        columns = group_weight.reshape(per_group, -1).T\n'
                 '        out[:, g * per_group:(g + 1) * per_group] = (rows @ columns).transpose(0, 3, 1, 2)\n'
             )),
        ),
    ),
    "flipped_kernel": Mistake(
        what='Flips the kernel, as in the textbook definition of convolution.',
        feedback='you flipped the kernel',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('        group_weight = weight[g * per_group:(g + 1) * per_group]\n',
             (
                 '        # MISTAKE: flips the kernel (a true convolution)\n'
                 '        group_weight = weight[g * per_group:(g + 1) * per_group, :, ::-1, ::-1]\n'
             )),
        ),
    ),
    "groups_ignored": Mistake(
        what='Every group reads the first C_in/groups input channels.',
        feedback='every group read the first C_in/groups input channels',
        case=dict(x_shape=[1, 4, 6, 6], weight_shape=[6, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=2, bias=True),
        edits=(
            ('        group_windows = windows[:, g * c_group:(g + 1) * c_group]\n',
             '        group_windows = windows[:, :c_group]  # MISTAKE: always the first channels\n'),
        ),
    ),
    "groups_interleaved": Mistake(
        what='Gives group g the output channels g, g + groups, g + 2*groups, ... (interleaved).',
        feedback='take the groups in turn',
        case=dict(x_shape=[1, 4, 6, 6], weight_shape=[6, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=2, bias=True),
        edits=(
            ('    per_group = c_out // groups\n',
             ''),
            ((
                 '        group_weight = weight[g * per_group:(g + 1) * per_group]\n'
                 '        out[:, g * per_group:(g + 1) * per_group] = np.einsum(\n'
                 '            "nchwij,ocij->nohw", group_windows, group_weight, optimize=True)\n'
             ),
             (
                 "        # MISTAKE: group g's output channels are taken as g, g + groups, ...\n"
                 '        out[:, g::groups] = np.einsum(\n'
                 '            "nchwij,ocij->nohw", group_windows, weight[g::groups], optimize=True)\n'
             )),
        ),
    ),
    "height_width_swapped": Mistake(
        what='Builds the output as (N, C_out, W_out, H_out).',
        feedback='height and width axes are swapped',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[3, 2, 3, 3], stride=1, padding=0, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('    out = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)\n',
             '    out = np.zeros((n, c_out, w_out, h_out), dtype=x.dtype)  # MISTAKE: W before H\n'),
            ('            "nchwij,ocij->nohw", group_windows, group_weight, optimize=True)\n',
             '            "nchwij,ocij->nowh", group_windows, group_weight, optimize=True)\n'),
        ),
    ),
    "integer_output": Mistake(
        what='Fills an integer array, so every value is truncated.',
        feedback='an integer type, so every value was truncated',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=False),
        edits=(
            ('    out = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)\n',
             '    out = np.zeros((n, c_out, h_out, w_out), dtype=int)  # MISTAKE: integers\n'),
        ),
    ),
    "kernel_transposed": Mistake(
        what='im2col with windows flattened column by column (C, kW, kH), the weight row by row.',
        feedback='your kernel is read transposed',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ((
                 '        out[:, g * per_group:(g + 1) * per_group] = np.einsum(\n'
                 '            "nchwij,ocij->nohw", group_windows, group_weight, optimize=True)\n'
             ),
             (
                 '        # One row per window. MISTAKE: flattened (C, kW, kH), the weight (C, kH, kW)\n'
                 '        rows = group_windows.transpose(0, 2, 3, 1, 5, 4).reshape(n, h_out, w_out, -1)\n'
                 '        columns = group_weight.reshape(per_group, -1).T\n'
                 '        out[:, g * per_group:(g + 1) * per_group] = (rows @ columns).transpose(0, 3, 1, 2)\n'
             )),
        ),
    ),
    "missing_plus_one": Mistake(
        what='Leaves out the + 1 of the output-size formula.',
        feedback='you left out the + 1',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('    h_out, w_out = windows.shape[2:4]\n',
             (
                 '    h_out = (x.shape[2] - spans[0]) // s_h  # MISTAKE: the + 1 is missing\n'
                 '    w_out = (x.shape[3] - spans[1]) // s_w\n'
                 '    windows = windows[:, :, :h_out, :w_out]\n'
             )),
        ),
    ),
    "nan_output": Mistake(
        what='Fills the output row by row from a NaN-filled array, and never writes the last row.',
        feedback='the output contains NaN',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('    out = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)\n',
             (
                 '    out = np.full((n, c_out, h_out, w_out), np.nan, dtype=x.dtype)  # NaN: not yet written\n'
             )),
            ((
                 '        out[:, g * per_group:(g + 1) * per_group] = np.einsum(\n'
                 '            "nchwij,ocij->nohw", group_windows, group_weight, optimize=True)\n'
             ),
             (
                 '        for i in range(h_out - 1):  # MISTAKE: the last output row is never written\n'
                 '            out[:, g * per_group:(g + 1) * per_group, i] = np.einsum(\n'
                 '                "ncwij,ocij->now", group_windows[:, :, i], group_weight, optimize=True)\n'
             )),
        ),
    ),
    "padding_ignored": Mistake(
        what='Never applies an integer padding.',
        feedback='you did not pad x',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('        pads = [(p, p) for p in _pair(padding, "padding", 0)]\n',
             '        pads = [(0, 0), (0, 0)]  # MISTAKE: integer padding is not applied\n'),
        ),
    ),
    "padding_mode_confused": Mistake(
        what="Pads padding_mode='replicate' by mirroring (np.pad's 'reflect').",
        feedback="you padded as padding_mode='reflect', but it is 'replicate'",
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[3, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True, padding_mode='replicate'),
        edits=(
            ('NP_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",\n',
             (
                 '# MISTAKE: replicate mapped to np.pad\'s "reflect" (it is "edge")\n'
                 'NP_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "reflect",\n'
             )),
        ),
    ),
    "padding_mode_ignored": Mistake(
        what='Always pads with zeros, whatever padding_mode says.',
        feedback="you padded with zeros, but padding_mode='reflect'",
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[3, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True, padding_mode='reflect'),
        edits=(
            ('    x = np.pad(x, [(0, 0), (0, 0), *pads], mode=NP_PAD_MODES[padding_mode])\n',
             '    x = np.pad(x, [(0, 0), (0, 0), *pads])  # MISTAKE: zeros, always\n'),
        ),
    ),
    "padding_total": Mistake(
        what='Reads `padding` as the total of both sides: pads padding // 2 on each side.',
        feedback='as if `padding` were the total',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=2, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('        pads = [(p, p) for p in _pair(padding, "padding", 0)]\n',
             (
                 '        # MISTAKE: padding read as the total of both sides\n'
                 '        pads = [(p // 2, p // 2) for p in _pair(padding, "padding", 0)]\n'
             )),
        ),
    ),
    "reflect_symmetric": Mistake(
        what="Pads padding_mode='reflect' with np.pad's 'symmetric', which repeats the edge value.",
        feedback='repeats the edge value',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[3, 2, 3, 3], stride=1, padding=2, dilation=1,
                  groups=1, bias=True, padding_mode='reflect'),
        edits=(
            ('NP_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",\n',
             (
                 '# MISTAKE: reflect mapped to np.pad\'s "symmetric" (it is "reflect")\n'
                 'NP_PAD_MODES = {"zeros": "constant", "reflect": "symmetric", "replicate": "edge",\n'
             )),
        ),
    ),
    "returns_list": Mistake(
        what='Returns a nested Python list.',
        feedback='it returned a list',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('    return out[0] if unbatched else out\n',
             (
                 '    out = out[0] if unbatched else out\n'
                 '    return out.tolist()  # MISTAKE: a list, not an array\n'
             )),
        ),
    ),
    "returns_none": Mistake(
        what='Computes the output but never returns it.',
        feedback='did you forget the `return` statement',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('    return out[0] if unbatched else out\n',
             '    out = out[0] if unbatched else out  # MISTAKE: no return\n'),
        ),
    ),
    "rounded_up": Mistake(
        what='Counts windows with ceil instead of floor, padding zeros for the last window.',
        feedback='rounded the number of windows up',
        case=dict(x_shape=[1, 1, 8, 10], weight_shape=[2, 1, 3, 3], stride=3, padding=0, dilation=1,
                  groups=1, bias=True),
        edits=(
            ('    x = np.pad(x, [(0, 0), (0, 0), *pads], mode=NP_PAD_MODES[padding_mode])\n',
             (
                 '    x = np.pad(x, [(0, 0), (0, 0), *pads], mode=NP_PAD_MODES[padding_mode])\n'
                 '    # MISTAKE: windows counted with ceil; zeros added for the last one\n'
                 '    extra_h = -(x.shape[2] - d_h * (k_h - 1) - 1) % s_h\n'
                 '    extra_w = -(x.shape[3] - d_w * (k_w - 1) - 1) % s_w\n'
                 '    x = np.pad(x, [(0, 0), (0, 0), (0, extra_h), (0, extra_w)])\n'
             )),
        ),
    ),
    "same_extra_first": Mistake(
        what="With padding='same' and an odd total, puts the extra row/column before (top/left).",
        feedback='extra row or column at the top/left',
        case=dict(x_shape=[1, 2, 6, 7], weight_shape=[3, 2, 4, 2], stride=1, padding='same',
                  dilation=1, groups=1, bias=True),
        edits=(
            ('        pads = [(t // 2, t - t // 2) for t in totals]\n',
             (
                 '        pads = [(t - t // 2, t // 2) for t in totals]  # MISTAKE: the odd extra goes first\n'
             )),
        ),
    ),
    "stride_dilation_swapped": Mistake(
        what='Swaps stride and dilation.',
        feedback='you swapped stride and dilation',
        case=dict(x_shape=[1, 2, 9, 8], weight_shape=[3, 2, 3, 3], stride=2, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ((
                 '    (s_h, s_w), (d_h, d_w) = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)\n'
             ),
             (
                 '    # MISTAKE: stride and dilation swapped\n'
                 '    (s_h, s_w), (d_h, d_w) = _pair(dilation, "dilation", 1), _pair(stride, "stride", 1)\n'
             )),
        ),
    ),
    "stride_ignored": Mistake(
        what='Ignores stride: keeps every window.',
        feedback='you ignored stride',
        case=dict(x_shape=[1, 2, 9, 8], weight_shape=[3, 2, 3, 3], stride=2, padding=1, dilation=1,
                  groups=1, bias=True),
        edits=(
            ((
                 '    windows = sliding_window_view(x, spans, axis=(2, 3))[:, :, ::s_h, ::s_w, ::d_h, ::d_w]\n'
             ),
             (
                 '    # MISTAKE: every window is kept (stride ignored)\n'
                 '    windows = sliding_window_view(x, spans, axis=(2, 3))[:, :, :, :, ::d_h, ::d_w]\n'
             )),
        ),
    ),
    "wrong_dtype": Mistake(
        what="Returns float64 whatever x's dtype (np.zeros without dtype).",
        feedback='the dtype is float64, expected float32',
        case=dict(x_shape=[1, 2, 7, 6], weight_shape=[4, 2, 3, 3], stride=1, padding=1, dilation=1,
                  groups=1, bias=True, dtype='float32'),
        edits=(
            ('    out = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)\n',
             '    out = np.zeros((n, c_out, h_out, w_out))  # MISTAKE: always float64\n'),
        ),
    ),
}


def source(name: str) -> str:
    """The submission of mistake ``name``: the control with that mistake's edits applied."""
    return edited(name, MISTAKES[name])


def edited(name: str, mistake: Mistake, *, control: Path = CONTROL) -> str:
    """``control`` (this corpus's by default) with ``mistake``'s edits applied, as a whole
    submission."""
    text = control.read_text()
    body = text[text.index('"""', 3) + 3:]  # the control's code, after its docstring
    for old, new in mistake.edits:
        if body.count(old) != 1:
            raise ValueError(f"{name}: the control no longer holds this text once: {old!r}")
        body = body.replace(old, new)
    return f'"""{mistake.what}\n\nFrom the corpus in tests/mistakes/."""' + body


def load(name: str, text: str | None = None) -> dict:
    """The names that mistake ``name``'s submission (or ``text``) defines (``conv2d_numpy``
    among them); its lines are in linecache, as a notebook's cells are, for tracebacks."""
    import linecache

    text = source(name) if text is None else text
    filename = f"<mistake {name}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    namespace: dict = {"__name__": f"mistake_{name}"}
    exec(compile(text, filename, "exec"), namespace)  # noqa: S102
    return namespace
