"""Stand-ins, on the grader's side, for the functions and classes a learner defined.

The tests run here, in the trusted grader, exactly as written in the instructor's notebook;
each call of a learner's function becomes a request through the notebook's session
(:class:`autograder.session.Session`, which runs the sandbox), and what comes back is plain
data (:mod:`autograder.sandboxed.wire`). Gradients flow back through :class:`_Bridge`, a module's
parameters live here and travel with each forward call, and a library convolution the
sandbox saw is reported to the grader's own guard. A learner's exception is raised again
under its own name, as a subclass of the nearest built-in exception.

Every stand-in talks through one object, its ``session``: anything with
``session.request(header, arrays) -> (reply, arrays)`` (the grader's is a Session; the tests
use fakes).
"""

from __future__ import annotations

import builtins

import torch
from torch import nn

from autograder import replies
from autograder.sandboxed import wire
from convcourse.grading.guard import (
    numpy_only,
    report_library_convolutions,
    report_torch_operations,
)


def trusted_tensor(array, node: dict) -> torch.Tensor:
    """A tensor from the sandbox, rebuilt here from its array (none: a meta tensor)."""
    dtype = wire.dtype_of(node)
    if array is None:
        return torch.empty([int(n) for n in node["shape"]], dtype=dtype, device="meta")
    return torch.from_numpy(array.copy()).to(device=str(node["device"]), dtype=dtype)


def learner_exception(error: dict) -> Exception:
    """The learner's exception, rebuilt from plain data checked by
    :func:`autograder.replies.learner_error` (never a BaseException that could stop the
    grader: SystemExit and KeyboardInterrupt come back as RuntimeError subclasses)."""
    error = replies.learner_error(error)
    base: type = RuntimeError
    for candidate in error.bases:
        found = getattr(builtins, candidate, None)
        if isinstance(found, type) and issubclass(found, Exception):
            base = found
            break
    try:
        exception = type(error.type, (base,), {"__module__": "learner"})(error.message)
    except Exception:  # noqa: BLE001  (a base whose constructor wants more arguments)
        exception = type(error.type, (RuntimeError,), {"__module__": "learner"})(error.message)
    exception.learner_traceback = error.traceback
    exception.learner_frames = error.frames
    return exception


def remote_call(session, header: dict, args=(), kwargs=None, *, state=None, rng=False):
    """Send one request with its arguments; return the learner's result as trusted values."""
    encoder = wire.Encoder(strict=True)
    header = {**header, "args": encoder(list(args)), "kwargs": encoder(dict(kwargs or {}))}
    if numpy_only():  # the check refuses PyTorch operators in this call: so must the sandbox
        header["numpy_only"] = True
    if state is not None:
        header["state"] = encoder(state)
    if rng:
        header["rng"] = encoder(torch.get_rng_state())
    reply, arrays = session.request(header, encoder.arrays)
    return _result(session, reply, arrays, encoder.grad_leaves, rng=rng)


def _result(session, reply: dict, arrays: dict, leaves: list, *, rng: bool = False):
    """The value of a reply, as trusted values. The reply's random state is taken only where
    the request sent ours (``rng``): a reply cannot set the grader's random state unasked."""
    if reply.get("library"):
        report_library_convolutions(replies.names(reply, "library"))
    if reply.get("torch"):
        report_torch_operations(replies.names(reply, "torch"))
    if reply.get("ok") is not True:
        raise learner_exception(reply.get("error") or {})
    decoder = wire.Decoder(arrays, make_tensor=trusted_tensor,
                           make_module=lambda node, dec: RemoteModule.mirror(session, node, dec))
    try:
        value = decoder(reply.get("value"))
        if rng and "rng" in reply:
            torch.set_rng_state(decoder(reply["rng"]))
    except wire.WireError:
        raise
    except Exception as error:  # noqa: BLE001  (plain data that makes no sense)
        raise wire.WireError(f"the sandbox's answer could not be read: {error}") from None
    if "graph" in reply and isinstance(value, torch.Tensor) and leaves:
        return _Bridge.apply(session, int(reply["graph"]), value, *leaves)
    return value


class _Bridge(torch.autograd.Function):
    """Connects the learner's output to the inputs it was computed from: its backward asks the
    sandbox to backpropagate through the learner's own graph."""

    @staticmethod
    def forward(ctx, session, graph, value, *leaves):
        ctx.session, ctx.graph = session, graph
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output):
        encoder = wire.Encoder(strict=True)
        header = {"op": "backward", "graph": ctx.graph, "subject": "a backward pass",
                  "grad_output": encoder(grad_output)}
        reply, arrays = ctx.session.request(header, encoder.arrays)
        grads = _result(ctx.session, reply, arrays, [])
        return (None, None, None, *grads)


class RemoteFunction:
    """A learner's function, called in the sandbox."""

    def __init__(self, session, name: str):
        self._session = session
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        return remote_call(self._session, {"op": "call", "name": self.__name__}, args, kwargs)

    def python_lines(self, *args, **kwargs) -> int:
        """Lines of learner Python one call runs, counted in the sandbox (see convcourse)."""
        count = remote_call(self._session, {"op": "call", "name": self.__name__,
                                            "count_lines": True}, args, kwargs)
        if type(count) is not int:
            raise wire.WireError("the sandbox's line count is not a number")
        return count

    def timed_call(self, *args, **kwargs) -> tuple[object, float]:
        """The value of one call and the CPU time it took in the sandbox, measured by the
        grader from outside it (the sandbox's control group, or its processes in /proc): the
        learner's code can make it larger, never smaller. The request is the same as any
        call's, so the learner's code cannot tell that it is timed."""
        self._session.measure_cpu = True
        try:
            value = self(*args, **kwargs)
        finally:
            self._session.measure_cpu = False
        return value, self._session.call_cpu_seconds

    def __repr__(self) -> str:
        return f"<function {self.__name__} (runs in the sandbox)>"


class RemoteClass(RemoteFunction):
    """A learner's class: calling it builds an instance in the sandbox, with the grader's
    random state, so that seeded initial values are the ones the tests expect."""

    def __call__(self, *args, **kwargs):
        return remote_call(self._session, {"op": "call", "name": self.__name__}, args, kwargs,
                           rng=True)

    def apply(self, *args):
        """``cls.apply(*args)`` of a learner's ``torch.autograd.Function``, in the sandbox;
        gradients flow back through the learner's own ``backward``."""
        return remote_call(self._session, {"op": "call", "name": self.__name__,
                                            "method": "apply"}, args)

    def __repr__(self) -> str:
        return f"<class {self.__name__} (lives in the sandbox)>"


class RemoteModule(nn.Module):
    """The grader's mirror of a learner's ``nn.Module``: the same parameters, buffers and
    plain attributes; ``forward`` sends the current parameters with the input."""

    @classmethod
    def mirror(cls, session, node: dict, decoder) -> RemoteModule:
        kind = type(str(node.get("type", "Module"))[:100] or "Module", (cls,), {})
        module = kind()
        module._session, module._handle = session, int(node["$module"])
        for role, name, tensor_node in node.get("state", []):
            *path, leaf = str(name).split(".")
            owner = module
            for part in path:
                if part not in owner._modules:
                    owner.add_module(part, nn.Module())
                owner = owner._modules[part]
            tensor = decoder(tensor_node)
            if role == "parameter":
                owner.register_parameter(leaf, nn.Parameter(
                    tensor, requires_grad=bool(tensor_node.get("requires_grad"))))
            else:
                owner.register_buffer(leaf, tensor)
        reserved = set(dir(RemoteModule))
        for name, value_node in node.get("attributes", []):
            name = str(name)
            if name.isidentifier() and name not in reserved and not hasattr(module, name):
                setattr(module, name, decoder(value_node))
        return module

    def forward(self, *args, **kwargs):
        state = dict(self.named_parameters())
        state.update(self.named_buffers())
        return remote_call(self._session, {"op": "module_call", "module": self._handle,
                                            "subject": type(self).__name__}, args,
                           kwargs, state=state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(runs in the sandbox)"
