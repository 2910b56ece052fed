"""Close PyTorch's convolutions to the learner's code, for every thread and for good.

Runs in the sandbox, in two steps of the runner (see runner.py):

1. :func:`withdraw_kernel_handles`, before any learner code: takes away the ways to keep a
   PyTorch kernel, or a compiled graph that computes a convolution itself, for later (the
   dispatcher's kernel lookup behind ``torch.library.get_kernel``, and oneDNN Graph fusion).
2. :func:`refuse_library_convolutions`, once the learner's cells have run: every convolution
   operator the dispatcher knows (``aten::convolution``, ``aten::mkldnn_convolution``,
   ``mkldnn::_convolution_pointwise``, the quantized ones, ...) gets a kernel that raises, at
   every dispatch key that does the work (CPU, CUDA, Meta, the composite keys), in place of
   PyTorch's. Dispatch modes, threads and ``redispatch`` all end there. The registrations are
   never undone: the handles that could undo them are kept alive by a reference that no Python
   object holds.

The cells run before step 2 so that a learner's scratch cell may still compare with
``F.conv2d``; only the graded calls served afterwards are refused. This is in-process
enforcement: code that writes into the interpreter's memory (``ctypes``) could still undo it.
"""

from __future__ import annotations

import ctypes
import re
import warnings

from convcourse.grading.guard import LibraryConvolutionError, is_convolution

#: Dispatch keys whose kernels pass the call on (autograd, autocast, tracing, vmap, ...): the
#: refusal goes below them, at the keys whose kernels compute.
FORWARDING_KEY = re.compile(
    r"^(Autograd|Autocast|Tracer|FuncTorch|ADInplaceOrView|Functionalize|Python|PreDispatch"
    r"|BackendSelect|Named|Conjugate|Negative|ZeroTensor|Batched|VmapMode)"
)
#: A kernel's line in ``torch._C._dispatch_dump``: ``CPU: registered at ...`` or
#: ``CompositeExplicitAutograd[alias]: registered at ...``.
REGISTERED = re.compile(r"^(\w+?)(?:\[alias\])?: registered at", re.MULTILINE)


def withdraw_kernel_handles(torch) -> None:
    """Before the learner's code: no kernel object and no oneDNN Graph partition can be made
    now and called after step 2. Nothing is kept from which the originals could be restored."""
    torch._C._jit_set_llga_enabled(False)

    def withdrawn(*args, **kwargs):
        raise LibraryConvolutionError("PyTorch's kernel lookup and oneDNN Graph fusion are not "
                                      "available to graded code")

    torch._C._dispatch_get_computed_kernel_for_dispatch_key = withdrawn
    torch._C._jit_set_llga_enabled = withdrawn


def computing_keys(torch, operator: str) -> list[str]:
    """The dispatch keys at which ``operator`` has a kernel that does the work."""
    return [key for key in REGISTERED.findall(torch._C._dispatch_dump(operator))
            if key != "debug" and not FORWARDING_KEY.match(key)]


def refuse_library_convolutions(torch) -> list[str]:
    """Replace every convolution kernel by a refusal, process-wide and for good. Returns the
    list to which each refusal appends its operator's name (for the grader's feedback)."""
    refused: list[str] = []
    libraries: dict[str, object] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "overriding a previously registered kernel": we are
        for operator in torch._C._dispatch_get_all_op_names():
            if not is_convolution(operator):
                continue
            namespace, name = operator.split("::")
            for key in computing_keys(torch, operator):
                if namespace not in libraries:
                    libraries[namespace] = torch._C._dispatch_library("IMPL", namespace, "")
                libraries[namespace].impl(name, key, _refusal(operator, refused), False)
    for library in libraries.values():
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(library))  # never released, so never undone
    return refused


def _refusal(operator: str, refused: list[str]):
    def refuse(*args, **kwargs):
        refused.append(operator)
        raise LibraryConvolutionError(f"{operator} is a library convolution")

    return refuse
