"""The learner's side of grading: runs inside the bubblewrap sandbox, never outside it.

It executes the learner's cells, then answers the grader's requests (call a function, build
a module, run a backward pass) with plain data over two pipes, in the format of ``wire``. It
never sees a test, a reference output or a score: those stay with the grader. Once the cells
have run, PyTorch's convolutions are refused for good (seal.py), and every other process in the
sandbox is ended, so that no thread or child set up by the cells can compute one for a graded
call. In a sandbox without PyTorch (a NumPy-only assignment: ``absent`` in LIMITS_JSON) the
runner never imports it, and there is nothing to refuse.

Usage (the grader's, autograder/sandbox.py): ``python -I /grader/runner.py REQUESTS_FD
REPLIES_FD LIMITS_JSON``, started as root inside the sandbox (it then becomes the unprivileged
``uid`` of LIMITS_JSON) or as the sandbox's only user when the grader is not root (``uid`` -1).
It imports its neighbours in this folder (``seal``, ``wire``) as top-level modules.
"""

from __future__ import annotations

# ctypes is imported here, not where it is used: once we are the sandbox's user, the Python
# installation may be unreadable (run without bwrap, as the runner's tests do).
import contextlib
import ctypes
import errno
import linecache
import os
import resource
import signal
import sys
import traceback
from functools import partial


def limit_myself(limits: dict) -> bool:
    """Become the unprivileged user of this sandbox (a new one for each: autograder/uids.py),
    leave the grader's session keyring, and lower our resource limits for good: the learner's
    code cannot raise them again. Returns whether this process has a process namespace of its
    own (a real sandbox)."""
    sys.path[:0] = limits.pop("sys_path")
    alone = limits.pop("alone")
    uid = limits.pop("uid")
    if uid >= 0 and os.getuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    join_a_new_session_keyring()
    for name, value in limits.items():
        if value > 0 or name == "RLIMIT_CORE":
            resource.setrlimit(getattr(resource, name), (value, value))
    return alone


#: The keyctl system call's number, by machine (the 64-bit ARM and RISC-V share asm-generic's).
KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219}
KEYCTL_JOIN_SESSION_KEYRING = 1


def join_a_new_session_keyring() -> None:
    """Take a new, empty session keyring. A process keeps its session keyring across setuid
    and exec, and may use all of it: the one inherited from the grader (a login session's or a
    container's) would pass keys from every sandbox to every other, and show the grader's own.
    A kernel that refuses keyrings to this process (a seccomp filter, as Docker's) refuses
    them to the learner's code too; on another machine the inherited keyring stays."""
    number = KEYCTL.get(os.uname().machine)
    if number is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(number, KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EPERM):
            raise OSError(code, f"no new session keyring: {os.strerror(code)}")


def main(argv: list[str]) -> None:
    import json

    requests, replies, limits = int(argv[1]), int(argv[2]), json.loads(argv[3])
    absent = limits.pop("absent", [])
    alone = limit_myself(limits)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import wire

    from convcourse.grading.lines import count_python_lines

    if "torch" in absent:  # a NumPy-only assignment: no PyTorch in this sandbox at all
        Server(wire, count_python_lines, alone=alone, requests=requests, replies=replies).serve()
        return
    import seal
    import torch

    from convcourse.grading.guard import scipy_convolutions, torch_operations

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    seal.withdraw_kernel_handles(torch)
    Server(wire, count_python_lines, torch, seal, scipy_convolutions, alone=alone,
           requests=requests, replies=replies, torch_operations=torch_operations).serve()


class Server:
    """The namespace of the learner's cells and the objects handed out by handle; it reads
    requests from the file descriptor ``requests`` and writes replies to ``replies``."""

    def __init__(self, wire, count_python_lines, torch=None, seal=None, scipy_convolutions=None,
                 *, alone, requests: int, replies: int, torch_operations=None):
        # Without PyTorch (torch None) the sandbox lacks SciPy as well (autograder/sandbox.py),
        # and there is nothing to seal: no library convolution exists here.
        self.wire, self.torch, self.seal, self.alone = wire, torch, seal, alone
        self.requests, self.replies = requests, replies
        self.scipy_convolutions = scipy_convolutions or _nothing_to_refuse
        self.count_python_lines = count_python_lines
        self.torch_operations = torch_operations  # for calls that must be NumPy only
        self.torch_used: list[str] = []
        self.refused: list[str] = []  # filled by the seal's refusals, from any thread
        self.namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        self.modules: dict[int, object] = {}
        self.graphs: dict[int, tuple] = {}  # handle -> (output, leaves) for a backward pass
        self.next_handle = 0

    # --- messages ---------------------------------------------------------------------------

    def receive(self):
        return self.wire.receive(lambda size: self.wire.read_exactly(self.requests, size))

    def send(self, header: dict, arrays=()) -> None:
        self.wire.write_all(self.replies, self.wire.pack(header, list(arrays)))

    def serve(self) -> None:
        header, _ = self.receive()
        self.run_cells(header["cells"], header["names"])
        if self.seal is not None:
            self.refused = self.seal.refuse_library_convolutions(self.torch)
        if self.alone:  # all but us and the sandbox's init: the cells' children, whatever they are
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass  # there were none
        while True:
            try:
                header, arrays = self.receive()
            except EOFError:
                return
            reply, out_arrays = self.answer(header, arrays)
            self.flush()
            self.send(reply, out_arrays)

    @staticmethod
    def flush() -> None:
        """What the learner printed reaches the grader before the sandbox may be killed."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110  (a closed or replaced stream)
                pass

    # --- the learner's cells ----------------------------------------------------------------

    def run_cells(self, cells: list[dict], names: list[str]) -> None:
        outcomes = []
        for index, cell in enumerate(cells):
            self.send({"event": "cell", "index": index})
            filename = f"<cell {cell['label']}>"
            linecache.cache[filename] = (len(cell["source"]), None,
                                         cell["source"].splitlines(True), filename)
            try:
                code = compile(self.ipython_free(cell["source"]), filename, "exec")
                exec(code, self.namespace)  # noqa: S102  (the learner's code, in the sandbox)
                outcomes.append(None)
            except BaseException as error:  # noqa: BLE001  (SystemExit too: keep going)
                outcomes.append(self.error(error))
            self.flush()
        kinds = {}
        for name in names:
            value = self.namespace.get(name)
            kinds[name] = ("missing" if name not in self.namespace else
                           "class" if isinstance(value, type) else
                           "function" if callable(value) else "other")
        self.send({"event": "done", "errors": outcomes, "names": kinds})

    @staticmethod
    def ipython_free(source: str) -> str:
        """Plain Python stays as it is; cells with IPython syntax (``%timeit``, ``!pip``)
        have those lines turned into calls of a ``get_ipython()`` that does nothing."""
        try:
            compile(source, "<check>", "exec")
            return source
        except SyntaxError:
            pass
        from IPython.core.inputtransformer2 import TransformerManager

        stub = "get_ipython = globals().get('get_ipython') or (lambda: __import__('types')" \
               ".SimpleNamespace(run_line_magic=lambda *a, **k: None, " \
               "run_cell_magic=lambda *a, **k: None, system=lambda *a, **k: None, " \
               "getoutput=lambda *a, **k: []))\n"
        return stub + TransformerManager().transform_cell(source)

    def error(self, error: BaseException) -> dict:
        """An exception as plain data, with the learner's own frames only."""
        frames = [frame for frame in traceback.extract_tb(error.__traceback__)
                  if frame.filename.startswith("<cell")]
        lines = traceback.format_list(frames)
        bases = [cls.__name__ for cls in type(error).__mro__
                 if cls.__module__ == "builtins"]
        try:
            message = str(error)
        except Exception:  # noqa: BLE001  (a hostile __str__)
            message = "(the message could not be read)"
        where = [[f.filename[:200], f.lineno or 0, f.name[:100], (f.line or "")[:300]]
                 for f in frames[-5:]]  # the last few, for the feedback's "at line ..."
        return {"type": type(error).__name__[:100], "bases": bases, "message": message[:4000],
                "traceback": "".join(lines)[-8000:], "frames": where}

    # --- requests ---------------------------------------------------------------------------

    def answer(self, header: dict, arrays: dict) -> tuple[dict, list]:
        decoder = self.wire.Decoder(arrays, make_tensor=self.make_tensor)
        reply: dict = {"ok": True}
        used, before = [], len(self.refused)
        self.torch_used = []
        with self.scipy_convolutions(used):  # SciPy is absent from a real sandbox; in case
            try:
                result = self.dispatch(header, decoder, reply)
            except BaseException as error:  # noqa: BLE001
                reply = {"ok": False, "error": self.error(error)}
                result = None
        used += self.refused[before:]
        if used:
            reply["library"] = sorted(set(used))
        if self.torch_used:
            reply["torch"] = sorted(set(self.torch_used))[:5]
        if not reply["ok"]:
            return reply, []
        encoder = self.wire.Encoder(strict=False, describe_module=self.describe_module)
        try:
            reply["value"] = encoder(result)
        except Exception as error:  # noqa: BLE001  (e.g. a tensor of an unsupported dtype)
            return {"ok": False, "error": self.error(error)}, []
        torch = self.torch
        if torch is None:
            return reply, encoder.arrays
        leaves = decoder.grad_leaves
        if isinstance(result, torch.Tensor) and result.requires_grad and leaves:
            handle = self.handle()
            self.graphs[handle] = (result, leaves)
            while len(self.graphs) > 8:
                self.graphs.pop(next(iter(self.graphs)))
            reply["graph"] = handle
        if "rng" in header:
            reply["rng"] = encoder(torch.get_rng_state())
        return reply, encoder.arrays

    def dispatch(self, header: dict, decoder, reply: dict):
        op, torch = header.get("op"), self.torch
        if torch is None and (op != "call" or "rng" in header):
            raise ValueError(f"a sandbox without PyTorch cannot serve {op!r} requests")
        if op == "backward":
            # Kept for more backward passes (gradcheck runs one per output value); the oldest
            # graphs are dropped as new ones come.
            out, leaves = self.graphs[int(header["graph"])]
            grad_output = decoder(header["grad_output"])
            grads = torch.autograd.grad(out, leaves, grad_output, allow_unused=True,
                                        retain_graph=True)
            return list(grads)
        if "rng" in header:
            torch.set_rng_state(decoder(header["rng"]))
        args, kwargs = decoder(header["args"]), decoder(header["kwargs"])
        if op == "call":
            target = self.namespace[header["name"]]
            if header.get("method") == "apply":  # a torch.autograd.Function's entry point
                target = target.apply
            if header.get("count_lines"):
                target = partial(self.count_python_lines, target)
            if header.get("numpy_only"):  # the same rule as the check's, in this process
                with self.torch_operations() as used:
                    try:
                        return target(*args, **kwargs)
                    finally:
                        self.torch_used += used
            return target(*args, **kwargs)
        if op == "module_call":
            module = self.modules[int(header["module"])]
            state = decoder(header["state"])
            from torch.func import functional_call

            return functional_call(module, state, tuple(args), kwargs, strict=False)
        raise ValueError(f"unknown request {op!r}")

    def handle(self) -> int:
        self.next_handle += 1
        return self.next_handle

    def make_tensor(self, array, node):
        torch = self.torch
        if torch is None:
            raise self.wire.WireError("a tensor cannot cross to a sandbox without PyTorch")
        dtype = self.wire.dtype_of(node)
        if array is None:
            tensor = torch.empty([int(n) for n in node["shape"]], dtype=dtype, device="meta")
        else:
            tensor = torch.from_numpy(array).to(device=node["device"], dtype=dtype)
        if node.get("parameter"):
            return torch.nn.Parameter(tensor, requires_grad=bool(node["requires_grad"]))
        return tensor.requires_grad_(bool(node["requires_grad"]))

    def describe_module(self, module, encoder) -> dict:
        """A module crosses as a handle, its state (parameters and buffers, in state_dict
        order) and its plain attributes; the grader mirrors it."""
        handle = self.handle()
        self.modules[handle] = module
        parameters = dict(module.named_parameters())
        buffers = dict(module.named_buffers())
        state = []
        for name in module.state_dict(keep_vars=True):
            kind = "parameter" if name in parameters else "buffer" if name in buffers else None
            if kind:
                value = parameters.get(name, buffers.get(name))
                node = encoder.tensor(value.detach())
                node["requires_grad"] = bool(value.requires_grad)
                state.append([kind, name, node])
        attributes = [[name, None] for name, value in module._parameters.items()
                      if value is None]  # e.g. register_parameter("bias", None)
        for name, value in vars(module).items():
            if name.startswith("_") or name in parameters:
                continue
            if value is None or isinstance(value, (bool, int, float, str, tuple,
                                                   self.torch.Tensor)):
                try:
                    attributes.append([name, encoder(value)])
                except Exception:  # noqa: BLE001, S112  (not plain data: not mirrored)
                    continue
        return {"$module": handle, "type": type(module).__name__[:100], "state": state,
                "attributes": attributes}


@contextlib.contextmanager
def _nothing_to_refuse(used: list[str]):
    yield


if __name__ == "__main__":
    try:
        main(sys.argv)
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        os._exit(70)
    os._exit(0)
