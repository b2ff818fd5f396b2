"""Seeded randomness that does not leak: a library function that needs repeatable random
draws (training, random crops) seeds torch's global generator inside :func:`seeded` and
gives the caller's generator state back afterwards, so calling it never changes what the
caller's own random draws will be."""

from __future__ import annotations

import contextlib

import torch

from . import device_check


@contextlib.contextmanager
def seeded(seed: int):
    """Run the block with torch's global generator (CPU, and the current GPU if any)
    seeded with ``seed``; restore the generators' states after it."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def generator(device, seed: int) -> torch.Generator:
    """A generator seeded with ``seed`` for random draws on ``device``, the data's
    device (a CPU generator cannot draw on CUDA): the stand-in's own on the stand-in
    device of :mod:`lic_teach.device_check`."""
    if torch.device(device) == device_check.DEVICE:
        return device_check.stand_in_generator(seed)
    return torch.Generator(device=device).manual_seed(int(seed))
