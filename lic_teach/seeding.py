"""Seeded randomness that does not leak: a library function that needs repeatable random
draws (training, random crops) seeds torch's global generator inside :func:`seeded` and
gives the caller's generator state back afterwards, so calling it never changes what the
caller's own random draws will be."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def seeded(seed: int):
    """Run the block with torch's global generator (CPU, and the current GPU if any)
    seeded with ``seed``; restore the generators' states after it."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
