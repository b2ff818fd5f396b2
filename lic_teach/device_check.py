"""A second device that runs on the CPU: device mistakes caught without a GPU.

Code written and tested on a CPU can still fail on a GPU runtime, where the model lives
on ``cuda`` and an image or a random generator left on the CPU meets it in one
operation. This module lends the CPU a stand-in for that second device. A tensor on the
stand-in (:class:`StandInTensor`) holds ordinary CPU values, and every operation on it
runs on the CPU, but PyTorch sees it on a device of its own (``meta``, the one device
that needs no hardware), so it behaves as a CUDA tensor does towards CPU tensors:

- an operation that mixes a stand-in tensor with a CPU tensor that is not a 0-dim scalar
  raises :class:`DeviceMixError`, naming the operation (as CUDA refuses ``cuda`` and
  ``cpu`` operands). As on CUDA, ``copy_`` between the two devices and CPU index
  tensors are allowed;
- ``.numpy()`` (so ``np.asarray`` too) of a stand-in tensor raises: call ``.cpu()``;
- a random draw on the stand-in device with a CPU ``torch.Generator``, or on the CPU
  with a stand-in generator (:func:`stand_in_generator`), raises.

Within :func:`stand_in` (a context manager) or after :func:`activate` (for a whole
process, such as a notebook's kernel: ``budget()`` calls it when
``LIC_TEACH_CHECK_DEVICES=1``), ``x.to(DEVICE)``, ``module.to(DEVICE)``, factory
functions given ``device=DEVICE`` and ``x.to("cuda")`` / ``x.cuda()`` all put tensors
on the stand-in, and ``x.cpu()`` brings them back.

What it cannot catch: anything CUDA does differently from the CPU besides devices
(precision, non-deterministic kernels, asynchronous execution and so timing without
``torch.cuda.synchronize()``, memory), code that asks whether the device is ``cuda``
(the stand-in is ``meta``), and code that never runs with the stand-in's device.
"""

from __future__ import annotations

import contextlib
import weakref

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

DEVICE = torch.device("meta")  # what the stand-in looks like to PyTorch
CPU = torch.device("cpu")
ENV_VAR = "LIC_TEACH_CHECK_DEVICES"


class DeviceMixError(RuntimeError):
    """An operation mixed the stand-in device with the CPU, as CUDA would refuse."""


class StandInTensor(torch.Tensor):
    """A tensor on the stand-in device: ``elem``, a CPU tensor, holds its values."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        if elem.device.type != "cpu" or isinstance(elem, StandInTensor):
            raise TypeError("a stand-in tensor wraps a plain CPU tensor")
        wrapper = torch.Tensor._make_wrapper_subclass(
            cls,
            elem.size(),
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            layout=elem.layout,
            device=DEVICE,
            requires_grad=elem.requires_grad,
        )
        wrapper.elem = elem
        return wrapper

    def __repr__(self, *, tensor_contents=None):
        return f"{self.elem!r} (on the stand-in device)"

    def __format__(self, spec: str) -> str:
        """As a CUDA tensor formats: a scalar by its value (``f"{t:.3f}"``)."""
        if self.dim() == 0:
            return format(self.item(), spec)
        return format(repr(self), spec)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default and _is(CPU, kwargs.get("device")):
            return func(args[0].elem, **kwargs)
        cpu = [
            t
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
            and not isinstance(t, StandInTensor)
            and t.dim() > 0
        ]
        if cpu and func not in _CROSS_DEVICE:
            shapes = ", ".join(str(tuple(t.shape)) for t in cpu)
            raise DeviceMixError(
                f"{func} mixes tensors on the stand-in device (where the model is) "
                f"with CPU tensors of shape {shapes}: move them to the model's device"
            )
        args, kwargs = tree_map(_unwrap, (args, kwargs))
        if _is(DEVICE, kwargs.get("device")):
            kwargs["device"] = CPU
        return tree_map(_wrap, func(*args, **kwargs))


# As on CUDA: a copy between devices, and CPU tensors as indices
_CROSS_DEVICE = {
    torch.ops.aten.copy_.default,
    torch.ops.aten._to_copy.default,
    torch.ops.aten.index.Tensor,
    torch.ops.aten.index_put_.default,
    torch.ops.aten.index_put.default,
    torch.ops.aten._index_put_impl_.default,
}


class _ToStandIn(torch.autograd.Function):
    """A CPU tensor's copy on the stand-in device, differentiable as ``.to`` is."""

    @staticmethod
    def forward(ctx, x):
        return StandInTensor(x.detach().clone())

    @staticmethod
    def backward(ctx, grad):
        return grad.elem if isinstance(grad, StandInTensor) else grad


def _unwrap(value):
    return value.elem if isinstance(value, StandInTensor) else value


def _wrap(value):
    if isinstance(value, torch.Tensor) and not isinstance(value, StandInTensor):
        return StandInTensor(value)
    return value


def _is(device: torch.device, requested) -> bool:
    """Whether ``requested`` (a device, string or None) names ``device``; ``cuda``
    names the stand-in."""
    if requested is None:
        return False
    kind = torch.device(requested).type
    return kind == device.type or (device == DEVICE and kind == "cuda")


# --------------------------------------------------------------- random generators

_STAND_IN_GENERATORS: weakref.WeakSet = weakref.WeakSet()


def stand_in_generator(seed: int) -> torch.Generator:
    """A generator for draws on the stand-in device: a CPU generator registered as the
    stand-in's (``seeding.generator`` gives it for the stand-in device)."""
    made = torch.Generator(device=CPU).manual_seed(int(seed))
    _STAND_IN_GENERATORS.add(made)
    return made


def _check_generators(func, args, kwargs, on_stand_in: bool) -> None:
    for value in tree_flatten((args, kwargs))[0]:
        if isinstance(value, torch.Generator):
            own = value in _STAND_IN_GENERATORS
            if on_stand_in and not own:
                raise DeviceMixError(
                    f"{getattr(func, '__name__', func)} draws on the stand-in device "
                    "with a CPU torch.Generator: make it on the data's device"
                )
            if own and not on_stand_in:
                raise DeviceMixError(
                    f"{getattr(func, '__name__', func)} draws on the CPU with the "
                    "stand-in device's generator"
                )


# ----------------------------------------------------------------------- the mode


class _StandInMode(TorchFunctionMode):
    """Puts tensors on the stand-in where code asks for ``DEVICE`` (or ``cuda``) and
    checks what PyTorch cannot see before dispatch: ``.numpy()``, ``.tolist()`` and
    random generators."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        source = args[0] if args and isinstance(args[0], torch.Tensor) else None
        standing = isinstance(source, StandInTensor)
        if func in (torch.Tensor.to, torch.Tensor.cuda):
            target, dtype = (
                (DEVICE, None)
                if func is torch.Tensor.cuda
                else torch._C._nn._parse_to(*args[1:], **kwargs)[:2]
            )
            if _is(DEVICE, target):
                if standing:
                    return source if dtype is None else source.to(DEVICE, dtype)
                return _ToStandIn.apply(source if dtype is None else source.to(dtype))
        if standing and func in (torch.Tensor.numpy, torch.Tensor.__array__):
            raise DeviceMixError(
                ".numpy() of a tensor on the stand-in device (as of a CUDA tensor): "
                "call .cpu() first"
            )
        if standing and func is torch.Tensor.tolist:
            return source.elem.tolist()
        on_stand_in = standing or _is(DEVICE, kwargs.get("device"))
        on_stand_in = on_stand_in or any(
            isinstance(t, StandInTensor) for t in tree_flatten((args, kwargs))[0]
        )
        _check_generators(func, args, kwargs, on_stand_in)
        if _is(DEVICE, kwargs.get("device")) and not standing:
            kwargs["device"] = CPU
            return tree_map(_wrap, func(*args, **kwargs))
        return func(*args, **kwargs)


class _Factories(TorchDispatchMode):
    """Tensors PyTorch makes itself on a tensor's device (the scalar of ``y[:] = 0``,
    for one) are made on the CPU and put on the stand-in, so that they hold values."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _is(DEVICE, kwargs.get("device")) and not any(
            isinstance(t, StandInTensor) for t in tree_flatten(args)[0]
        ):
            return tree_map(_wrap, func(*args, **dict(kwargs, device=CPU)))
        return func(*args, **kwargs)


_ACTIVE: list = []


@contextlib.contextmanager
def stand_in():
    """Within this block, the stand-in device is in use (see the module docstring)."""
    swap = torch.__future__.get_swap_module_params_on_conversion()
    # module.to(DEVICE) then swaps each parameter for a stand-in one, not only its data
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        with _StandInMode(), _Factories():
            yield DEVICE
    finally:
        torch.__future__.set_swap_module_params_on_conversion(swap)


def activate() -> torch.device:
    """Use the stand-in device for the rest of this process (idempotent); returns it."""
    if not _ACTIVE:
        context = stand_in()
        context.__enter__()
        _ACTIVE.append(context)
    return DEVICE
