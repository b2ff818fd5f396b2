"""Seeded randomness that does not leak: a library function that needs repeatable random
draws (training, random crops) seeds torch's global generator inside :func:`seeded` and
gives the caller's generator state back afterwards, so calling it never changes what the
caller's own random draws will be."""

from __future__ import annotations

import contextlib
import os

import torch

from . import device_check

# cuBLAS is repeatable only with a fixed workspace; it reads this before its first call
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def seeded(seed: int):
    """Run the block with torch's global generator (CPU, and the current GPU if any)
    seeded with ``seed``; restore the generators' states after it. With CUDA, the
    block also runs :func:`deterministic`, so that one seed gives one model there
    too."""
    cuda = torch.cuda.is_available()
    devices = [torch.cuda.current_device()] if cuda else []
    with torch.random.fork_rng(devices=devices), deterministic(cuda):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def deterministic(enabled: bool = True):
    """Run the block with PyTorch's deterministic algorithms (cuDNN's too, and no
    cuDNN benchmarking, which picks kernels by timing); restore the settings after it.
    Where CUDA has no deterministic kernel for an operation (some backward passes of
    scatter, interpolation and pooling), PyTorch warns and runs the fast one
    (``warn_only``): the seed promise then holds up to that operation's rounding. The
    CPU's kernels are deterministic already."""
    if not enabled:
        yield
        return
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:]


def generator(device, seed: int) -> torch.Generator:
    """A generator seeded with ``seed`` for random draws on ``device``, the data's
    device (a CPU generator cannot draw on CUDA): the stand-in's own on the stand-in
    device of :mod:`lic_teach.device_check`."""
    if torch.device(device) == device_check.DEVICE:
        return device_check.stand_in_generator(seed)
    return torch.Generator(device=device).manual_seed(int(seed))
