"""What assignment 4 asks of the wire and the stand-ins: a probe crosses by name, a 0-d array
stays 0-d, a learner's autograd Function is called as ``.apply`` with gradients flowing back
(several backward passes through one forward, as gradcheck does), and the NumPy-only rule of a
check holds in the sandbox's process too."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_remote import RunnerSession, through_the_wire

from autograder.remote import RemoteClass, RemoteFunction
from autograder.sandboxed import wire
from convcourse.grading.guard import TorchOperationError, torch_operations
from convcourse.grading.probes import PROBES


def round_trip(value):
    encoder = wire.Encoder(strict=True)
    header, arrays = through_the_wire({"value": encoder(value)}, encoder.arrays)
    return wire.Decoder(arrays, make_tensor=None)(header["value"])


def test_a_probe_crosses_by_its_name_and_arrives_as_its_function_alone():
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5))
    for probe in PROBES.values():
        arrived = round_trip(probe)
        assert arrived is probe.function and not hasattr(arrived, "gradient")
        assert arrived(x) == probe(x)
    assert round_trip([PROBES["cubes"], 2])[1] == 2
    with pytest.raises(wire.WireError):
        wire.Decoder({}, make_tensor=None)({"$probe": "os.system"})


def test_zero_dimensional_arrays_and_scalars_keep_their_shape():
    assert round_trip(np.array(2.5)).shape == ()
    assert round_trip(np.float32(1.5)) == np.float32(1.5)
    assert round_trip(np.float32(1.5)).dtype == np.float32


class Session(RunnerSession):
    """The runner's Server in this process, with the NumPy-only rule available to it."""

    def __init__(self, learner_code: str):
        super().__init__(learner_code)
        self.server.torch_operations = torch_operations


SQUARE = '''
import torch

class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return scale * x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 2 * ctx.scale * x * grad_output, None
'''


def test_a_learners_function_runs_as_apply_and_passes_gradcheck_through_the_wire():
    square = RemoteClass(Session(SQUARE), "Square")
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    out = square.apply(x, 3.0)
    torch.testing.assert_close(out, 3 * x.detach() ** 2)
    (grad,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(grad, 6 * x.detach())
    # gradcheck's fast mode: several backward passes through the same forward
    assert torch.autograd.gradcheck(lambda t: square.apply(t, 3.0), (x,), fast_mode=True)


NUMPY_ONLY = '''
import numpy as np
import torch

def with_numpy(a):
    return a * 2

def with_torch(a):
    return torch.from_numpy(a).mul(2).numpy()
'''


def test_the_numpy_only_rule_of_a_check_holds_in_the_sandbox():
    session = Session(NUMPY_ONLY)
    a = np.arange(3.0)
    with torch_operations() as used:
        np.testing.assert_array_equal(RemoteFunction(session, "with_numpy")(a), 2 * a)
        with pytest.raises(TorchOperationError):
            RemoteFunction(session, "with_torch")(a)
    assert session.headers[-1]["numpy_only"] is True
    assert used and "aten" in used[0]  # reported to the trusted side's guard
    np.testing.assert_array_equal(RemoteFunction(session, "with_torch")(a), 2 * a)  # no rule
