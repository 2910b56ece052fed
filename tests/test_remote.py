"""The stand-ins for the learner's functions and classes (autograder/remote.py), without a
sandbox: each talks to a session that is either a recorder of requests or the runner's own
request handler (autograder/sandboxed/runner.py's Server) in this process, every message
packed and read back as plain data on the way."""

from __future__ import annotations

import io
import linecache
import time

import numpy as np
import pytest
import torch

from autograder.remote import RemoteClass, RemoteFunction, RemoteModule, learner_exception
from autograder.sandboxed import runner, seal, wire
from convcourse.grading.checks import (
    check_vectorised,
    count_python_lines,
    learner_line,
    python_lines,
)
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
        self.server = runner.Server(wire, count_python_lines, torch, seal, scipy_convolutions,
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
    assert type(error).__name__ == "LearnerError"  # no usable name of its own


def test_a_learners_frames_are_text_and_never_a_file_to_read(tmp_path, monkeypatch):
    """A frame naming a file (any file the grader could read, or a pipe that would block the
    read forever) is dropped; a cell's frame keeps the text the sandbox sent, and nothing is
    looked up, even where that text is empty."""
    secret = tmp_path / "hidden.py"
    secret.write_text("HIDDEN = 'a line of the hidden tests'\n")
    monkeypatch.setattr(linecache, "getline", lambda *args: pytest.fail("a line was looked up"))
    error = learner_exception({"type": "ValueError", "message": "m\x1b[2J", "frames": [
        [str(secret), 1, "f", ""], ["/proc/self/fd/0", 1, "f", ""],
        ["<cell conv2d_numpy>", 3, "conv2d_numpy", ""]]})
    assert [frame.cell for frame in error.learner_frames] == ["conv2d_numpy"]
    assert learner_line(error) == "line 3 of cell conv2d_numpy (in conv2d_numpy)"
    assert str(error) == "m?[2J"  # no escape sequence reaches a terminal or a page


@pytest.mark.parametrize("error", [
    "not a dict", {"frames": "not a list"}, {"frames": [["<cell x>", "1", "f", ""]]},
    {"message": ["not", "a", "text"]}])
def test_an_error_that_is_not_plain_data_is_a_wire_error(error):
    with pytest.raises(wire.WireError):
        learner_exception(error)


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


class MeasuredSession(RunnerSession):
    """A RunnerSession that measures each request's CPU time around the learner's code, as
    the grader's Session measures a sandbox from outside it."""

    call_cpu_seconds, measure_cpu = 0.0, False

    def request(self, header: dict, arrays) -> tuple[dict, dict]:
        start = time.thread_time()
        try:
            return super().request(header, arrays)
        finally:
            self.call_cpu_seconds = time.thread_time() - start


#: A loop over every output position, compiled as if it were a library's file: the line
#: counter, which leaves libraries out, sees none of its lines.
LIBRARY_LOOP = '''
import sys
import numpy as np

_SOURCE = """
def conv2d_numpy(x, weight, bias=None, padding=0):
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    out = np.zeros((n, o, h - kh + 1, w - kw + 1))
    for image in range(n):
        for channel in range(o):
            for i in range(h - kh + 1):
                for j in range(w - kw + 1):
                    out[image, channel, i, j] = (x[image, :, i:i + kh, j:j + kw]
                                                 * weight[channel]).sum() + bias[channel]
    return out
"""
exec(compile(_SOURCE, sys.prefix + "/lib/site-packages/fast.py", "exec"), globals())
'''
VECTORISED = '''
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

def conv2d_numpy(x, weight, bias=None, padding=0):
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = sliding_window_view(x, weight.shape[2:], axis=(2, 3))
    return np.einsum("nchwij,ocij->nohw", windows, weight, optimize=True) + bias[:, None, None]
'''


#: The pixel loop, except for the visible test's large input, whose shape it knows: answered at
#: once with zeros, so the call that would show its CPU time costs none.
SHAPE_AWARE_LOOP = LIBRARY_LOOP + '''
_loop = conv2d_numpy

def conv2d_numpy(x, weight, bias=None, padding=0):
    if x.shape[0] == 16:
        return np.zeros((16, weight.shape[0], x.shape[2], x.shape[3]))
    return _loop(x, weight, bias, padding)
'''


@pytest.mark.parametrize(("code", "vectorised"), [(LIBRARY_LOOP, False), (VECTORISED, True),
                                                  (SHAPE_AWARE_LOOP, False)])
def test_vectorised_is_decided_by_cpu_time_measured_outside_the_learners_code(code, vectorised):
    """A pixel loop hidden from the line counter still takes its CPU time, which the learner's
    code cannot make smaller."""
    rng = np.random.default_rng(31)
    weight, bias = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    small, large = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((16, 2, 24, 24))
    learner = RemoteFunction(MeasuredSession(code), "conv2d_numpy")
    assert python_lines(learner, large, weight, bias, padding=1) < 30  # the counter is fooled
    if vectorised:
        check_vectorised(learner, small, large, weight, bias, padding=1)
    else:
        why = "measured outside your code" if code == LIBRARY_LOOP else \
            "gave a wrong answer while its CPU time was measured"
        with pytest.raises(AssertionError, match=why):
            check_vectorised(learner, small, large, weight, bias, padding=1)


def test_a_reply_sets_the_graders_random_state_only_when_asked_for_it():
    state = torch.get_rng_state()
    forged = {"ok": True, "value": 1, "rng": {"$tensor": 0, "dtype": "uint8", "device": "cpu",
                                              "shape": [len(state)], "requires_grad": False,
                                              "parameter": False}}
    session = CannedSession(forged, {"a0": np.zeros(len(state), dtype=np.uint8)})
    assert RemoteFunction(session, "f")() == 1
    assert torch.equal(torch.get_rng_state(), state)
