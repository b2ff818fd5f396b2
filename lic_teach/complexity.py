"""What a network costs to run: multiply-accumulates (MACs), counted by running it.

PyTorch's ``torch.utils.flop_counter.FlopCounterMode`` records the floating-point
operations of every matrix product and convolution (transposed ones included) as the
module runs; a MAC is two of them. Element-wise work (biases, GDN's square and square
root, activations) is not counted: it is a small share of a convolutional decoder's cost,
and papers that count FLOPs disagree on it. No table of layer formulas to keep in step
with the code: what runs is what is counted.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one call ``module(*inputs)`` (no gradients)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def macs_per_pixel(module: nn.Module, latent_shape: tuple[int, ...], pixels: int | None = None) -> float:
    """MACs per image pixel of a decoder run on a zero latent of ``latent_shape``
    (``[1, M, h, w]``). ``pixels`` defaults to the height times the width of what the
    module returns (an image ``[1, 3, H, W]``); give it for modules that return anything
    else, such as a hyper-synthesis whose output sits at the latent's resolution."""
    parameter = next(module.parameters())
    latent = torch.zeros(latent_shape, dtype=parameter.dtype, device=parameter.device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        output = module(latent)
    if pixels is None:
        if not (isinstance(output, torch.Tensor) and output.dim() == 4):
            raise ValueError("the module does not return an image [1, 3, H, W]: give the pixel count")
        pixels = output.shape[-2] * output.shape[-1]
    return counter.get_total_flops() / 2 / pixels
