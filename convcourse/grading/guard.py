"""Catch a graded function that calls a library convolution instead of computing one.

Reading the source is easy to fool (``getattr(F, "con" + "v2d")``), so the guard watches the
operators that actually run: a :class:`~torch.utils._python_dispatch.TorchDispatchMode` sees
every operator PyTorch dispatches (``F.conv2d``, ``nn.Conv2d``, ``torch.convolution``, the
cuDNN/oneDNN kernels and ``torch.ops.mkldnn._convolution_pointwise`` all pass through one), and
SciPy's correlate/convolve functions are wrapped while the guard is active.

The guard runs in the process it watches and watches the calling thread, which is right for a
learner checking their own work. The autograder does not rely on it alone: there, the learner's
code runs in a sandbox where SciPy is absent and every convolution operator is refused for all
threads once the cells have run (``autograder/sandboxed/seal.py``).
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys

from torch.utils._python_dispatch import TorchDispatchMode

#: The name of an operator that computes a convolution, in any namespace (``aten``, ``mkldnn``,
#: ``quantized``, ...), forward or backward: "conv" in its name, but not "convert".
_CONVOLUTION_NAME = re.compile(r"conv(?!ert)")
#: SciPy functions that compute a correlation or convolution, by module.
SCIPY_FUNCTIONS = {
    "scipy.signal": ["correlate", "correlate2d", "convolve", "convolve2d", "fftconvolve",
                     "oaconvolve", "choose_conv_method"],
    "scipy.ndimage": ["correlate", "convolve", "correlate1d", "convolve1d"],
}


def is_convolution(operator: str) -> bool:
    """Whether a PyTorch operator computes a convolution. ``operator`` is named as the
    dispatcher names it (``"aten::conv2d.padding"``) or as Python prints it
    (``"aten.conv2d.padding"``); ``"aten::_convert_indices_from_coo_to_csr"`` is not one."""
    name = operator.replace("::", ".").split(".")[1]
    return _CONVOLUTION_NAME.search(name) is not None


class LibraryConvolutionError(RuntimeError):
    """Raised inside a guarded call at the moment it uses a library convolution."""


#: The lists of the guards active now, innermost last.
_ACTIVE: list[list[str]] = []


def report_library_convolutions(names: list[str]) -> None:
    """Record convolutions that the guarded code used in another process (the grader's
    sandbox watches its own) in every active guard, and refuse them as a guard does."""
    for seen in _ACTIVE:
        seen.extend(names)
    raise LibraryConvolutionError(f"{', '.join(names)} is a library convolution")


class _OperatorWatch(TorchDispatchMode):
    def __init__(self, seen: list[str]):
        super().__init__()
        self.seen = seen

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if is_convolution(name):
            self.seen.append(name)
            raise LibraryConvolutionError(f"{name} is a library convolution")
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def scipy_convolutions(seen: list[str]):
    """Refuse SciPy's convolutions for the duration (recording them in ``seen``), where the
    code inside could reach them."""
    patched = []
    for module_name, names in SCIPY_FUNCTIONS.items():
        if module_name.split(".")[0] not in sys.modules:
            continue  # SciPy was never imported: nothing can call it without importing it
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in names:
            original = getattr(module, name, None)
            if original is None:
                continue

            def forbidden(*args, _name=f"{module_name}.{name}", **kwargs):
                seen.append(_name)
                raise LibraryConvolutionError(f"{_name} is a library convolution")

            setattr(module, name, forbidden)
            patched.append((module, name, original))
    try:
        yield
    finally:
        for module, name, original in patched:
            setattr(module, name, original)


@contextlib.contextmanager
def library_convolutions():
    """Record (and refuse) every library convolution used inside the block.

    Yields the list of what was used, e.g. ``['aten.convolution.default']``; it stays filled
    even when the code inside caught the :class:`LibraryConvolutionError`.
    """
    seen: list[str] = []
    _ACTIVE.append(seen)
    try:
        with scipy_convolutions(seen), _OperatorWatch(seen):
            yield seen
    finally:
        _ACTIVE.pop()  # guards nest, so the innermost leaves first


class TorchOperationError(RuntimeError):
    """Raised inside a NumPy-only call at the moment it runs a PyTorch operator."""


#: The lists of the NumPy-only blocks active now, innermost last.
_NUMPY_ONLY: list[list[str]] = []


class _AnyOperator(TorchDispatchMode):
    def __init__(self, seen: list[str]):
        super().__init__()
        self.seen = seen

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(str(func))
        raise TorchOperationError(f"{func} is a PyTorch operator")


@contextlib.contextmanager
def torch_operations():
    """Record (and refuse) every PyTorch operator run inside the block, for a function that
    must compute with NumPy alone (a backward pass written by hand: autograd would run
    operators). Yields the list of operators used; a function that runs in the grader's
    sandbox is asked to apply the same rule there (:func:`numpy_only`)."""
    seen: list[str] = []
    _NUMPY_ONLY.append(seen)
    try:
        with _AnyOperator(seen):
            yield seen
    finally:
        _NUMPY_ONLY.pop()


def numpy_only() -> bool:
    """Whether the calling code is inside :func:`torch_operations`."""
    return bool(_NUMPY_ONLY)


def report_torch_operations(names: list[str]) -> None:
    """Record operators that NumPy-only code ran in another process, and refuse them."""
    for seen in _NUMPY_ONLY:
        seen.extend(names)
    raise TorchOperationError(f"{', '.join(names)} is a PyTorch operator")
