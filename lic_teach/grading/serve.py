"""The student's side of grading: after the student's cells, the kernel answers the
judge's requests (:mod:`.judge`) and computes nothing else.

The last cell of a graded notebook calls :func:`serve`, which reads requests from one
named pipe and writes answers to another until the judge says it is done: the value
of a variable of the notebook, an attribute of an object, a call of one of the
student's functions on the judge's arguments, the gradient of such a call's outputs.
Each answer is plain data (:mod:`.values`), so the judge, in its own process, compares
and scores. A request is pickled by the judge, which the kernel trusts; the kernel's
answers are never unpickled.

This module runs inside the student's kernel, whose code may have changed anything in
it: the judge assumes nothing of what comes back but that it decodes.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct

import torch

from . import values

MISSING = ["missing"]  # the answer for a variable the notebook does not define


class HandleRef:
    """In a request: an object the kernel keeps, by its handle's number."""

    def __init__(self, number: int):
        self.number = number


def read_message(fd: int) -> bytes | None:
    """One length-prefixed message from ``fd``; ``None`` at its end."""
    head = _read_exactly(fd, 8)
    if head is None:
        return None
    (length,) = struct.unpack(">Q", head)
    return _read_exactly(fd, length)


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 2**20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_message(fd: int, payload: bytes) -> None:
    """``payload`` with its length in front, written whole."""
    data = memoryview(struct.pack(">Q", len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


class Server:
    """The kernel's objects the judge holds handles to, and the calls whose gradients it
    may ask for."""

    def __init__(self, namespace: dict, seconds: int):
        self.namespace, self.seconds = namespace, seconds
        self.objects: dict[int, object] = {}
        self.graphs: dict[int, tuple] = {}

    def handle(self, obj) -> list:
        """The handle entry of an object kept here."""
        number = len(self.objects) + 1
        self.objects[number] = obj
        kind = type(obj)
        bases = [f"{c.__module__}.{c.__qualname__}" for c in kind.__mro__]
        return ["handle", number, kind.__qualname__, callable(obj), bases]

    def resolve(self, value):
        """``value`` with each :class:`HandleRef` replaced by its object."""
        if isinstance(value, HandleRef):
            return self.objects[value.number]
        if type(value) in (list, tuple):
            return type(value)(self.resolve(v) for v in value)
        if type(value) is dict:
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def answer(self, request) -> bytes:
        """The encoded answer to one request ``(number, operation, *arguments)``."""
        _, operation, *arguments = request
        return getattr(self, f"do_{operation}")(*arguments)

    def encode(self, value, references=None) -> bytes:
        return values.encode(value, self.handle, references)

    def do_get(self, name):
        if name not in self.namespace:
            return values.to_bytes(MISSING, [])
        return self.encode(self.namespace[name])

    def do_getattr(self, number, name):
        return self.encode(getattr(self.objects[number], name))

    def do_getitem(self, number, key):
        return self.encode(self.objects[number][self.resolve(key)])

    def do_iterate(self, number):
        return self.encode(list(self.objects[number]))

    def do_call(self, number, args, kwargs, graph: int | None):
        """Call an object on the judge's arguments. Answers ``[result, write-back,
        positions]``: the state each module argument has after the call (so the judge
        sees what the call changed), and where the result's differentiable outputs lie
        (their gradients can be asked for under ``graph``)."""
        args, kwargs = self.resolve(args), self.resolve(kwargs)
        inputs = [t for t in walk_tensors((args, kwargs)) if t.requires_grad]
        result = self.objects[number](*args, **kwargs)
        modules = {
            key: value
            for key, value in [*enumerate(args), *kwargs.items()]
            if isinstance(value, torch.nn.Module)
        }
        references = {}
        for key, module in modules.items():
            for name, sub in module.named_modules():
                references[id(sub)] = [key, "module", name]
            for name, parameter in module.named_parameters():
                references[id(parameter)] = [key, "parameter", name]
        write_back = [  # detached: new objects, so values and not references
            [
                key,
                {
                    name: [t.detach(), t.requires_grad]
                    for name, t in [*m.named_parameters(), *m.named_buffers()]
                },
            ]
            for key, m in modules.items()
        ]
        outputs = [
            (i, t) for i, t in enumerate(walk_tensors(result)) if t.grad_fn is not None
        ]
        if graph is not None and outputs and inputs:
            self.graphs[graph] = (inputs, [t for _, t in outputs])
        positions = [i for i, _ in outputs]
        return self.encode([result, write_back, positions], references)

    def do_vjp(self, graph: int, gradients):
        """The gradients of a call's inputs, given those of its outputs."""
        inputs, outputs = self.graphs[graph]
        pairs = [(o, g) for o, g in zip(outputs, gradients) if g is not None]
        found = torch.autograd.grad(
            [o for o, _ in pairs],
            inputs,
            [g for _, g in pairs],
            allow_unused=True,
        )
        return self.encode(list(found))


def walk_tensors(value):
    """The tensors in ``value`` (lists, tuples and dict values, in order): the judge
    and the kernel walk a call's arguments and results alike."""
    if type(value) in (torch.Tensor, torch.nn.Parameter):
        yield value
    elif type(value) in (list, tuple):
        for item in value:
            yield from walk_tensors(item)
    elif type(value) is dict:
        for item in value.values():
            yield from walk_tensors(item)


class _Overtime(BaseException):
    pass


def _on_alarm(*_):
    raise _Overtime()


def serve(namespace: dict, requests: str, answers: str, seconds: int) -> None:
    """Answer the judge until it is done: read each request from the pipe
    ``requests``, write its answer to ``answers``; a request that takes more than
    ``seconds`` is stopped and answered with an error."""
    server = Server(namespace, seconds)
    inbox = os.open(requests, os.O_RDONLY)
    outbox = os.open(answers, os.O_WRONLY)
    while True:
        message = read_message(inbox)
        if message is None:
            break
        request = pickle.loads(message)
        if request[1] == "done":
            break
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(seconds)
        try:
            answer = server.answer(request)
        except _Overtime:
            answer = _error("Timeout", f"ran past {seconds} s and was stopped")
        except BaseException as error:  # noqa: BLE001 - every failure is an answer
            answer = _error(type(error).__name__, str(error)[:2000])
        finally:
            signal.alarm(0)
        write_message(outbox, struct.pack(">Q", request[0]) + answer)
    os.close(outbox)
    os.close(inbox)


def _error(kind: str, message: str) -> bytes:
    return values.to_bytes(["error", kind, message], [])
