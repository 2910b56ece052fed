"""Mistakes that the table of known mistakes (convcourse.grading.diagnose.MISTAKES) does not
list: plausible slips a learner makes, each the control (correct.py) with one small edit,
built as in corpus.py. Only the structural diagnosis (convcourse.grading.structure) or the
report of a crash can name them; ``feedback`` is the phrase that names the culprit.

``named=False`` marks the ones the checker does not name yet: they are measured too (the
share named is asserted in tests/test_structure.py), never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

from mistakes.corpus import Mistake, edited

EINSUM = '            "nchwij,ocij->nohw", group_windows, group_weight, optimize=True)\n'
PAIRS = ('    (s_h, s_w), (d_h, d_w) = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)'
         '\n')
GROUP_WINDOWS = '        group_windows = windows[:, g * c_group:(g + 1) * c_group]\n'
GROUP_WEIGHT = '        group_weight = weight[g * per_group:(g + 1) * per_group]\n'
RETURN = '    return out[0] if unbatched else out\n'
PAD = '    x = np.pad(x, [(0, 0), (0, 0), *pads], mode=NP_PAD_MODES[padding_mode])\n'


@dataclass(frozen=True)
class Unlisted(Mistake):
    named: bool = True  # whether the feedback names it today


def _case(x_shape, weight_shape, dtype="float64", bias=True, **arguments) -> dict:
    return dict(x_shape=x_shape, weight_shape=weight_shape, bias=bias, dtype=dtype, **arguments)


UNLISTED = {
    "stride_pair_swapped": Unlisted(
        what="Reads stride=(sH, sW) as (width, height).",
        feedback="is the pair read as (width, height)?",
        case=_case((1, 2, 9, 8), (3, 2, 3, 3), stride=(2, 1), padding=1),
        edits=((PAIRS, PAIRS.replace("(s_h, s_w), (d_h, d_w)", "(s_w, s_h), (d_h, d_w)")
                .replace("\n", "  # MISTAKE: the stride pair read (width, height)\n")),),
    ),
    "padding_pair_swapped": Unlisted(
        what="Pads the height by padding[1] and the width by padding[0].",
        feedback="is the pair read as (width, height)?",
        case=_case((1, 2, 5, 6), (2, 2, 3, 3), padding=(2, 0)),
        edits=(('        pads = [(p, p) for p in _pair(padding, "padding", 0)]\n',
                '        pads = [(p, p) for p in _pair(padding, "padding", 0)][::-1]'
                '  # MISTAKE\n'),),
    ),
    "dilation_pair_swapped": Unlisted(
        what="Reads dilation=(dH, dW) as (width, height).",
        feedback="dilation 3 gives along the height",
        case=_case((1, 1, 11, 12), (2, 1, 3, 2), stride=2, padding=(1, 2), dilation=(2, 3)),
        edits=((PAIRS, PAIRS.replace("(s_h, s_w), (d_h, d_w)", "(s_h, s_w), (d_w, d_h)")
                .replace("\n", "  # MISTAKE: the dilation pair swapped\n")),),
    ),
    "kernel_spans_swapped": Unlisted(
        what="Builds windows kW tall and kH wide, so einsum cannot match them with the weight.",
        feedback="np.einsum(",  # the learner's own line, from the crash
        case=_case((1, 2, 6, 9), (3, 2, 2, 3)),
        edits=(('    spans = (d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1)\n',
                '    spans = (d_w * (k_w - 1) + 1, d_h * (k_h - 1) + 1)  # MISTAKE: swapped\n'),),
    ),
    "mean_instead_of_sum": Unlisted(
        what="Averages the products of each window instead of summing them.",
        feedback="you averaged (np.mean) where conv2d sums",
        case=_case((1, 2, 7, 6), (4, 2, 3, 3), padding=1),
        edits=((EINSUM, EINSUM.replace("optimize=True)\n",
                                       "optimize=True) / (c_group * k_h * k_w)  # MISTAKE\n")),),
    ),
    "relu_applied": Unlisted(
        what="Applies a ReLU before returning, as a layer block would.",
        feedback="you applied a ReLU",
        case=_case((1, 2, 7, 6), (4, 2, 3, 3), padding=1),
        edits=((RETURN, "    out = np.maximum(out, 0)  # MISTAKE: an activation\n" + RETURN),),
    ),
    "float16_products": Unlisted(
        what="Computes the products in float16 to save memory, for float32 inputs.",
        feedback="the rounding of float16",
        case=_case((1, 2, 7, 6), (4, 2, 3, 3), dtype="float32", padding=1),
        edits=((GROUP_WINDOWS, GROUP_WINDOWS.replace("]\n", "].astype(np.float16)  # MISTAKE\n")),
               (GROUP_WEIGHT, GROUP_WEIGHT.replace("]\n", "].astype(np.float16)\n"))),
    ),
    "float32_products": Unlisted(
        what="Computes in float32 (np.float32 copies) for float64 inputs, returning float64.",
        feedback="the rounding of float32",
        case=_case((1, 3, 8, 7), (4, 3, 3, 3), padding=1),
        edits=((GROUP_WINDOWS, GROUP_WINDOWS.replace("]\n", "].astype(np.float32)  # MISTAKE\n")),
               (GROUP_WEIGHT, GROUP_WEIGHT.replace("]\n", "].astype(np.float32)\n"))),
    ),
    "sign_flipped": Unlisted(
        what="Subtracts the products from the output instead of adding them.",
        feedback="the opposite sign",
        case=_case((1, 2, 7, 6), (4, 2, 3, 3), padding=1),
        edits=(('        out[:, g * per_group:(g + 1) * per_group] = np.einsum(\n',
                '        out[:, g * per_group:(g + 1) * per_group] = -np.einsum(  # MISTAKE\n'),),
    ),
    "flipped_width_only": Unlisted(
        what="Flips the kernel left to right only (half of a true convolution's flip).",
        feedback="flipped along the width only",
        case=_case((1, 2, 7, 6), (4, 2, 3, 3), padding=1),
        edits=((GROUP_WEIGHT, GROUP_WEIGHT.replace("]\n", "][..., ::-1]  # MISTAKE\n")),),
    ),
    "input_channels_one_short": Unlisted(
        what="Sums over the input channels with range(C - 1): the last channel is left out.",
        feedback="all but the last of each group's 3 input channels",
        case=_case((1, 3, 7, 6), (4, 3, 3, 3), padding=1),
        edits=((GROUP_WINDOWS, GROUP_WINDOWS.replace("(g + 1) * c_group]",
                                                     "(g + 1) * c_group - 1]  # MISTAKE")),
               (GROUP_WEIGHT, GROUP_WEIGHT.replace("]\n", "][:, :-1]\n"))),
    ),
    "bias_subtracted": Unlisted(
        what="Subtracts the bias instead of adding it.",
        feedback="you subtracted the bias",
        case=_case((1, 2, 7, 6), (4, 2, 3, 3), padding=1),
        edits=(('        out += bias[:, np.newaxis, np.newaxis]\n',
                '        out -= bias[:, np.newaxis, np.newaxis]  # MISTAKE\n'),),
    ),
    "last_group_skipped": Unlisted(
        what="Loops over range(groups - 1): the last group's output channels stay zero.",
        feedback="were never computed",
        case=_case((1, 4, 6, 6), (6, 2, 3, 3), bias=False, padding=1, groups=2),
        edits=(('    for g in range(groups):\n',
                '    for g in range(groups - 1):  # MISTAKE: one group short\n'),),
    ),
    "height_padded_by_edge": Unlisted(
        what="Pads the height by repeating the edge (np.pad mode='edge') whatever padding_mode.",
        feedback="overlaps the padding along the height",
        case=_case((1, 2, 7, 6), (4, 2, 3, 3), padding=1),
        edits=((PAD, ("    x = np.pad(x, [(0, 0), (0, 0), pads[0], (0, 0)], mode='edge')"
                      "  # MISTAKE\n    x = np.pad(x, [(0, 0), (0, 0), (0, 0), pads[1]], "
                      "mode=NP_PAD_MODES[padding_mode])\n")),),
    ),
    "input_read_transposed": Unlisted(
        what="Reads a square input with its height and width swapped (x.transpose(0, 1, 3, 2)).",
        feedback="height and width",
        case=_case((1, 2, 6, 6), (3, 2, 3, 2), padding=1),
        edits=((PAD, "    x = x.transpose(0, 1, 3, 2)  # MISTAKE\n" + PAD),),
        named=False,
    ),
    "weights_of_the_next_channel": Unlisted(
        what="Pairs output channel o with weight[o - 1] (an off-by-one in the filter index).",
        feedback="output channel o must use weight[o]",
        case=_case((1, 2, 7, 6), (4, 2, 3, 3), padding=1),
        edits=((GROUP_WEIGHT, GROUP_WEIGHT.replace("]\n", "]\n        group_weight = np.roll("
                                                   "group_weight, 1, axis=0)  # MISTAKE\n")),),
    ),
}


def source(name: str) -> str:
    """The submission of unlisted mistake ``name``."""
    return edited(name, UNLISTED[name])
