"""The only language the grader and the sandbox speak: plain data.

A message is a JSON tree plus, when it carries arrays, one ``.npz`` archive read with
``allow_pickle=False``; nothing is ever unpickled. Tensors travel as arrays with their dtype,
device and ``requires_grad`` beside them; a meta tensor travels as its shape alone. A value of
any other type becomes an :class:`Opaque` stand-in that keeps only its type's name, so an
object with a rigged ``__eq__`` or ``__array__`` cannot cross. The one kind of function that
crosses is a test's probe (``convcourse.grading.probes``), by its name.

This file runs on both sides: the trusted grader imports it as ``autograder.sandboxed.wire``,
the sandbox's runner as ``wire`` (its neighbour in the folder the sandbox mounts). A sandbox
without PyTorch (a NumPy-only assignment) speaks the same language without tensors.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

try:
    import torch
except ModuleNotFoundError:  # a sandbox without PyTorch: autograder/sandbox.py, CAN_BE_ABSENT
    torch = None

from convcourse.grading.probes import PROBES, Probe

#: The largest message either side accepts (bytes of JSON plus arrays).
MAX_MESSAGE = 256 << 20


@dataclass(frozen=True)
class Budget:
    """What one message may cost its reader: bytes (of the JSON text and of the arrays), the
    number of values in the JSON tree, its depth, the length of each text, and the number of
    arrays. A message over any of them is refused with :class:`WireError` before it is used,
    so that what a sandbox sends costs the trusted grader a bounded amount of memory and time
    (the bytes alone do not bound it: 40 MB of ``[0,0,...]`` are 2 GB of Python objects)."""

    message_bytes: int = MAX_MESSAGE
    text_bytes: int = MAX_MESSAGE
    values: int = 1 << 30
    depth: int = 60
    text_length: int = 1 << 30
    arrays: int = 1 << 20


#: What the grader reads from a sandbox: replies carry one learner's result (arrays of test
#: sizes), an exception (texts of a few thousand characters), a module's state.
REPLY = Budget(message_bytes=64 << 20, text_bytes=4 << 20, values=200_000, depth=40,
               text_length=20_000, arrays=512)
#: What the sandbox reads from the grader: trusted, bounded only against mistakes.
REQUEST = Budget()
_HEAD = struct.Struct("<II")
_DTYPES = {name: getattr(torch, name, None) for name in (
    "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
    "complex64", "complex128")}
#: PyTorch's types that cross as themselves (none without PyTorch).
_TORCH = (torch.Tensor, torch.Size, torch.dtype, torch.device, torch.nn.Module) if torch else ()


class WireError(RuntimeError):
    """A message that breaks the protocol: too large, cut short, or malformed."""


class Opaque:
    """Stands in for a value that is not plain data; only its type's name crosses."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"


def opaque(type_name: str) -> Opaque:
    """An :class:`Opaque` whose class bears ``type_name``, so ``type(value).__name__`` reads
    as the learner's type in feedback."""
    cls = type(str(type_name)[:100] or "object", (Opaque,), {})
    return cls(type_name)


# --- encoding ----------------------------------------------------------------------------------

class Encoder:
    """Turns a value into a JSON tree and a list of arrays.

    ``grad_leaves`` collects, in order, the tensors that require grad: both sides build that
    list in the same order, which is how gradients find their way back.
    """

    def __init__(self, *, strict: bool, describe_module=None):
        self.arrays: list[np.ndarray] = []
        self.grad_leaves: list[torch.Tensor] = []
        self.strict = strict  # the grader's own values must be plain data: no stand-ins
        self.describe_module = describe_module

    def array(self, value: np.ndarray) -> int:
        if value.dtype.hasobject:
            raise WireError("arrays of Python objects cannot cross")
        # (np.ascontiguousarray would turn a 0-d array into shape (1,))
        self.arrays.append(value if value.flags.c_contiguous else value.copy(order="C"))
        return len(self.arrays) - 1

    def tensor(self, value: torch.Tensor) -> dict:
        dtype = str(value.dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            raise WireError(f"tensors of dtype {value.dtype} cannot cross")
        node = {"$tensor": None, "dtype": dtype, "device": str(value.device),
                "shape": list(value.shape), "requires_grad": bool(value.requires_grad),
                "parameter": isinstance(value, torch.nn.Parameter)}
        if value.requires_grad:
            self.grad_leaves.append(value)
        if value.device.type != "meta":
            node["$tensor"] = self.array(value.detach().resolve_conj().resolve_neg()
                                         .cpu().numpy())
        return node

    def __call__(self, value, depth: int = 0):
        if depth > 50:
            raise WireError("a value nested more than 50 levels deep")
        if value is None or type(value) in (bool, int, float, str):
            return value
        if isinstance(value, _TORCH):
            return self.torch_value(value)
        if isinstance(value, np.ndarray) and type(value) is np.ndarray:
            return {"$array": self.array(value)}
        if isinstance(value, np.generic) and not isinstance(value, np.object_):
            return {"$scalar": self.array(np.asarray(value))}
        if type(value) is tuple:
            return {"$tuple": [self(item, depth + 1) for item in value]}
        if type(value) is list:
            return [self(item, depth + 1) for item in value]
        if type(value) is dict and all(type(key) is str for key in value):
            return {"$dict": [[key, self(item, depth + 1)] for key, item in value.items()]}
        if isinstance(value, np.dtype):
            return {"$npdtype": value.str}
        if isinstance(value, Probe) and PROBES.get(value.name) is value:
            return {"$probe": value.name}  # a test's function of x crosses by its name
        return self.other(value)


    def torch_value(self, value) -> dict:
        """A tensor, size, dtype, device or module (only where PyTorch is there)."""
        if isinstance(value, torch.Tensor):
            return self.tensor(value)
        if isinstance(value, torch.Size):
            return {"$size": [int(size) for size in value]}
        if isinstance(value, torch.dtype):
            return {"$dtype": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {"$device": str(value)}
        if self.describe_module is not None:
            return self.describe_module(value, self)
        return self.other(value)

    def other(self, value) -> dict:
        if self.strict:
            raise WireError(f"a {type(value).__name__} cannot cross to the sandbox")
        return {"$opaque": _type_name(value)}


def _type_name(value) -> str:
    try:
        return str(type(value).__name__)[:100]
    except Exception:  # noqa: BLE001  (a hostile metaclass)
        return "object"


# --- decoding ----------------------------------------------------------------------------------

class Decoder:
    """Turns a JSON tree and its arrays back into values (see :class:`Encoder`)."""

    def __init__(self, arrays: dict[str, np.ndarray], *, make_tensor, make_module=None):
        self.arrays = arrays
        self.make_tensor = make_tensor  # (array or None, node) -> tensor
        self.make_module = make_module
        self.grad_leaves: list[torch.Tensor] = []
        self.used: set[str] = set()

    def array(self, index) -> np.ndarray:
        """Array ``index`` of the message, once: the encoder writes each array for one use,
        so a message that names one many times (each use a copy) is refused."""
        name = f"a{index}" if type(index) is int else None
        if name not in self.arrays:
            raise WireError(f"a message refers to a missing array {str(index)[:20]!r}")
        if name in self.used:
            raise WireError(f"a message refers to array {index} more than once")
        self.used.add(name)
        return self.arrays[name]

    def __call__(self, node, depth: int = 0):
        if depth > 60:
            raise WireError("a value nested too deeply")
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self(item, depth + 1) for item in node]
        if not isinstance(node, dict):
            raise WireError(f"unexpected {type(node).__name__} in a message")
        if "$tensor" in node:
            index = node["$tensor"]
            if node.get("dtype") not in _DTYPES:
                raise WireError(f"unknown tensor dtype {node.get('dtype')!r}")
            tensor = self.make_tensor(None if index is None else self.array(index), node)
            if tensor.requires_grad:
                self.grad_leaves.append(tensor)
            return tensor
        if "$array" in node:
            return self.array(node["$array"]).copy()
        if "$scalar" in node:
            return self.array(node["$scalar"])[()]
        if "$tuple" in node:
            return tuple(self(item, depth + 1) for item in node["$tuple"])
        if "$dict" in node:
            return {str(key): self(item, depth + 1) for key, item in node["$dict"]}
        if torch is None and ("$size" in node or "$dtype" in node or "$device" in node):
            raise WireError("PyTorch values cannot cross to a sandbox without PyTorch")
        if "$size" in node:
            return torch.Size(int(size) for size in node["$size"])
        if "$dtype" in node:
            return _DTYPES[node["$dtype"]] if node["$dtype"] in _DTYPES else opaque("dtype")
        if "$device" in node:
            return torch.device(str(node["$device"]))
        if "$npdtype" in node:
            return np.dtype(str(node["$npdtype"]))
        if "$module" in node and self.make_module is not None:
            return self.make_module(node, self)
        if "$probe" in node:
            if node["$probe"] not in PROBES:
                raise WireError(f"unknown probe {node['$probe']!r}")
            return PROBES[node["$probe"]].function  # the function alone, not its gradient
        if "$opaque" in node:
            return opaque(str(node["$opaque"]))
        raise WireError(f"unknown value in a message: {sorted(node)[:3]}")


def dtype_of(node: dict):
    return _DTYPES[node["dtype"]]


# --- framing -----------------------------------------------------------------------------------

def pack(header: dict, arrays: list[np.ndarray] = ()) -> bytes:
    """One frame: lengths, the JSON header, then an .npz of the arrays (if any)."""
    text = json.dumps(header).encode()
    blob = b""
    if arrays:
        buffer = io.BytesIO()
        np.savez(buffer, **{f"a{i}": array for i, array in enumerate(arrays)})
        blob = buffer.getvalue()
    if len(text) + len(blob) > MAX_MESSAGE:
        raise WireError(f"a message of {len(text) + len(blob)} bytes is too large")
    return _HEAD.pack(len(text), len(blob)) + text + blob


def unpack(text: bytes, blob: bytes,
           budget: Budget = REQUEST) -> tuple[dict, dict[str, np.ndarray]]:
    """A frame's header and arrays, each checked against ``budget``; anything malformed or
    over budget is a :class:`WireError`, never another exception."""
    if len(text) > budget.text_bytes:
        raise WireError(f"a message's JSON of {len(text)} bytes is over {budget.text_bytes}")
    try:
        header = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deeply
        raise WireError(f"a message is not JSON: {str(error)[:200]}") from None
    if not isinstance(header, dict):
        raise WireError("a message must be a JSON object")
    _check_tree(header, budget)
    arrays = {}
    if blob:
        _check_archive(blob, budget)
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except Exception as error:  # noqa: BLE001  (any malformed archive)
            raise WireError(f"a message's arrays are unreadable: {str(error)[:200]}") from None
    return header, arrays


def _check_tree(tree, budget: Budget) -> None:
    """Count a JSON tree's values and measure its depth and texts, without recursion."""
    count, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > budget.values:
            raise WireError(f"a message holds more than {budget.values} values")
        if depth > budget.depth:
            raise WireError(f"a message is nested more than {budget.depth} levels deep")
        if isinstance(node, str):
            if len(node) > budget.text_length:
                raise WireError(f"a message holds a text of {len(node)} characters (at most "
                                f"{budget.text_length})")
        elif isinstance(node, dict):
            stack += [(key, depth + 1) for key in node]
            stack += [(value, depth + 1) for value in node.values()]
        elif isinstance(node, list):
            stack += [(item, depth + 1) for item in node]


def _check_archive(blob: bytes, budget: Budget) -> None:
    """Arrays come stored, never compressed: a small compressed entry could inflate to
    gigabytes in the grader. The sizes the archive declares must fit in a message, and the
    number of arrays in the budget."""
    try:
        entries = zipfile.ZipFile(io.BytesIO(blob)).infolist()
    except zipfile.BadZipFile as error:
        raise WireError(f"a message's arrays are unreadable: {error}") from None
    if len(entries) > budget.arrays:
        raise WireError(f"a message holds {len(entries)} arrays (at most {budget.arrays})")
    if any(entry.compress_type != zipfile.ZIP_STORED for entry in entries):
        raise WireError("a message's arrays are compressed")
    if sum(entry.file_size for entry in entries) > budget.message_bytes:
        raise WireError("a message's arrays are too large")


def receive(read, budget: Budget = REQUEST) -> tuple[dict, dict[str, np.ndarray]]:
    """One frame, read with ``read(size) -> bytes`` (each side reads in its own way), within
    ``budget`` (the grader reads the sandbox's replies with :data:`REPLY`)."""
    text_size, blob_size = _HEAD.unpack(read(_HEAD.size))
    if text_size + blob_size > budget.message_bytes:
        raise WireError(f"a message of {text_size + blob_size} bytes is too large (at most "
                        f"{budget.message_bytes})")
    if text_size > budget.text_bytes:
        raise WireError(f"a message's JSON of {text_size} bytes is over {budget.text_bytes}")
    return unpack(read(text_size), read(blob_size), budget)


def read_exactly(fd: int, size: int) -> bytes:
    """Blocking read of ``size`` bytes (the sandbox's side; the grader reads with deadlines)."""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
