"""The quantization rectifier and soft-to-predictive training (Luo and Chen, "Neural
image compression with quantization rectifier", arXiv 2403.17236; an earlier version at
an ICML 2023 workshop).

Rounding the latents throws away part of what the encoder expressed, at random. The
quantization rectifier (QR) is a small network that predicts the unrounded latent ``y``
from the rounded ``y_hat``, using the spatial correlation among neighbouring latents;
the decoder then synthesizes from ``QR(y_hat)``. The encoder and the entropy model are
untouched, so the bitstream does not change: :func:`rectified` keeps the base model's
``compress`` byte for byte and runs the rectifier inside ``g_s``.

Soft-to-predictive (STP) training has two phases:

1. the codec trained end to end with a soft relaxation of rounding (here: the zoo's
   models, trained with uniform noise);
2. the encoder and the entropy model frozen, the latents rounded as the coder rounds
   them, and ``g_s`` and QR trained together on

       lambda * 255^2 * MSE(x, g_s(QR(y_hat)))  +  alpha * mean((QR(y_hat) - y)^2)

   (:func:`stp_loss`): the distortion, plus the rectifier coefficient ``alpha`` times a
   feature distance, L2 being the best the paper tried. The distance here is a mean
   over the latents, so that ``alpha`` does not depend on the image size.

The paper builds QR from a wide 7x7 convolution, residual blocks and multi-head
self-attention. :class:`QuantizationRectifier` follows that description at the book's
sizes (width, depth, heads and window are arguments). Two choices are this book's own:
the network predicts the correction ``QR(y_hat) - y_hat`` (its last layer starts at
zero, so training starts from the unrectified decoder), and attention runs within
windows of latents, so that its cost grows with the image's area and not with its
square. The paper's search for ``alpha`` is not public; this book's is part of its
study (:func:`lic_teach.experiments.rectification.search_alpha`).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from . import data as image_data
from . import metrics, train


class ResidualBlock(nn.Module):
    """``f + conv3x3(relu(conv3x3(f)))``: one residual block of the rectifier."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f + self.conv2(F.relu(self.conv1(f)))


def _windows(f: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens, padding)``: ``f`` ``[B, C, h, w]`` zero-padded to multiples of
    ``window`` and cut into ``[B * windows, window^2, C]``, with ``True`` where a token
    is padding."""
    batch, channels, h, w = f.shape
    pad = (0, (-w) % window, 0, (-h) % window)
    padded, present = F.pad(f, pad), F.pad(torch.ones_like(f[:, :1]), pad)

    def cut(t):  # [B, c, H, W] -> [B * nh * nw, window^2, c]
        c, height, width = t.shape[1:]
        t = t.reshape(batch, c, height // window, window, width // window, window)
        return t.permute(0, 2, 4, 3, 5, 1).reshape(-1, window * window, c)

    return cut(padded), cut(present)[..., 0] == 0


class WindowAttention(nn.Module):
    """Multi-head self-attention among the latents of each ``window x window`` block
    (pre-norm, with a residual connection); padding at the edges is masked out."""

    def __init__(self, channels: int, heads: int = 4, window: int = 8):
        super().__init__()
        if channels % heads:
            raise ValueError(
                f"the width ({channels}) must be a multiple of the heads ({heads})"
            )
        self.window = window
        self.norm = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        batch, channels, h, w = f.shape
        tokens, padding = _windows(f, self.window)  # [B*n, window^2, C]
        normed = self.norm(tokens)
        attended, _ = self.attention(
            normed, normed, normed, key_padding_mask=padding, need_weights=False
        )
        tokens = tokens + attended
        height, width = h + (-h) % self.window, w + (-w) % self.window
        grid = tokens.reshape(
            batch,
            height // self.window,
            width // self.window,
            self.window,
            self.window,
            channels,
        )
        return grid.permute(0, 5, 1, 3, 2, 4).reshape(batch, channels, height, width)[
            ..., :h, :w
        ]


class QuantizationRectifier(nn.Module):
    """QR: ``y_hat + correction(y_hat)``, the correction from a 7x7 convolution to
    ``width`` channels, ``blocks`` residual blocks, windowed multi-head self-attention
    and a 1x1 convolution back to ``M`` channels (Luo and Chen 2024, their fig. of the
    rectifier, scaled down). The last layer starts at zero: QR starts as the identity.
    """

    def __init__(
        self, M: int, width: int = 64, blocks: int = 2, heads: int = 4, window: int = 8
    ):
        super().__init__()
        self.M, self.width, self.blocks_count, self.heads, self.window = (
            M,
            width,
            blocks,
            heads,
            window,
        )
        self.expand = nn.Conv2d(M, width, 7, padding=3)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.attention = WindowAttention(width, heads, window)
        self.project = nn.Conv2d(width, M, 1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        return y_hat + self.project(
            self.attention(self.blocks(F.relu(self.expand(y_hat))))
        )


class RectifiedSynthesis(nn.Module):
    """``g_s(QR(y_hat))``: what a rectified codec's decoder runs in place of ``g_s``."""

    def __init__(self, rectifier: QuantizationRectifier, synthesis: nn.Module):
        super().__init__()
        self.rectifier, self.synthesis = rectifier, synthesis

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.rectifier(y_hat))


def rectified(base: nn.Module, rectifier: QuantizationRectifier) -> nn.Module:
    """A copy of ``base`` whose ``g_s`` is :class:`RectifiedSynthesis` of ``rectifier``
    and ``base``'s synthesis. Its encoder, entropy model and coding tables are
    ``base``'s, so its ``compress`` writes ``base``'s bytes and it decodes ``base``'s
    bitstreams."""
    M = getattr(base, "M", None)
    if M is not None and rectifier.M != M:
        raise ValueError(
            f"the rectifier takes {rectifier.M} channels, the model's latents have {M}"
        )
    codec = copy.deepcopy(base)
    codec.g_s = RectifiedSynthesis(rectifier, codec.g_s)
    return codec.eval()


def stp_loss(
    x, x_hat, y, y_rectified, lmbda: float, alpha: float
) -> tuple[torch.Tensor, dict]:
    """STP phase 2's loss, ``lambda * 255^2 * MSE(x, x_hat) + alpha * mean((y_rectified
    - y)^2)``, and a history entry (``mse``, ``psnr``, ``rectified`` = the latent
    distance)."""
    mse = F.mse_loss(x_hat, x)
    distance = F.mse_loss(y_rectified, y)
    loss = train.rd_loss(lmbda, mse) + alpha * distance
    return loss, {
        "mse": mse.item(),
        "psnr": metrics.psnr_from_mse(mse.item()),
        "rectified": distance.item(),
    }


def hard_latents(
    model: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y, y_hat)`` of images ``x`` (moved to ``model``'s device): the encoder's
    latents and the latents the decoder receives (the entropy model in eval mode: the
    coder's rounding, around the means for a mean-scale model). No gradients."""
    model.eval()
    with torch.no_grad():
        y = model.g_a(x.to(next(model.parameters()).device))
        y_hat, _ = model.entropy(y)
    return y, y_hat


class FrozenLatents(Dataset):
    """A pool of ``length`` random ``patch_size`` crops of ``photos`` (flipped
    left-right at random, as :class:`lic_teach.data.RandomCropDataset` cuts them), each
    with its latents ``(x, y, y_hat)``, computed once.

    In phase 2 the encoder and the entropy model are frozen, so a crop's latents never
    change: computing them once for a pool of crops, instead of at every step, saves the
    encoder's pass at every step. Each crop is encoded on its own, as the coder would
    encode it (the latents of a crop of a photo differ from the same window of the whole
    photo's latents near the crop's edges, and a decoder trained on such windows learns
    to decode edges it never meets). Randomness comes from torch's global generator. The
    latents are computed on ``codec``'s device and kept on the CPU with the crops (the
    training loop moves each batch to the model)."""

    def __init__(
        self,
        codec: nn.Module,
        photos,
        patch_size: int,
        length: int,
        batch_size: int = 32,
    ):
        crops = image_data.RandomCropDataset(photos, patch_size, length=length)
        self.x = torch.stack([crops[i] for i in range(length)])  # [length, 3, p, p]
        parts = [
            hard_latents(codec, self.x[i : i + batch_size])
            for i in range(0, length, batch_size)
        ]
        self.y = torch.cat([y for y, _ in parts]).cpu()
        self.y_hat = torch.cat([y_hat for _, y_hat in parts]).cpu()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        return self.x[index], self.y[index], self.y_hat[index]


def _training_batch(codec, batch):
    """``(x, y, y_hat)`` of a batch of images or of :class:`FrozenLatents` items."""
    return batch if isinstance(batch, tuple) else (batch, *hard_latents(codec, batch))


def pretrain_rectifier(
    codec: nn.Module,
    images,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_size: int = 8,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> list[dict]:
    """A warm start for QR (this book's; the paper does not publish QR's schedule):
    ``codec.g_s.rectifier`` alone trained on ``mean((QR(y_hat) - y)^2)``, the feature
    distance of :func:`stp_loss` without the decoder, by ``train.fit_decoder``. A step
    costs a fraction of a phase-2 step, since ``g_s`` does not run; on ``device``
    (default: the codec's). Returns the history (``rectified``)."""
    qr = getattr(codec.g_s, "rectifier", None)
    if qr is None:
        raise ValueError("this codec has no rectifier (see rectified())")

    def batch_loss(batch):
        _, y, y_hat = _training_batch(codec, batch)
        distance = F.mse_loss(qr(y_hat), y)
        return distance, {"rectified": distance.item()}

    return train.fit_decoder(
        codec,
        images,
        steps=steps,
        batch_loss=batch_loss,
        trained=qr.parameters(),
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        device=device or next(codec.parameters()).device,
        progress=progress,
        description="QR warm start",
    )


def stp_phase2(
    codec: nn.Module,
    images,
    *,
    steps: int,
    lmbda: float,
    alpha: float,
    batch_size: int = 8,
    lr: float = 1e-4,
    rectifier_lr: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> list[dict]:
    """Phase 2 of STP training: ``codec.g_s`` (for a :func:`rectified` codec, QR and the
    synthesis together) trained on hard latents with :func:`stp_loss` by
    ``train.fit_decoder``; the encoder and the entropy model are frozen, so the
    bitstream cannot change. ``images`` are images (their latents computed at every
    step) or :class:`FrozenLatents`. QR learns at ``rectifier_lr`` (default ``lr``), on
    ``device`` (default: the codec's).

    ``codec`` without a rectifier and ``alpha=0`` is the control: the same synthesis
    fine-tuned on the same latents for the same steps, without QR. Returns
    :func:`lic_teach.train.train_steps`'s history (with ``rectified``)."""
    rectifier = getattr(codec.g_s, "rectifier", None)
    if rectifier is None and alpha != 0:
        raise ValueError(
            "alpha weights QR's latent distance: a codec without a rectifier takes "
            "alpha=0"
        )
    if alpha < 0:
        raise ValueError(f"alpha must be at least 0, got {alpha}")
    rectify = rectifier if rectifier is not None else nn.Identity()
    synthesis = codec.g_s.synthesis if rectifier is not None else codec.g_s
    groups = [{"params": list(synthesis.parameters()), "lr": lr}]
    if rectifier is not None:
        groups.append(
            {
                "params": list(rectifier.parameters()),
                "lr": lr if rectifier_lr is None else rectifier_lr,
            }
        )

    def batch_loss(batch):
        x, y, y_hat = _training_batch(codec, batch)
        y_rectified = rectify(y_hat)
        return stp_loss(x, synthesis(y_rectified), y, y_rectified, lmbda, alpha)

    return train.fit_decoder(
        codec,
        images,
        steps=steps,
        batch_loss=batch_loss,
        trained=groups,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        device=device or next(codec.parameters()).device,
        progress=progress,
        description=f"STP phase 2 (alpha={alpha:g})",
    )


def rounding_error(codec: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per channel, the mean squared error of the latents the decoder uses against
    ``y``: ``{"rounded": |y_hat - y|^2, "rectified": |QR(y_hat) - y|^2}`` (``[M]``
    each) for a :func:`rectified` codec on images ``x``: how much of the rounding error
    QR recovers."""
    rectifier = getattr(codec.g_s, "rectifier", None)
    if rectifier is None:
        raise ValueError("this codec has no rectifier (see rectified())")
    y, y_hat = hard_latents(codec, x)
    with torch.no_grad():
        y_rectified = rectifier(y_hat)
    return {
        "rounded": ((y_hat - y) ** 2).mean(dim=(0, 2, 3)),
        "rectified": ((y_rectified - y) ** 2).mean(dim=(0, 2, 3)),
    }
