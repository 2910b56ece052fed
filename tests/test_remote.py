"""The stand-ins for the learner's functions and classes (autograder/remote.py), without a
sandbox: each talks to a session that is either a recorder of requests or the runner's own
request handler (autograder/sandboxed/runner.py's Server) in this process, every message
packed and read back as plain data on the way."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from autograder.remote import RemoteClass, RemoteFunction, RemoteModule, learner_exception
from autograder.sandboxed import runner, seal, wire
from convcourse.grading.checks import count_python_lines
from convcourse.grading.guard import (
    LibraryConvolutionError,
    library_convolutions,
    scipy_convolutions,
)


def through_the_wire(header: dict, arrays) -> tuple[dict, dict]:
    """A message as the other side receives it: packed into a frame and read back."""
    arrays = list(arrays.values()) if isinstance(arrays, dict) else list(arrays)
    return wire.receive(io.BytesIO(wire.pack(header, arrays)).read)


class RunnerSession:
    """A session whose sandbox is the runner's Server in this process (no cells, no seal):
    learner code is put into its namespace directly."""

    def __init__(self, learner_code: str):
        self.server = runner.Server(wire, torch, seal, scipy_convolutions, count_python_lines,
                                    alone=False, requests=-1, replies=-1)
        exec(compile(learner_code, "<cell learner>", "exec"), self.server.namespace)  # noqa: S102
        self.headers: list[dict] = []

    def request(self, header: dict, arrays) -> tuple[dict, dict]:
        header, arrays = through_the_wire(header, arrays)
        self.headers.append(header)
        return through_the_wire(*self.server.answer(header, arrays))


class CannedSession:
    """A session that records each request and answers with a reply given in advance."""

    def __init__(self, reply: dict, arrays: dict | None = None):
        self.reply, self.arrays = reply, arrays or {}
        self.requests: list[tuple[dict, dict]] = []

    def request(self, header: dict, arrays) -> tuple[dict, dict]:
        self.requests.append(through_the_wire(header, arrays))
        return self.reply, self.arrays


def test_a_call_sends_its_name_and_arguments_as_plain_data():
    session = CannedSession({"ok": True, "value": 7})
    x = np.arange(6.0).reshape(2, 3)
    assert RemoteFunction(session, "conv2d_naive")(x, None, stride=(2, 1)) == 7
    (header, arrays), = session.requests
    assert header["op"] == "call" and header["name"] == "conv2d_naive"
    assert "rng" not in header  # a function gets no random state; a class does
    args = wire.Decoder(arrays, make_tensor=None)(header["args"])
    kwargs = wire.Decoder(arrays, make_tensor=None)(header["kwargs"])
    np.testing.assert_array_equal(args[0], x)
    assert args[1] is None and kwargs == {"stride": (2, 1)}


def test_a_class_is_built_with_the_graders_random_state():
    session = CannedSession({"ok": True, "value": None})
    torch.manual_seed(3)
    RemoteClass(session, "ScratchConv2d")(1, 2, 3)
    (header, arrays), = session.requests
    sent = wire.Decoder(arrays, make_tensor=lambda array, node: torch.from_numpy(array))(
        header["rng"])
    torch.manual_seed(3)
    assert torch.equal(sent, torch.get_rng_state())


def test_the_learners_exception_comes_back_under_its_name_as_its_builtin_base():
    session = RunnerSession("class ShapeError(ValueError):\n    pass\n\n"
                            "def f(x):\n    raise ShapeError(f'bad shape {x}')\n")
    with pytest.raises(ValueError, match="bad shape 3") as caught:
        RemoteFunction(session, "f")(3)
    assert type(caught.value).__name__ == "ShapeError"
    assert type(caught.value).__module__ == "learner"
    assert "<cell learner>" in caught.value.learner_traceback


@pytest.mark.parametrize("raised", ["SystemExit", "KeyboardInterrupt"])
def test_an_exception_that_would_stop_the_grader_comes_back_as_a_runtime_error(raised):
    session = RunnerSession(f"def f():\n    raise {raised}('stop')\n")
    with pytest.raises(RuntimeError, match="stop") as caught:
        RemoteFunction(session, "f")()
    assert type(caught.value).__name__ == raised


def test_an_exception_rebuilt_from_hostile_data_is_still_an_exception():
    error = learner_exception({"type": "", "bases": ["UnicodeDecodeError", "BaseException"],
                               "message": "odd"})
    assert isinstance(error, Exception) and str(error) == "odd"  # a base that wants 5 args
    assert type(error).__name__ == "Exception"


def test_a_library_convolution_seen_in_the_sandbox_is_refused_and_reported_here():
    session = CannedSession({"ok": False, "library": ["aten::conv2d"],
                             "error": {"type": "LibraryConvolutionError", "message": "no"}})
    with library_convolutions() as seen, pytest.raises(LibraryConvolutionError):
        RemoteFunction(session, "conv2d_numpy")(np.zeros((1, 1, 3, 3)))
    assert seen == ["aten::conv2d"]


def test_an_answer_that_makes_no_sense_is_a_wire_error():
    session = CannedSession({"ok": True, "value": {"$array": 5}})
    with pytest.raises(wire.WireError, match="missing array"):
        RemoteFunction(session, "f")()
    with pytest.raises(wire.WireError, match="line count"):
        RemoteFunction(CannedSession({"ok": True, "value": "many"}), "f").python_lines()


def test_values_come_back_as_the_learners_function_computed_them():
    session = RunnerSession("import numpy as np\n\n"
                            "def double(x, *, by=2):\n    return {'out': x * by, 'n': x.ndim}\n")
    x = np.arange(4, dtype=np.float32)
    back = RemoteFunction(session, "double")(x, by=3)
    np.testing.assert_array_equal(back["out"], x * 3)
    assert back["out"].dtype == np.float32 and back["n"] == 1


def test_gradients_flow_back_through_the_learners_own_graph():
    session = RunnerSession("def scale(x, w):\n    return (x * w).sum(dim=0) ** 2\n")
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, dtype=torch.float64, requires_grad=True)
    out = RemoteFunction(session, "scale")(x, w)
    assert out.requires_grad and out.grad_fn is not None
    out.sum().backward()
    x0, w0 = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    ((x0 * w0).sum(dim=0) ** 2).sum().backward()
    torch.testing.assert_close(x.grad, x0.grad)
    torch.testing.assert_close(w.grad, w0.grad)
    assert [h["op"] for h in session.headers] == ["call", "backward"]


LEARNER_MODULE = """
import torch
from torch import nn


class Scale(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = size
        self.weight = nn.Parameter(torch.randn(size))
        self.register_parameter("bias", None)
        self.register_buffer("calls", torch.zeros(1))

    def forward(self, x):
        return x * self.weight
"""


def test_a_learners_module_is_mirrored_and_trained_here():
    session = RunnerSession(LEARNER_MODULE)
    module = RemoteClass(session, "Scale")(3)
    assert isinstance(module, RemoteModule) and type(module).__name__ == "Scale"
    assert module.size == 3 and module.bias is None
    assert [name for name, _ in module.named_parameters()] == ["weight"]
    assert [name for name, _ in module.named_buffers()] == ["calls"]
    with torch.no_grad():
        module.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))  # the grader's parameters are sent
    x = torch.ones(2, 3)
    out = module(x)
    torch.testing.assert_close(out, torch.tensor([[1.0, 2.0, 3.0]] * 2))
    out.sum().backward()
    torch.testing.assert_close(module.weight.grad, torch.tensor([2.0, 2.0, 2.0]))
    assert [h["op"] for h in session.headers] == ["call", "module_call", "backward"]
