"""What a network costs to run: multiply-accumulates (MACs), counted by running it, and
wall-clock time, measured fairly (:func:`median_seconds`, :func:`clock`).

PyTorch's ``torch.utils.flop_counter.FlopCounterMode`` records the floating-point
operations of every matrix product and convolution (transposed ones included) as the
module runs; a MAC is two of them. Element-wise work (biases, GDN's square and square
root, activations) is not counted: it is a small share of a convolutional decoder's
cost, and papers that count FLOPs disagree on it. No table of layer formulas to keep in
step with the code: what runs is what is counted. Attention is counted as the matrix
products it is (:func:`_attention_as_products`): PyTorch's fused attention kernels on
the CPU are invisible to the counter.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@contextlib.contextmanager
def _attention_as_products():
    """Inside the block, ``nn.MultiheadAttention`` and ``scaled_dot_product_attention``
    run as plain matrix products, which :class:`FlopCounterMode` counts."""
    fastpath = getattr(torch.backends, "mha", None)
    enabled = fastpath.get_fastpath_enabled() if fastpath else None
    try:
        if fastpath:
            fastpath.set_fastpath_enabled(False)
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            math_only = sdpa_kernel(SDPBackend.MATH)
        except ImportError:  # torch < 2.3
            math_only = torch.backends.cuda.sdp_kernel(
                enable_flash=False, enable_mem_efficient=False
            )
        with math_only:
            yield
    finally:
        if fastpath:
            fastpath.set_fastpath_enabled(enabled)


def macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one call ``module(*inputs)`` (no gradients), the inputs
    moved to the module's device."""
    device = next(module.parameters()).device
    inputs = [x.to(device) for x in inputs]
    with (
        torch.no_grad(),
        _attention_as_products(),
        FlopCounterMode(display=False) as counter,
    ):
        module(*inputs)
    return counter.get_total_flops() // 2


def macs_per_pixel(
    module: nn.Module, latent_shape: tuple[int, ...], pixels: int | None = None
) -> float:
    """MACs per image pixel of a decoder run on a zero latent of ``latent_shape``
    (``[1, M, h, w]``). ``pixels`` defaults to the height times the width of what the
    module returns (an image ``[1, 3, H, W]``); give it for modules that return anything
    else, such as a hyper-synthesis whose output sits at the latent's resolution."""
    parameter = next(module.parameters())
    latent = torch.zeros(latent_shape, dtype=parameter.dtype, device=parameter.device)
    with (
        torch.no_grad(),
        _attention_as_products(),
        FlopCounterMode(display=False) as counter,
    ):
        output = module(latent)
    if pixels is None:
        if not (isinstance(output, torch.Tensor) and output.dim() == 4):
            raise ValueError(
                "the module does not return an image [1, 3, H, W]: give the pixel count"
            )
        pixels = output.shape[-2] * output.shape[-1]
    return counter.get_total_flops() / 2 / pixels


def decoder_macs_per_pixel(model: nn.Module, side: int = 256) -> float:
    """MACs per pixel of what an image model's decoder runs on a ``side`` x ``side``
    image: all that ``model(x)`` runs in eval mode but the analysis transforms ``g_a``
    and ``h_a``. That is the synthesis ``g_s``, the hyper-synthesis ``h_s`` and a
    context model's context prediction and entropy parameters (the checkerboard's two
    passes), plus the small networks of a factorized entropy model (under 1% here),
    which a real decoder replaces by table lookups."""
    parameter = next(model.parameters())
    image = torch.zeros(
        1, 3, side, side, dtype=parameter.dtype, device=parameter.device
    )
    was_training = model.training
    model.eval()
    try:
        total = macs(model, image) - macs(model.g_a, image)
        if hasattr(model, "h_a"):
            with torch.no_grad():
                total -= macs(model.h_a, model.g_a(image))
    finally:
        model.train(was_training)
    return total / side**2


def clock() -> float:
    """``time.perf_counter()`` read once the GPU has finished its queued work. CUDA
    runs kernels asynchronously: without the wait, a clock read after a call would time
    the launch of its kernels, not their work. On the CPU it is the plain clock."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def median_seconds(
    calls: Sequence[Callable[[], object]], repeats: int = 5
) -> list[float]:
    """The median wall-clock seconds (:func:`clock`) of each zero-argument call in
    ``calls`` over ``repeats`` runs, after one untimed run of each (first calls pay for
    allocations, thread pools and tables). The calls take turns within each repeat, so
    a change in the machine's speed (another process, a clock that steps down) falls on
    all of them alike."""
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    for call in calls:
        call()
    spent = [[] for _ in calls]
    for _ in range(repeats):
        for times, call in zip(spent, calls):
            start = clock()
            call()
            times.append(clock() - start)
    return [statistics.median(times) for times in spent]
