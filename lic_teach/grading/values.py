"""Plain values across the wall between a student's kernel and the grader's judge.

The judge (:mod:`.judge`) never runs the student's code and never unpickles what the
kernel sends: the kernel (:mod:`.serve`) writes each value as tagged JSON with its
arrays as raw bytes, and :func:`decode` rebuilds only what it recognises, each with an
exact type check. What a value may be:

- ``None``, ``bool``, ``int``, ``float``, ``complex``, ``Fraction``, ``str``,
  ``bytes``; lists,
  tuples, sets, dicts of them; numpy scalars and arrays and torch tensors of a numeric
  dtype (a tensor keeps its ``requires_grad`` and whether it is a ``Parameter``);
  ``torch.Size``, ``torch.dtype``, ``torch.device``;
- a ``torch.nn.Module`` of a class of ``torch`` or ``lic_teach`` whose state is all
  plain (a layer, a book model): rebuilt in the judge as pickle would rebuild it, from
  the decoded state, so that tests may change its weights and run it;
- a reference to an argument of the call that produced it (a parameter or sub-module of
  a module the judge passed), so that identity checks hold;
- anything else (a function, an object of the student's class, a subclass of ``float``
  or of ``Tensor`` whose operators might lie) stays in the kernel: the judge gets a
  *handle* it can only call or ask for attributes, each answer again a value.

A subclass is never taken for its base: ``type(v) is float``, not ``isinstance``. The
encoder runs in the student's kernel, whose code may have replaced it; that changes
nothing the judge trusts, since :func:`decode` checks every byte it is given.
"""

from __future__ import annotations

import collections
import fractions
import importlib
import json
import math
import struct

import numpy as np
import torch

MAX_MESSAGE = 2**29  # a response larger than this is refused (512 MiB)
MAX_DEPTH = 64  # nesting of lists, dicts and modules
NUMERIC_KINDS = "biufc"  # numpy dtype kinds: bool, int, uint, float, complex
TRUSTED_MODULES = ("torch.", "lic_teach.")  # whose nn.Module classes travel by value
TORCH_DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (
        torch.bool,
        torch.uint8,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
        torch.complex64,
        torch.complex128,
    )
}


MISSING = object()  # what the kernel answers for a variable the notebook lacks


class Unencodable(Exception):
    """A value that cannot travel as plain data (it becomes a handle)."""


class DecodeError(ValueError):
    """Bytes from the kernel that are not a well-formed value."""


# ---------------------------------------------------------------- kernel side: encode


class Encoder:
    """Turns one value into ``(json, blobs)``; ``handle(obj)`` gives the id of an
    object kept in the kernel (``None``: nothing may become a handle, as inside a
    module's state); ``references`` maps ``id(obj)`` to a reference of an argument."""

    def __init__(self, handle=None, references=None):
        self.handle, self.references = handle, references or {}
        self.blobs: list[bytes] = []

    def blob(self, data: bytes) -> int:
        self.blobs.append(bytes(data))
        return len(self.blobs) - 1

    def encode(self, value, depth: int = 0):
        """The tagged JSON of ``value``."""
        if depth > MAX_DEPTH:
            raise Unencodable("nested too deeply")
        if id(value) in self.references and not _is_atom(value):
            return ["ref", *self.references[id(value)]]
        try:
            return self._plain(value, depth)
        except Unencodable:
            if self.handle is None:
                raise
            return self.handle(value)

    def _plain(self, value, depth):
        kind = type(value)
        if value is None or kind is bool:
            return ["atom", value]
        if kind is int:
            return ["int", str(value)]
        if kind is float:
            return ["float", repr(value)]
        if kind is complex:
            return ["complex", repr(value.real), repr(value.imag)]
        if kind is str:
            return ["str", value]
        if kind is fractions.Fraction:
            return ["fraction", str(value.numerator), str(value.denominator)]
        if kind in (bytes, bytearray):
            return ["bytes", self.blob(value)]
        if kind in (list, tuple, set, frozenset):
            items = [self.encode(v, depth + 1) for v in value]
            return [kind.__name__, items]
        if kind in (dict, collections.OrderedDict):
            items = [
                [self.encode(k, depth + 1), self.encode(v, depth + 1)]
                for k, v in value.items()
            ]
            return ["dict" if kind is dict else "odict", items]
        if kind is torch.Size:
            return ["size", [int(n) for n in value]]
        if kind is torch.dtype:
            return ["dtype", str(value).removeprefix("torch.")]
        if kind is torch.device:
            return ["device", str(value)]
        if (
            kind is np.ndarray
            or isinstance(value, np.generic)
            and kind.__module__ == "numpy"
        ):
            return self._array(value)
        if kind in (torch.Tensor, torch.nn.Parameter):
            return self._tensor(value)
        if _is_generator(value):
            return ["list", [self.encode(v, depth + 1) for v in value]]
        if isinstance(value, torch.nn.Module):
            return self._module(value, depth)
        raise Unencodable(f"a {kind.__module__}.{kind.__qualname__}")

    def _array(self, value):
        array = np.asarray(value)
        if array.dtype.kind not in NUMERIC_KINDS or array.dtype.hasobject:
            raise Unencodable(f"an array of {array.dtype}")
        data = np.ascontiguousarray(array).tobytes()
        tag = "ndarray" if type(value) is np.ndarray else "npscalar"
        return [tag, array.dtype.str, list(array.shape), self.blob(data)]

    def _tensor(self, value):
        tensor = value.detach().cpu().contiguous()
        name = str(tensor.dtype).removeprefix("torch.")
        if name not in TORCH_DTYPES:
            raise Unencodable(f"a tensor of {tensor.dtype}")
        raw = tensor.view(torch.uint8) if tensor.dim() else tensor.reshape(1)
        data = raw.view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        return [
            "tensor",
            name,
            list(tensor.shape),
            self.blob(data),
            bool(value.requires_grad),
            type(value) is torch.nn.Parameter,
        ]

    def _module(self, module, depth):
        kind = type(module)
        if not is_trusted(kind.__module__):
            raise Unencodable(f"a module of class {kind.__qualname__}")
        inner = Encoder(None, self.references)  # a module's state holds no handle
        inner.blobs = self.blobs
        state = [[key, inner.encode(v, depth + 1)] for key, v in vars(module).items()]
        return ["module", kind.__module__, kind.__qualname__, state]


def _is_atom(value) -> bool:
    return value is None or type(value) in (bool, int, float, str)


def _is_generator(value) -> bool:
    import types

    return isinstance(value, (types.GeneratorType, map, filter, zip))


def to_bytes(tagged, blobs: list[bytes]) -> bytes:
    """One message: the JSON's length, the JSON (with each blob's length), the blobs."""
    header = json.dumps([tagged, [len(b) for b in blobs]]).encode()
    return struct.pack(">Q", len(header)) + header + b"".join(blobs)


def encode(value, handle=None, references=None) -> bytes:
    """``value`` as one message (see :func:`to_bytes`); objects that cannot travel
    become ``handle(obj)`` (an ``Unencodable`` error where ``handle`` is None)."""
    encoder = Encoder(handle, references)
    tagged = encoder.encode(value)
    return to_bytes(tagged, encoder.blobs)


# ------------------------------------------------------------------ judge side: decode


def decode(message: bytes, handle=None, reference=None):
    """The value of one message from the kernel, checked: ``handle(entry)`` makes the
    judge's stand-in for an object kept in the kernel, ``reference(entry)`` resolves a
    reference to an argument. Raises :class:`DecodeError` for anything malformed."""
    if len(message) > MAX_MESSAGE:
        raise DecodeError("the answer is too large")
    try:
        (length,) = struct.unpack(">Q", message[:8])
        tagged, sizes = json.loads(message[8 : 8 + length])
        if not (
            isinstance(sizes, list) and all(type(n) is int and n >= 0 for n in sizes)
        ):
            raise DecodeError("bad blob sizes")
        blobs, at = [], 8 + length
        for n in sizes:
            blobs.append(message[at : at + n])
            at += n
        if at != len(message):
            raise DecodeError("the blobs do not fill the message")
        return _Decoder(blobs, handle, reference).value(tagged, 0)
    except DecodeError:
        raise
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        struct.error,
        RecursionError,
    ) as error:
        raise DecodeError(f"malformed answer ({type(error).__name__})") from None


class _Decoder:
    def __init__(self, blobs, handle, reference):
        self.blobs, self.handle, self.reference = blobs, handle, reference

    def value(self, tagged, depth):
        if depth > MAX_DEPTH or not isinstance(tagged, list) or not tagged:
            raise DecodeError("malformed value")
        tag, args = tagged[0], tagged[1:]
        method = getattr(self, f"_{tag}", None) if isinstance(tag, str) else None
        if method is None:
            raise DecodeError(f"unknown tag {str(tag)[:20]!r}")
        return method(depth, *args)

    def _blob(self, index) -> bytes:
        if type(index) is not int:
            raise DecodeError("bad blob index")
        return self.blobs[index]

    def _atom(self, depth, value):
        if value is not None and type(value) is not bool:
            raise DecodeError("bad atom")
        return value

    def _int(self, depth, text):
        if type(text) is not str or len(text) > 4300:
            raise DecodeError("bad int")
        return int(text)

    def _float(self, depth, text):
        return _float(text)

    def _complex(self, depth, real, imag):
        return complex(_float(real), _float(imag))

    def _fraction(self, depth, numerator, denominator):
        return fractions.Fraction(
            self._int(depth, numerator), self._int(depth, denominator)
        )

    def _str(self, depth, text):
        if type(text) is not str:
            raise DecodeError("bad str")
        return text

    def _bytes(self, depth, index):
        return self._blob(index)

    def _items(self, items, depth):
        if type(items) is not list:
            raise DecodeError("bad items")
        return [self.value(v, depth + 1) for v in items]

    def _list(self, depth, items):
        return self._items(items, depth)

    def _tuple(self, depth, items):
        return tuple(self._items(items, depth))

    def _set(self, depth, items):
        return set(self._items(items, depth))

    def _frozenset(self, depth, items):
        return frozenset(self._items(items, depth))

    def _pairs(self, items, depth):
        if type(items) is not list or any(
            type(p) is not list or len(p) != 2 for p in items
        ):
            raise DecodeError("bad dict")
        return [(self.value(k, depth + 1), self.value(v, depth + 1)) for k, v in items]

    def _dict(self, depth, items):
        return dict(self._pairs(items, depth))

    def _odict(self, depth, items):
        return collections.OrderedDict(self._pairs(items, depth))

    def _size(self, depth, dims):
        return torch.Size(_shape(dims))

    def _dtype(self, depth, name):
        if name not in TORCH_DTYPES:
            raise DecodeError("bad dtype")
        return TORCH_DTYPES[name]

    def _device(self, depth, name):
        if type(name) is not str or len(name) > 40:
            raise DecodeError("bad device")
        return torch.device(name)

    def _numpy(self, dtype, shape, index):
        dtype = np.dtype(dtype) if type(dtype) is str else None
        if dtype is None or dtype.kind not in NUMERIC_KINDS or dtype.hasobject:
            raise DecodeError("bad array dtype")
        shape = _shape(shape)
        data = self._blob(index)
        if len(data) != math.prod(shape) * dtype.itemsize:
            raise DecodeError("array size does not match its shape")
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()

    def _ndarray(self, depth, dtype, shape, index):
        return self._numpy(dtype, shape, index)

    def _npscalar(self, depth, dtype, shape, index):
        array = self._numpy(dtype, shape, index)
        if array.shape != ():
            raise DecodeError("a numpy scalar has no shape")
        return array[()]

    def _tensor(self, depth, name, shape, index, requires_grad, parameter):
        if name not in TORCH_DTYPES or type(requires_grad) is not bool:
            raise DecodeError("bad tensor")
        dtype, shape, data = TORCH_DTYPES[name], _shape(shape), self._blob(index)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(data) != math.prod(shape) * itemsize:
            raise DecodeError("tensor size does not match its shape")
        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else None
        tensor = (
            raw.view(dtype).reshape(shape).clone()
            if raw is not None
            else torch.empty(shape, dtype=dtype)
        )
        if type(parameter) is not bool:
            raise DecodeError("bad tensor")
        if parameter:
            return torch.nn.Parameter(tensor, requires_grad=requires_grad)
        return (
            tensor.requires_grad_(requires_grad)
            if tensor.is_floating_point()
            else tensor
        )

    def _module(self, depth, module_name, qualname, state):
        cls = trusted_module_class(module_name, qualname)
        if type(state) is not list or any(
            type(p) is not list or len(p) != 2 or type(p[0]) is not str for p in state
        ):
            raise DecodeError("bad module state")
        decoded = {key: self.value(v, depth + 1) for key, v in state}
        module = cls.__new__(cls)
        try:  # as pickle rebuilds a module: its class, then its decoded state
            module.__setstate__(decoded)
        except Exception as error:
            raise DecodeError(f"cannot rebuild a {qualname}: {error}") from None
        return module

    def _missing(self, depth):
        return MISSING

    def _ref(self, depth, *where):
        if self.reference is None:
            raise DecodeError("a reference outside a call")
        return self.reference(where)

    def _handle(self, depth, *entry):
        if self.handle is None:
            raise DecodeError("a handle where only values may be")
        return self.handle(entry)

    def _error(self, depth, kind, message):
        if type(kind) is not str or type(message) is not str:
            raise DecodeError("bad error")
        raise StudentError(kind[:80], message[:2000])


class StudentError(Exception):
    """An exception the student's code raised in the kernel (its type's name and its
    message, as text)."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind


def _float(text) -> float:
    if type(text) is not str or len(text) > 40:
        raise DecodeError("bad float")
    return float(text)


def _shape(dims) -> tuple[int, ...]:
    if type(dims) is not list or len(dims) > 32:
        raise DecodeError("bad shape")
    if any(type(n) is not int or n < 0 for n in dims):
        raise DecodeError("bad shape")
    if math.prod(dims) > MAX_MESSAGE:
        raise DecodeError("bad shape")
    return tuple(dims)


def is_trusted(module_name) -> bool:
    """Whether ``module_name`` is a module of torch or lic_teach (never of the grader
    itself), whose module classes travel by value."""
    return (
        type(module_name) is str
        and module_name.startswith(TRUSTED_MODULES)
        and not module_name.startswith("lic_teach.grading")
    )


def trusted_module_class(module_name, qualname) -> type:
    """The ``torch.nn.Module`` subclass ``module_name.qualname`` of a trusted module
    (:func:`is_trusted`), or :class:`DecodeError`."""
    if not is_trusted(module_name) or type(qualname) is not str:
        raise DecodeError("a module of an untrusted class")
    try:
        cls = importlib.import_module(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError):
        raise DecodeError(f"no class {module_name}.{qualname}") from None
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise DecodeError(f"{qualname} is not a module class")
    return cls
