"""The grid of conv2d cases that hidden tests (and the grader) run: every parameter, and each
awkward case, with seeded random inputs so that every run checks the same numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from convcourse.grading import COURSE_KEY
from convcourse.reference import PAD_MODES, Conv2dCase, Size, explicit_padding, pair


@dataclass(frozen=True)
class Spec:
    """The shape of one case: ``x`` is ``(n, c_in, h, w)`` (unbatched when ``n`` is None)."""

    n: int | None
    c_in: int
    h: int
    w: int
    c_out: int
    kernel_size: Size
    stride: Size = 1
    padding: Size | str = 0
    dilation: Size = 1
    groups: int = 1
    bias: bool = True


#: One line per awkward case the tests must cover.
SPECS = {
    "plain 3x3": Spec(2, 3, 7, 7, 4, 3),
    "non-square input and kernel": Spec(1, 2, 6, 9, 3, (2, 3)),
    "1x1 kernel": Spec(2, 5, 4, 3, 2, 1),
    "stride pair": Spec(2, 2, 9, 8, 3, 3, stride=(2, 1), padding=1),
    "stride does not divide": Spec(1, 1, 8, 10, 2, 3, stride=3),
    "padding pair": Spec(1, 2, 5, 6, 2, 3, padding=(2, 0)),
    "dilation with padding": Spec(1, 2, 10, 9, 2, 3, padding=2, dilation=2),
    "dilation pair with stride": Spec(1, 1, 11, 12, 2, (3, 2), stride=2, padding=(1, 2),
                                      dilation=(2, 3), bias=False),
    "groups": Spec(2, 4, 6, 6, 6, 3, padding=1, groups=2),
    "depthwise": Spec(1, 4, 7, 5, 4, 3, padding=1, groups=4),
    "depthwise, multiplier 2": Spec(1, 3, 5, 6, 6, (3, 1), groups=3, bias=False),
    "bias None": Spec(2, 3, 6, 5, 2, 2, bias=False),
    "'valid'": Spec(1, 2, 6, 6, 3, 3, padding="valid"),
    "'same', odd kernel": Spec(1, 2, 6, 7, 3, 3, padding="same"),
    "'same', even kernel": Spec(1, 2, 6, 7, 3, (4, 2), padding="same"),
    "'same' with dilation": Spec(1, 2, 8, 8, 2, 3, padding="same", dilation=(2, 1)),
    "unbatched": Spec(None, 3, 6, 5, 2, 3, padding=1),
}
#: The specs whose padding is also tried with every padding_mode (inputs big enough to reflect).
PADDED = ["stride pair", "padding pair", "dilation with padding", "'same', even kernel",
          "unbatched"]



def course_seed(seed: int) -> int:
    """The seed a hidden grid published as ``seed`` is drawn from.

    Every hidden grid of the grading package draws its inputs from a generator seeded with
    ``course_seed(its published seed)``, so a course can make its hidden inputs its own.
    Without a course key (a learner running their own notebook) it is ``seed`` itself; with
    one (``$CONVCOURSE_COURSE_KEY``), a 63-bit number derived from the key and ``seed``
    (HMAC-SHA256), the same for the same key, unknown to whoever lacks the key.
    """
    key = os.environ.get(COURSE_KEY, "")
    if not key:
        return seed
    digest = hmac.new(key.encode(), f"hidden grid {seed}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def make_case(spec: Spec, *, generator: torch.Generator, dtype=torch.float64, device="cpu",
              padding_mode: str = "zeros") -> Conv2dCase:
    """Draw one case's inputs for ``spec`` from ``generator``."""
    k_h, k_w = (spec.kernel_size,) * 2 if isinstance(spec.kernel_size, int) else spec.kernel_size
    x_shape = (spec.c_in, spec.h, spec.w) if spec.n is None else (spec.n, spec.c_in, spec.h,
                                                                  spec.w)

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(device, dtype)

    return Conv2dCase(
        x=draw(*x_shape),
        weight=draw(spec.c_out, spec.c_in // spec.groups, k_h, k_w),
        bias=draw(spec.c_out) if spec.bias else None,
        stride=spec.stride, padding=spec.padding, dilation=spec.dilation, groups=spec.groups,
        padding_mode=padding_mode,
    )


def conv2d_cases(seed: int = 0, *, dtypes=(torch.float64, torch.float32), devices=None,
                 padding_modes=tuple(PAD_MODES)) -> list[Conv2dCase]:
    """Every spec, in every dtype and on every device (CUDA too when present), plus the
    padded specs in every padding mode; the same list for the same seed."""
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    generator = torch.Generator().manual_seed(course_seed(seed))
    cases = []
    for device in devices:
        for dtype in dtypes:
            for name, spec in SPECS.items():
                modes = padding_modes if name in PADDED else ("zeros",)
                for mode in modes:
                    cases.append(make_case(spec, generator=generator, dtype=dtype, device=device,
                                           padding_mode=mode))
    return cases


def _odd_same_total(case: Conv2dCase) -> bool:
    """'same' padding whose total d*(k - 1) is odd along an axis (an even kernel)."""
    return case.padding == "same" and any(
        d * (k - 1) % 2 for k, d in zip(case.weight.shape[-2:], pair(case.dilation),
                                        strict=True))


#: What a case may have, most specific first: (how a sentence says it, whether it has it).
TRAITS: tuple[tuple[str, Callable[[Conv2dCase], bool]], ...] = (
    ("an even kernel with padding='same' (an odd total to split)", _odd_same_total),
    ("padding='same'", lambda c: c.padding == "same"),
    ("depthwise groups (groups = C_in)", lambda c: c.groups > 1 and c.weight.shape[1] == 1),
    ("groups > 1", lambda c: c.groups > 1),
    *((f"padding_mode='{mode}'", lambda c, mode=mode: c.padding_mode == mode)
      for mode in PAD_MODES if mode != "zeros"),
    ("float32 inputs", lambda c: c.x.dtype == torch.float32),
    ("an unbatched x (C_in, H, W)", lambda c: c.x.dim() == 3),
    ("a stride > 1", lambda c: pair(c.stride) != (1, 1)),
    ("a dilation > 1", lambda c: pair(c.dilation) != (1, 1)),
    ("some padding", lambda c: explicit_padding(c) != (0, 0, 0, 0)),
    ("a non-square kernel", lambda c: c.weight.shape[-2] != c.weight.shape[-1]),
    ("bias=None", lambda c: c.bias is None),
    ("a bias", lambda c: c.bias is not None),
    ("x on CUDA", lambda c: c.x.device.type == "cuda"),
)


def shared_traits(failed: list[Conv2dCase], passed: list[Conv2dCase]) -> str | None:
    """What every failing case has and no passing one does (at most two such traits), as a
    clause; None when nothing sets them apart (or too few cases ran to tell)."""
    if len(failed) < 2 or not passed:
        return None
    shared = [words for words, has in TRAITS
              if all(has(case) for case in failed) and not any(has(case) for case in passed)]
    if not shared:
        return None
    return (f"every failing case has {' and '.join(shared[:2])}, and none of the "
            f"{len(passed)} that passed has")
