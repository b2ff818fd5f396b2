"""The grader's side of grading: the exercise's tests run in a clean process that the
student's code never touched, and ask the student's kernel for values.

:func:`judge` runs each question's otter tests with an environment whose variables
live in the kernel (:mod:`.serve`): a number, an array or a tensor comes back as plain
data (:mod:`.values`), a book model or a torch layer as a module rebuilt here, and
anything else (the student's function or class) as a :class:`Remote` handle that can
only be called or asked for attributes, each answer again a value. So every
comparison and every score is computed here, by the test's own code and this process's
numpy and torch: a student who patches ``np.allclose``, returns a ``float`` that equals
everything or rewrites otter's scoring changes only their own kernel.

Gradients cross the wall too: calling a student's function on tensors that require a
gradient gives outputs whose backward pass asks the kernel for the gradients of that
call (:class:`_RemoteGradient`), so ``loss.backward()`` in a test reaches its inputs.
A module the judge passes to the student's function is sent by value and, after the
call, takes the state the call left it in (its weights and which of them train), and a
parameter or sub-module of it that the call returns is the judge's own object.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import itertools
import json
import os
import pickle
import select
import signal
import struct
import sys
import time

import torch

from . import values
from .serve import HandleRef, walk_tensors, write_message


class KernelGone(Exception):
    """The student's kernel stopped answering (it died or never reached grading)."""


class Link:
    """The judge's end of the two pipes to a kernel's :func:`.serve.serve`;
    ``alive()`` says whether the kernel's process still runs."""

    def __init__(self, requests: str, answers: str, alive):
        self.requests_path, self.alive = requests, alive
        self.answers = os.open(answers, os.O_RDONLY | os.O_NONBLOCK)
        self.requests = None
        self.buffer = b""
        self.numbers = itertools.count(1)
        self.gone = ""

    def connect(self) -> None:
        """Wait until the kernel reaches its grading cell."""
        while self.requests is None:
            try:
                self.requests = os.open(self.requests_path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:
                if error.errno != errno.ENXIO:
                    raise
                if not self.alive():
                    self._lost("the notebook ended before its grading cell")
                time.sleep(0.05)
        os.set_blocking(self.requests, True)

    def _lost(self, reason: str):
        self.gone = self.gone or reason
        raise KernelGone(self.gone)

    def ask(self, operation: str, *arguments) -> bytes:
        """Send one request; its answer's bytes (the kernel's older, late answers are
        skipped)."""
        if self.gone:
            raise KernelGone(self.gone)
        if self.requests is None:
            self.connect()
        number = next(self.numbers)
        try:
            write_message(
                self.requests, pickle.dumps((number, operation, *arguments), protocol=5)
            )
        except BrokenPipeError:
            self._lost("the notebook's kernel stopped answering")
        while True:
            message = self._message()
            (answered,) = struct.unpack(">Q", message[:8])
            if answered == number:
                return message[8:]

    def _message(self) -> bytes:
        head = self._read(8)
        (length,) = struct.unpack(">Q", head)
        if length > values.MAX_MESSAGE + 8:
            self._lost("the kernel sent an answer too large to read")
        return self._read(length)

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            ready, _, _ = select.select([self.answers], [], [], 0.5)
            if not ready:
                if not self.alive():
                    self._lost("the notebook's kernel stopped answering")
                continue
            chunk = os.read(self.answers, 2**20)
            if not chunk:
                self._lost("the notebook's kernel stopped answering")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def value(self, raw: bytes, reference=None):
        """A decoded answer, its objects as :class:`Remote` handles."""
        return values.decode(raw, handle=self._handle, reference=reference)

    def _handle(self, entry) -> Remote:
        number, kind, is_callable, bases = entry
        if type(number) is not int or type(kind) is not str or type(bases) is not list:
            raise values.DecodeError("bad handle")
        remote = (RemoteCallable if is_callable is True else Remote)(self, number, kind)
        object.__setattr__(remote, "_module_class", _module_base(bases))
        return remote

    def get(self, name: str):
        return self.value(self.ask("get", name))

    def call(self, number: int, args: tuple, kwargs: dict):
        """Call the kernel's object ``number``; see the module docstring."""
        inputs = (
            [t for t in walk_tensors((args, kwargs)) if t.requires_grad]
            if torch.is_grad_enabled()
            else []
        )
        graph = next(self.numbers) if inputs else None
        raw = self.ask("call", number, _sendable(args), _sendable(kwargs), graph)
        result, write_back, positions = self.value(
            raw, reference=lambda where: _argument_part(args, kwargs, where)
        )
        _write_back(args, kwargs, write_back)
        if graph is None or not positions:
            return result
        flat = list(walk_tensors(result))
        outputs = [flat[i] for i in positions if i < len(flat)]
        if not outputs or any(not t.is_floating_point() for t in outputs):
            return result
        graded = _RemoteGradient.apply(self, graph, len(inputs), *inputs, *outputs)
        replaced = dict(zip(positions, graded))
        return _substitute(result, iter(replaced.get(i, t) for i, t in enumerate(flat)))

    def vjp(self, graph: int, gradients) -> list:
        found = self.value(self.ask("vjp", graph, [g.detach() for g in gradients]))
        if type(found) is not list or any(
            g is not None and type(g) is not torch.Tensor for g in found
        ):
            raise values.DecodeError("gradients that are not tensors")
        return found

    def done(self) -> None:
        if self.requests is not None and not self.gone:
            try:
                write_message(self.requests, pickle.dumps((0, "done")))
            except OSError:
                pass


class Remote:
    """An object that stays in the student's kernel: attributes and items are asked
    for, each answer a value or another handle. ``isinstance(handle, nn.Module)``
    holds for the student's module classes (their nearest torch base); nothing else
    about it is believed."""

    def __init__(self, link: Link, number: int, kind: str):
        object.__setattr__(self, "_link", link)
        object.__setattr__(self, "_number", number)
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_module_class", None)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        link = object.__getattribute__(self, "_link")
        return link.value(link.ask("getattr", self._number, name))

    def __getitem__(self, key):
        return self._link.value(self._link.ask("getitem", self._number, _sendable(key)))

    def __iter__(self):
        items = self._link.value(self._link.ask("iterate", self._number))
        return iter(items if type(items) is list else [])

    def __reduce__(self):
        return HandleRef, (self._number,)

    def __repr__(self) -> str:
        return f"<the notebook's {self._kind}>"

    @property
    def __class__(self):
        return object.__getattribute__(self, "_module_class") or type(self)


class RemoteCallable(Remote):
    """A handle to a callable: the student's function, class or model."""

    def __call__(self, *args, **kwargs):
        return self._link.call(self._number, args, kwargs)


def _module_base(bases: list) -> type | None:
    """The nearest ``torch.nn`` class among a remote object's classes (qualified
    names), if it is a module."""
    if "torch.nn.modules.module.Module" not in bases:
        return None
    for name in bases:
        module_name, _, qualname = str(name).rpartition(".")
        if module_name.startswith("torch.nn."):
            try:
                return values.trusted_module_class(module_name, qualname)
            except values.DecodeError:
                continue
    return torch.nn.Module


class _RemoteGradient(torch.autograd.Function):
    """Outputs of a call in the kernel, differentiable: their backward pass asks the
    kernel for the gradients of the call's inputs (``Link.vjp``)."""

    @staticmethod
    def forward(ctx, link, graph, n_inputs, *tensors):
        ctx.link, ctx.graph = link, graph
        ctx.shapes = [t.shape for t in tensors[:n_inputs]]
        return tuple(t.detach().clone() for t in tensors[n_inputs:])

    @staticmethod
    def backward(ctx, *gradients):
        found = ctx.link.vjp(ctx.graph, gradients)
        if len(found) != len(ctx.shapes) or any(
            g is not None and g.shape != shape for g, shape in zip(found, ctx.shapes)
        ):
            raise values.DecodeError("gradients of the wrong shapes")
        return (None, None, None, *found, *([None] * len(gradients)))


def _sendable(value):
    """Arguments for pickling: tensors that need a gradient as fresh leaves (a
    tensor with a history cannot be pickled), the rest as it is."""
    if (
        isinstance(value, torch.Tensor)
        and value.requires_grad
        and type(value)
        in (
            torch.Tensor,
            torch.nn.Parameter,
        )
    ):
        return value.detach().requires_grad_()
    if type(value) in (list, tuple):
        return type(value)(_sendable(v) for v in value)
    if type(value) is dict:
        return {k: _sendable(v) for k, v in value.items()}
    return value


def _substitute(value, tensors):
    """``value`` with its tensors (in :func:`walk_tensors` order) replaced by the next
    of ``tensors``."""
    if type(value) in (torch.Tensor, torch.nn.Parameter):
        return next(tensors)
    if type(value) in (list, tuple):
        return type(value)(_substitute(v, tensors) for v in value)
    if type(value) is dict:
        return {k: _substitute(v, tensors) for k, v in value.items()}
    return value


def _argument(args, kwargs, key):
    if type(key) is int and 0 <= key < len(args):
        return args[key]
    if type(key) is str and key in kwargs:
        return kwargs[key]
    raise values.DecodeError("a reference to no argument")


def _argument_part(args, kwargs, where):
    """The judge's own parameter or sub-module that a reference names."""
    if len(where) != 3:
        raise values.DecodeError("bad reference")
    key, kind, name = where
    module = _argument(args, kwargs, key)
    parts = dict(
        module.named_modules() if kind == "module" else module.named_parameters()
    )
    if kind not in ("module", "parameter") or name not in parts:
        raise values.DecodeError("a reference to nothing")
    return parts[name]


def _write_back(args, kwargs, write_back) -> None:
    """Each module argument takes the weights and flags the call left it with."""
    if type(write_back) is not list:
        raise values.DecodeError("bad write-back")
    for entry in write_back:
        if type(entry) is not list or len(entry) != 2 or type(entry[1]) is not dict:
            raise values.DecodeError("bad write-back")
        module = _argument(args, kwargs, entry[0])
        if not isinstance(module, torch.nn.Module):
            raise values.DecodeError("a write-back to something not a module")
        state = entry[1]
        with torch.no_grad():
            for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
                new = state.get(name)
                if not (type(new) is list and len(new) == 2):
                    continue
                data, trains = new
                if type(data) not in (torch.Tensor, torch.nn.Parameter):
                    raise values.DecodeError("a write-back that is not a tensor")
                if data.shape == tensor.shape and data.dtype == tensor.dtype:
                    tensor.copy_(data)
                else:
                    tensor.data = data.detach()
                if isinstance(tensor, torch.nn.Parameter) and type(trains) is bool:
                    tensor.requires_grad_(trains)


class RemoteEnvironment(dict):
    """The notebook's variables as otter's tests look them up (``env.get(name)``),
    each asked of the kernel."""

    def __init__(self, link: Link):
        super().__init__()
        self.link = link

    def get(self, name, default=None):
        value = self.link.get(name)
        return default if value is values.MISSING else value

    def __getitem__(self, name):
        value = self.link.get(name)
        if value is values.MISSING:
            raise KeyError(name)
        return value

    def __contains__(self, name) -> bool:
        return self.link.get(name) is not values.MISSING


class _TestTimeout(BaseException):
    pass


def _on_alarm(*_):
    raise _TestTimeout()


def _mixed(seed, hidden_seed: int) -> int:
    """A test's own seed mixed with the instructor's: another, fixed, 32-bit seed."""
    text = f"{hidden_seed}:{seed}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "big")


@contextlib.contextmanager
def redrawn(hidden_seed: int | None):
    """Inside, every seed a test sets (``torch.manual_seed``, ``np.random.seed``,
    ``np.random.default_rng``, ``random.seed``) is mixed with the instructor's
    ``hidden_seed``, so hidden tests draw inputs that no one saw when they were
    published; their expected values come from the book's reference code on the same
    inputs. ``None`` changes nothing."""
    if hidden_seed is None:
        yield
        return
    import random

    import numpy as np

    saved = (torch.manual_seed, np.random.seed, np.random.default_rng, random.seed)

    def mixing(original):
        def seeded(seed=None, *args, **kwargs):
            chosen = None if seed is None else _mixed(seed, hidden_seed)
            return original(chosen, *args, **kwargs)

        return seeded

    torch.manual_seed, np.random.seed, np.random.default_rng, random.seed = (
        mixing(f) for f in saved
    )
    try:
        yield
    finally:
        torch.manual_seed, np.random.seed, np.random.default_rng, random.seed = saved


def _hidden_redrawn(test_file, hidden_seed: int | None) -> None:
    """Each hidden test case of ``test_file`` run under :func:`redrawn`."""
    for case in test_file.test_cases:
        if hidden_seed is None or not case.hidden:
            continue
        test = case.body.test_func

        @functools.wraps(test)
        def drawn(*args, _test=test, **kwargs):
            with redrawn(hidden_seed):
                return _test(*args, **kwargs)

        case.body.test_func = drawn


def run_question(
    path: str,
    environment: RemoteEnvironment,
    seconds: int,
    hidden_seed: int | None = None,
) -> list:
    """``[score, failures]`` of one question's otter tests, stopped after
    ``seconds``; its hidden tests :func:`redrawn` with ``hidden_seed``."""
    from otter.nbmeta_config import NBMetadataConfig
    from otter.test_files import create_test_file

    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)
    try:
        test_file = create_test_file(path, NBMetadataConfig())
        _hidden_redrawn(test_file, hidden_seed)
        test_file.run(environment)
        signal.alarm(0)
    except _TestTimeout:
        return [0, f"its tests ran past {seconds} s and were stopped"]
    except Exception as error:  # noqa: BLE001 - reported as the question's failure
        signal.alarm(0)
        return [0, f"its tests stopped with {type(error).__name__}: {error}"]
    failed = [
        (case.test_case.failure_message or case.message.strip().splitlines()[-1])
        + (" (a hidden test)" if case.test_case.hidden else "")
        for case in test_file.test_case_results
        if not case.passed
    ]
    return [test_file.score, "; ".join(failed)]


def judge(phase: dict, alive) -> dict:
    """Scores ``{question: [score, failures]}`` of the tests ``phase["tests"]``
    (question -> test file), the kernel reached through the pipes
    ``phase["requests"]`` and ``phase["answers"]`` while ``alive()``; each question's
    tests stopped after ``phase["seconds"]``."""
    link = Link(phase["requests"], phase["answers"], alive)
    try:  # the student's cells run first: the parent's total timeout bounds them
        link.connect()
    except KernelGone as gone:
        return {question: [0, str(gone)] for question in phase["tests"]}
    environment = RemoteEnvironment(link)
    results = {}
    for question, path in phase["tests"].items():
        results[question] = run_question(
            path, environment, phase["seconds"], phase.get("hidden_seed")
        )
    link.done()
    return results


def process_alive(pid: int):
    """A function that says whether process ``pid`` still runs (not a zombie)."""

    def alive() -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rpartition(")")[2].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    return alive


def main(spec_path: str) -> int:
    """``python -m lic_teach.grading --judge spec.json``: judge each of
    ``spec["phases"]`` (its grading cells, in order) while process ``spec["pid"]``
    runs, sending each phase's scores as one JSON line as soon as it is judged, down
    the pipe ``spec["scores"]`` (a descriptor only this process holds; it is not
    dumpable, so no other process of its user opens it through ``/proc``)."""
    from .kernel import undumpable

    undumpable()
    with open(spec_path) as f:
        spec = json.load(f)
    alive = process_alive(spec["pid"])
    with open(spec["scores"], "w") as channel:
        for phase in spec["phases"]:
            settings = {
                "seconds": spec["seconds"],
                "hidden_seed": spec.get("hidden_seed"),
            }
            results = judge({**phase, **settings}, alive)
            channel.write(json.dumps({"phase": phase["phase"], "results": results}))
            channel.write("\n")
            channel.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover - run through lic_teach.grading
    sys.exit(main(sys.argv[1]))
