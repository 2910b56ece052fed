"""The grader's seal (autograder/sandboxed/seal.py): once applied, no way through PyTorch reaches a
convolution kernel, on any thread; the rest of PyTorch still works. Each check runs in a fresh
Python process, because the seal is for good."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]

PROGRAM = r'''
import json, sys, threading
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import _disable_current_modes
sys.path.insert(0, "autograder/sandboxed")
import seal

x, w = torch.randn(1, 2, 6, 6, dtype=torch.float64), torch.randn(3, 2, 3, 3, dtype=torch.float64)
expected = F.conv2d(x, w)
seal.withdraw_kernel_handles(torch)
refused = seal.refuse_library_convolutions(torch)
CPU = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)


def in_a_thread():
    box = []

    def work():
        try:
            box.append(F.conv2d(x, w))
        except Exception as error:
            box.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if isinstance(box[0], Exception):
        raise box[0]
    return box[0]


def with_modes_off():
    with _disable_current_modes():
        return F.conv2d(x, w)


ATTEMPTS = {
    "F.conv2d": lambda: F.conv2d(x, w),
    "nn.Conv2d": lambda: torch.nn.Conv2d(2, 3, 3)(x.float()),
    "thread": in_a_thread,
    "dispatch modes off": with_modes_off,
    "redispatch to CPU": lambda: torch.ops.aten.convolution.default.redispatch(
        CPU, x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1),
    "decompose": lambda: torch.ops.aten.conv2d.default.decompose(x, w),
    "slow kernel": lambda: torch.ops.aten._slow_conv2d_forward(x, w, [3, 3], None, [1, 1], [0, 0]),
    "oneDNN namespace": lambda: torch.ops.mkldnn._convolution_pointwise(
        x.float(), w.float(), None, [0, 0], [1, 1], [1, 1], 1, "none", [], ""),
    "transposed": lambda: F.conv_transpose2d(x, w.transpose(0, 1)),
    "backward": lambda: torch.nn.grad.conv2d_weight(x, w.shape, expected),
    "meta": lambda: F.conv2d(x.to("meta"), w.to("meta")),
    "kernel lookup": lambda: torch.library.get_kernel("aten::_slow_conv2d_forward", "CPU"),
    "oneDNN Graph": lambda: torch.jit.enable_onednn_fusion(True),
}
outcomes = {}
for name, attempt in ATTEMPTS.items():
    try:
        attempt()
        outcomes[name] = "ran"
    except Exception as error:
        outcomes[name] = type(error).__name__
columns = F.unfold(x, 3)
im2col = (w.reshape(3, -1) @ columns).reshape(expected.shape)
print(json.dumps({"outcomes": outcomes, "refused": sorted(set(refused)),
                  "unfold_still_works": bool(torch.allclose(im2col, expected))}))
'''


@pytest.fixture(scope="module")
def sealed() -> dict:
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=REPOSITORY, capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_every_way_to_a_convolution_kernel_is_refused(sealed):
    assert {name: outcome for name, outcome in sealed["outcomes"].items()
            if outcome != "LibraryConvolutionError"} == {}


def test_the_refusals_are_recorded_by_operator(sealed):
    assert {"aten::conv2d", "aten::_slow_conv2d_forward",
            "mkldnn::_convolution_pointwise"} <= set(sealed["refused"])


def test_tensor_operations_still_work(sealed):
    assert sealed["unfold_still_works"]
