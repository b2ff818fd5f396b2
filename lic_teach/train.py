"""Training a learned codec: the rate-distortion loss and a small training loop.

The loss follows Ballé et al. (2017, eq. 2), ``L = R + lambda * D``, with CompressAI's
scaling so that lambdas carry over: ``lambda * 255^2 * MSE + bpp`` (MSE of images in
[0, 1], rate in bits per pixel estimated from the likelihoods).
"""
from __future__ import annotations

import math
from itertools import cycle

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm


class RateDistortionLoss(nn.Module):
    """``lambda * 255^2 * MSE + bpp`` (or ``lambda * (1 - MS-SSIM) + bpp``).

    ``forward(output, target)`` takes a model's output dict (``"x_hat"`` and
    ``"likelihoods"``) and returns a dict with ``loss``, ``bpp_loss`` and
    ``mse_loss`` (or ``ms_ssim_loss``), all differentiable tensors.
    """

    def __init__(self, lmbda: float = 0.01, metric: str = "mse"):
        super().__init__()
        if metric not in ("mse", "ms-ssim"):
            raise ValueError(f"unknown metric {metric!r}; choose 'mse' or 'ms-ssim'")
        if not lmbda > 0:
            raise ValueError(f"lambda must be positive, got {lmbda}")
        self.lmbda, self.metric = float(lmbda), metric

    def forward(self, output: dict, target: torch.Tensor) -> dict:
        batch, _, height, width = target.shape
        num_pixels = batch * height * width
        bits = sum(-torch.log2(p).sum() for p in output["likelihoods"].values())
        result = {"bpp_loss": bits / num_pixels}
        if self.metric == "mse":
            result["mse_loss"] = F.mse_loss(output["x_hat"], target)
            distortion = 255**2 * result["mse_loss"]
        else:
            result["ms_ssim_loss"] = 1 - ms_ssim(output["x_hat"], target, data_range=1.0)
            distortion = result["ms_ssim_loss"]
        result["loss"] = self.lmbda * distortion + result["bpp_loss"]
        return result


def split_parameters(model: nn.Module) -> tuple[list, list]:
    """(main parameters, auxiliary parameters): the entropy models' ``quantiles`` are
    trained only by the auxiliary loss, with their own optimizer (Ballé et al. 2018)."""
    main, aux = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (aux if name.endswith("quantiles") else main).append(parameter)
    return main, aux


def _batches(data, batch_size: int, seed: int):
    if isinstance(data, Dataset):
        generator = torch.Generator().manual_seed(seed)
        data = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True,
                          generator=generator)
    return cycle(data)


def fit(model: nn.Module, data, *, steps: int, lmbda: float = 0.01, criterion=None,
        lr: float = 1e-4, aux_lr: float = 1e-3, batch_size: int = 8, seed: int = 0,
        device: str | torch.device = "cpu", clip_max_norm: float = 1.0,
        progress: bool = True, description: str = "training") -> list[dict]:
    """Train ``model`` for ``steps`` optimizer steps; return the history, one dict a step.

    Args:
        model: returns ``{"x_hat", "likelihoods"}`` (and may have ``aux_loss()``).
        data: a ``Dataset`` of image tensors (batched here) or an iterable of batches.
        lmbda: rate-distortion trade-off for the default ``RateDistortionLoss``.
        criterion: a loss module returning a dict with ``"loss"``; overrides ``lmbda``.
        clip_max_norm: gradient norm clipping of the main parameters (0: off).
        seed: seeds torch and the data order, so two runs with one seed agree.

    Each history entry has ``step``, ``loss``, ``bpp``, ``mse`` (when measured) and
    ``aux``. Raises ``FloatingPointError`` as soon as the loss is not finite. At the end
    the model's coding tables are rebuilt (``model.update(force=True)``).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    torch.manual_seed(seed)
    criterion = criterion or RateDistortionLoss(lmbda)
    model.to(device)
    main, aux = split_parameters(model)
    optimizer = torch.optim.Adam(main, lr=lr)
    aux_optimizer = torch.optim.Adam(aux, lr=aux_lr) if aux else None
    batches = _batches(data, batch_size, seed)
    was_training = model.training
    model.train()
    history = []
    bar = tqdm(range(1, steps + 1), desc=description, disable=not progress, leave=False)
    for step in bar:
        x = next(batches).to(device)
        optimizer.zero_grad()
        losses = criterion(model(x), x)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss.item()} at step {step}; "
                                     f"try a smaller learning rate or lambda")
        loss.backward()
        if clip_max_norm > 0:
            torch.nn.utils.clip_grad_norm_(main, clip_max_norm)
        optimizer.step()
        entry = {"step": step, "loss": loss.item(), "bpp": losses["bpp_loss"].item()}
        if "mse_loss" in losses:
            entry["mse"] = losses["mse_loss"].item()
            entry["psnr"] = -10 * math.log10(max(entry["mse"], 1e-12))
        if aux_optimizer is not None and hasattr(model, "aux_loss"):
            aux_optimizer.zero_grad()
            aux_loss = model.aux_loss()
            aux_loss.backward()
            aux_optimizer.step()
            entry["aux"] = aux_loss.item()
        history.append(entry)
        bar.set_postfix(loss=f"{entry['loss']:.3f}", bpp=f"{entry['bpp']:.3f}")
    model.train(was_training)
    if hasattr(model, "update"):          # coding tables must follow the new weights
        model.update(force=True)
    return history
