"""A small transform coder: the recipe of JPEG without its bitstream.

1. colour transform RGB -> YCbCr (JFIF), so most energy sits in the luma channel;
2. an orthonormal 8x8 block DCT-II (Ahmed, Natarajan & Rao 1974), which compacts a
   block's energy into few coefficients;
3. uniform scalar quantization with one step for every coefficient (with an orthonormal
   transform, the squared error in coefficients equals the squared error in pixels);
4. a rate estimate: the empirical entropy of the quantized values, measured separately
   for each channel and frequency (an ideal adaptive code, without side information).

Decoding inverts steps 3, 2 and 1. ``transform="none"`` skips the DCT, quantizing pixels
directly, to measure what the transform buys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .data import pad_to
from .metrics import psnr


def dct_matrix(n: int = 8) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``C`` (``C @ C.T = I``): ``C[k, i] = a_k cos(pi (2 i +
    1) k / (2 n))``, ``a_0 = sqrt(1/n)``, ``a_k = sqrt(2/n)``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    matrix[0] /= math.sqrt(2)
    return matrix


_YCBCR = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
    dtype=torch.float64,
)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """JFIF (full-range ITU-R BT.601) YCbCr of an RGB image ``[3, H, W]`` in [0, 1];
    chroma is centred on 0.5 as in JPEG."""
    y = torch.einsum("ij,jhw->ihw", _YCBCR.to(x), x)
    return y + torch.tensor([0.0, 0.5, 0.5]).to(x)[:, None, None]


def ycbcr_to_rgb(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr`."""
    centred = y - torch.tensor([0.0, 0.5, 0.5]).to(y)[:, None, None]
    return torch.einsum("ij,jhw->ihw", torch.linalg.inv(_YCBCR).to(y), centred)


def block_dct(x: torch.Tensor, n: int = 8) -> torch.Tensor:
    """2-D DCT of each ``n`` x ``n`` block of ``x [C, H, W]`` (H, W multiples of ``n``).

    Returns ``[C, H/n, W/n, n, n]``: for every block, ``C @ block @ C.T``."""
    channels, height, width = x.shape
    if height % n or width % n:
        raise ValueError(
            f"height and width must be multiples of {n}, got {height}x{width}"
        )
    blocks = x.reshape(channels, height // n, n, width // n, n).transpose(2, 3)
    matrix = dct_matrix(n).to(x)
    return matrix @ blocks @ matrix.T


def block_idct(coefficients: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`block_dct`: ``[C, H/n, W/n, n, n]`` back to ``[C, H, W]``."""
    channels, rows, cols, n, _ = coefficients.shape
    matrix = dct_matrix(n).to(coefficients)
    blocks = matrix.T @ coefficients @ matrix
    return blocks.transpose(2, 3).reshape(channels, rows * n, cols * n)


def per_frequency_entropy_bits(symbols: torch.Tensor) -> float:
    """Bits to code ``symbols [C, rows, cols, n, n]`` with one ideal code per channel
    and frequency: ``sum over (c, u, v) of count * H(histogram of that coefficient)``.
    """
    channels, rows, cols, n, _ = symbols.shape
    per_coefficient = symbols.permute(0, 3, 4, 1, 2).reshape(
        channels * n * n, rows * cols
    )
    shifted = per_coefficient - per_coefficient.min()
    span = int(shifted.max()) + 1
    index = shifted + span * torch.arange(channels * n * n)[:, None]
    counts = torch.bincount(index.flatten(), minlength=span * channels * n * n)
    counts = counts.reshape(channels * n * n, span).double()
    p = counts / (rows * cols)
    information = torch.where(
        counts > 0, -torch.log2(p.clamp_min(1e-300)), torch.zeros_like(p)
    )
    return float((counts * information).sum())


@dataclass
class TransformCode:
    """What :func:`transform_code` returns."""

    x_hat: torch.Tensor  # the decoded image [3, H, W], clamped to [0, 1]
    symbols: torch.Tensor  # the quantized coefficients [3, H/n, W/n, n, n]
    bits: float  # the rate estimate in bits
    bpp: float  # bits per pixel of the original image
    psnr: float  # dB against the input


def transform_code(
    x: torch.Tensor,
    step: float,
    n: int = 8,
    transform: str = "dct",
    color: str = "ycbcr",
) -> TransformCode:
    """Code an RGB image ``[3, H, W]`` in [0, 1] with quantization step ``step``.

    Any H and W: the image is padded by replication to multiples of ``n`` and the
    padding is cropped after decoding (its coefficients are counted in the rate, as in
    JPEG).
    """
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"expected an RGB image [3, H, W], got {tuple(x.shape)}")
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    if transform not in ("dct", "none") or color not in ("ycbcr", "rgb"):
        raise ValueError("transform must be 'dct' or 'none'; color 'ycbcr' or 'rgb'")
    height, width = x.shape[-2:]
    signal = rgb_to_ycbcr(x.double()) if color == "ycbcr" else x.double()
    padded = pad_to(signal, n) - 0.5  # level shift, as in JPEG
    coefficients = block_dct(padded, n) if transform == "dct" else as_blocks(padded, n)
    symbols = torch.round(coefficients / step).long()
    dequantized = symbols.double() * step
    decoded = (
        block_idct(dequantized) if transform == "dct" else from_blocks(dequantized)
    )
    decoded = decoded[:, :height, :width] + 0.5
    x_hat = (ycbcr_to_rgb(decoded) if color == "ycbcr" else decoded).clamp(0, 1).float()
    bits = per_frequency_entropy_bits(symbols)
    return TransformCode(
        x_hat=x_hat,
        symbols=symbols,
        bits=bits,
        bpp=bits / (height * width),
        psnr=psnr(x, x_hat),
    )


def as_blocks(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[C, H, W]`` as ``n`` x ``n`` blocks ``[C, H/n, W/n, n, n]`` (no transform)."""
    channels, height, width = x.shape
    return x.reshape(channels, height // n, n, width // n, n).transpose(2, 3)


def from_blocks(blocks: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`as_blocks`."""
    channels, rows, cols, n, _ = blocks.shape
    return blocks.transpose(2, 3).reshape(channels, rows * n, cols * n)
