"""The plain-data format between the grader and the sandbox (autograder/sandboxed/wire.py):
values survive a round trip, and nothing but plain data crosses: no pickles, no objects, no
frame larger than MAX_MESSAGE, nothing cut short."""

from __future__ import annotations

import io
import os
import struct
import zipfile

import numpy as np
import pytest
import torch

from autograder.remote import trusted_tensor
from autograder.sandboxed import wire


def frame_reader(frame: bytes):
    """``read(size)`` over one frame in memory, as wire.receive wants it."""
    stream = io.BytesIO(frame)
    return stream.read


def learner_tensor(array, node: dict) -> torch.Tensor:
    """A tensor as the sandbox's side rebuilds it: with ``requires_grad`` as sent (the
    grader's side, :func:`trusted_tensor`, keeps values only)."""
    return trusted_tensor(array, node).requires_grad_(bool(node["requires_grad"]))


def round_trip(value, *, strict: bool = True, make_tensor=learner_tensor):
    """``value`` encoded, packed into a frame, read back and decoded."""
    encoder = wire.Encoder(strict=strict)
    header = {"value": encoder(value)}
    reply, arrays = wire.receive(frame_reader(wire.pack(header, encoder.arrays)))
    return wire.Decoder(arrays, make_tensor=make_tensor)(reply["value"])


def test_nested_plain_data_and_arrays_come_back_equal_and_of_their_types():
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4).requires_grad_()
    value = {"numbers": (1, 2.5, True, None, "text"), "nested": [[np.arange(6).reshape(2, 3)]],
             "tensor": x, "meta": torch.empty(2, 5, device="meta"),
             "size": torch.Size([1, 3]), "dtype": torch.float64, "device": torch.device("cpu"),
             "npdtype": np.dtype("int16"), "scalar": np.float32(1.5),
             "complex": torch.tensor([1 + 2j], dtype=torch.complex128)}
    back = round_trip(value)
    assert list(back) == list(value)
    assert back["numbers"] == (1, 2.5, True, None, "text")
    assert type(back["nested"]) is list and type(back["nested"][0]) is list
    np.testing.assert_array_equal(back["nested"][0][0], np.arange(6).reshape(2, 3))
    assert torch.equal(back["tensor"], x.detach()) and back["tensor"].dtype == torch.float32
    assert back["tensor"].requires_grad
    assert not round_trip(x, make_tensor=trusted_tensor).requires_grad
    assert back["meta"].device.type == "meta" and back["meta"].shape == (2, 5)
    assert back["size"] == torch.Size([1, 3]) and isinstance(back["size"], torch.Size)
    assert back["dtype"] is torch.float64 and back["device"] == torch.device("cpu")
    assert back["npdtype"] == np.dtype("int16")
    assert back["scalar"] == np.float32(1.5) and back["scalar"].dtype == np.float32
    assert torch.equal(back["complex"], value["complex"])


def test_the_tensors_that_require_grad_are_listed_in_the_same_order_on_both_sides():
    a, b = torch.ones(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    encoder = wire.Encoder(strict=True)
    tree = encoder([a, torch.ones(1), {"b": b}])
    assert encoder.grad_leaves == [a, b]
    arrays = {f"a{i}": array for i, array in enumerate(encoder.arrays)}
    decoder = wire.Decoder(arrays, make_tensor=learner_tensor)
    decoder(tree)
    assert [leaf.shape for leaf in decoder.grad_leaves] == [(2,), (3,)]


def test_the_grader_refuses_to_send_anything_but_plain_data():
    class Rigged:
        def __eq__(self, other):
            return True

    with pytest.raises(wire.WireError, match="Rigged cannot cross"):
        wire.Encoder(strict=True)(Rigged())
    with pytest.raises(wire.WireError, match="Python objects"):
        wire.Encoder(strict=True)(np.array([Rigged()], dtype=object))
    with pytest.raises(wire.WireError, match="dtype"):
        wire.Encoder(strict=True)(torch.zeros(2, dtype=torch.bfloat16))
    with pytest.raises(wire.WireError, match="50 levels"):
        nested: list = []
        for _ in range(60):
            nested = [nested]
        wire.Encoder(strict=True)(nested)


def test_the_learners_objects_cross_as_their_type_name_only():
    class Sneaky:
        def __eq__(self, other):
            return True

    back = round_trip([Sneaky()], strict=False)[0]
    assert isinstance(back, wire.Opaque) and type(back).__name__ == "Sneaky"
    assert back != 1 and repr(back) == "<Sneaky object>"


def test_a_pickled_array_is_never_unpickled():
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("a0.npy", buffer.getvalue())
    with pytest.raises(wire.WireError, match="unreadable"):
        wire.unpack(b'{"value": {"$array": 0}}', blob.getvalue())


def test_compressed_or_malformed_archives_are_refused():
    compressed = io.BytesIO()
    np.savez_compressed(compressed, a0=np.zeros(1000))
    with pytest.raises(wire.WireError, match="compressed"):
        wire.unpack(b"{}", compressed.getvalue())
    with pytest.raises(wire.WireError, match="unreadable"):
        wire.unpack(b"{}", b"PK not a zip")


def test_a_header_must_be_a_json_object():
    with pytest.raises(wire.WireError, match="not JSON"):
        wire.unpack(b"{oops", b"")
    with pytest.raises(wire.WireError, match="JSON object"):
        wire.unpack(b"[1, 2]", b"")


def test_decoding_refuses_what_plain_data_cannot_mean():
    decoder = wire.Decoder({}, make_tensor=trusted_tensor)
    with pytest.raises(wire.WireError, match="missing array"):
        decoder({"$array": 0})
    with pytest.raises(wire.WireError, match="unknown tensor dtype"):
        decoder({"$tensor": None, "dtype": "object", "shape": [1], "device": "meta"})
    with pytest.raises(wire.WireError, match="unknown value"):
        decoder({"$pickle": "gASV"})
    assert type(decoder({"$dtype": "bfloat16"})).__name__ == "dtype"  # unknown: a stand-in


def test_a_frame_larger_than_the_limit_is_neither_sent_nor_read(monkeypatch):
    monkeypatch.setattr(wire, "MAX_MESSAGE", 1000)
    with pytest.raises(wire.WireError, match="too large"):
        wire.pack({"text": "x" * 2000})
    declared = struct.pack("<II", 10, 5000) + b"{}"
    with pytest.raises(wire.WireError, match="too large"):
        wire.receive(frame_reader(declared), wire.Budget(message_bytes=1000))


def test_an_archive_declaring_more_than_the_limit_is_refused():
    frame = wire.pack({}, [np.zeros(200)])
    text_size, blob_size = struct.unpack("<II", frame[:8])
    with pytest.raises(wire.WireError, match="too large"):
        wire.unpack(frame[8:8 + text_size], frame[8 + text_size:],
                    wire.Budget(message_bytes=1000))


def over(budget: wire.Budget, header: dict, arrays=()) -> str:
    """The WireError that reading this frame within ``budget`` raises."""
    with pytest.raises(wire.WireError) as refused:
        wire.receive(frame_reader(wire.pack(header, list(arrays))), budget)
    return str(refused.value)


def test_a_reply_of_many_small_values_is_refused_before_it_costs_memory():
    """40 MB of [0,0,...] are 2 GB of Python objects: the count is bounded, not only bytes."""
    assert "more than 200000 values" in over(wire.REPLY, {"value": [0] * 200_001})
    assert "is over" in over(wire.REPLY, {"value": [0] * 1_500_000})  # 4.5 MB of JSON


def test_a_reply_nested_too_deeply_is_a_wire_error_not_a_crash():
    deep = b"[" * 100_000 + b"]" * 100_000
    frame = struct.pack("<II", len(deep), 0) + deep
    with pytest.raises(wire.WireError, match="not JSON|nested"):
        wire.receive(frame_reader(frame), wire.REPLY)
    nested: list = []
    for _ in range(50):
        nested = [nested]
    assert "nested more than 40" in over(wire.REPLY, {"value": nested})


def test_a_reply_with_a_long_text_or_many_arrays_is_refused():
    assert "characters" in over(wire.REPLY, {"message": "x" * 20_001})
    assert "characters" in over(wire.REPLY, {"x" * 20_001: 1})  # keys are texts too
    assert "513 arrays" in over(wire.REPLY, {}, [np.zeros(1)] * 513)


def test_a_reply_within_the_budget_crosses_whole():
    header = {"ok": True, "value": {"$tuple": [[1.5] * 1000, "x" * 20_000]}}
    assert wire.receive(frame_reader(wire.pack(header, [np.zeros(10)])), wire.REPLY)[0] == header


def test_a_frame_cut_short_ends_the_conversation():
    frame = wire.pack({"value": 1}, [np.arange(100)])
    reading, writing = os.pipe()
    try:
        os.write(writing, frame[:len(frame) // 2])
        os.close(writing)
        with pytest.raises(EOFError):
            wire.receive(lambda size: wire.read_exactly(reading, size))
    finally:
        os.close(reading)


def test_a_frame_crosses_a_pipe_whole():
    reading, writing = os.pipe()
    try:
        wire.write_all(writing, wire.pack({"value": [1, 2]}, [np.arange(3)]))
        header, arrays = wire.receive(lambda size: wire.read_exactly(reading, size))
    finally:
        os.close(reading)
        os.close(writing)
    assert header == {"value": [1, 2]}
    np.testing.assert_array_equal(arrays["a0"], np.arange(3))


def test_an_array_is_read_once_however_often_a_reply_names_it():
    """Each use of an array is a copy: one 8 MB array named 200 times would be 1.6 GB."""
    header = {"ok": True, "value": [{"$array": 0}] * 2}
    with pytest.raises(wire.WireError, match="more than once"):
        wire.Decoder(wire.receive(frame_reader(wire.pack(header, [np.zeros(4)])), wire.REPLY)[1],
                     make_tensor=None)(header["value"])
