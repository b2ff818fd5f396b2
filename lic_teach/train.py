"""Training a learned codec: the rate-distortion loss and a small training loop.

The loss follows Ballé et al. (2017, eq. 2), ``L = R + lambda * D``, with CompressAI's
scaling so that lambdas carry over: ``lambda * 255^2 * MSE + bpp`` (MSE of images in
[0, 1], rate in bits per pixel estimated from the likelihoods).
"""
from __future__ import annotations

import contextlib
import copy
from itertools import cycle

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import cache, metrics
from .seeding import seeded


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
        bits = metrics.bits(output["likelihoods"])
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


def batches(data, batch_size: int, seed: int):
    """An endless stream of batches: a ``Dataset`` is shuffled (seeded) into batches of
    ``batch_size``; anything else (a list of batches, a DataLoader) is cycled as it is."""
    if isinstance(data, Dataset):
        generator = torch.Generator().manual_seed(seed)
        data = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True,
                          generator=generator)
    return cycle(data)


def train_steps(step_loss, parameters, *, steps: int, lr: float, aux_parameters=(), aux_loss=None,
                aux_lr: float = 1e-3, clip_max_norm: float = 0.0, decay_at: float | None = None,
                progress: bool = True, description: str = "training") -> list[dict]:
    """The one training loop: ``steps`` Adam steps on ``parameters``, each minimizing
    ``step_loss() -> (loss, entry)`` (``parameters`` may be Adam's parameter groups, each
    with its own ``lr``), then (if ``aux_loss`` is given) one Adam step of
    ``aux_loss()`` on ``aux_parameters`` (the quantiles' auxiliary loss, Ballé et al.
    2018). With ``decay_at`` (a fraction of ``steps``), the learning rates drop tenfold
    from that step on, the last step of most published schedules. Returns the history:
    per step ``{"step", "loss", "bpp", "mse", "psnr", "aux"}``, with what ``entry`` gives
    and ``None`` where nothing was measured. Raises ``FloatingPointError`` as soon as the
    loss is not finite."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    parameters, aux_parameters = list(parameters), list(aux_parameters)
    optimizer = torch.optim.Adam(parameters, lr=lr)
    aux_optimizer = torch.optim.Adam(aux_parameters, lr=aux_lr) if aux_loss and aux_parameters else None
    decay_step = steps + 1 if decay_at is None else max(2, round(decay_at * steps) + 1)
    history = []
    bar = tqdm(range(1, steps + 1), desc=description, disable=not progress, leave=False)
    for step in bar:
        if step == decay_step:
            for group in optimizer.param_groups:
                group["lr"] /= 10
        loss, entry = step_loss()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss.item()} at step {step}; "
                                     f"try a smaller learning rate or lambda")
        optimizer.zero_grad()
        loss.backward()
        if clip_max_norm > 0:
            torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]],
                                           clip_max_norm)
        optimizer.step()
        entry = {"step": step, "loss": loss.item(), "bpp": None, "mse": None, "psnr": None, "aux": None, **entry}
        if aux_optimizer is not None:
            aux_optimizer.zero_grad()
            aux = aux_loss()
            aux.backward()
            aux_optimizer.step()
            entry["aux"] = aux.item()
        history.append(entry)
        bar.set_postfix(loss=f"{entry['loss']:.3f}")
    return history


def _criterion_steps(model: nn.Module, criterion, batches, device):
    """A :func:`train_steps` ``step_loss``: ``criterion(model(x), x)`` on the next batch,
    with ``bpp`` and, for MSE, ``mse`` and ``psnr`` for the history."""
    def step_loss():
        x = next(batches).to(device)
        losses = criterion(model(x), x)
        entry = {"bpp": losses["bpp_loss"].item()}
        if "mse_loss" in losses:
            entry["mse"] = losses["mse_loss"].item()
            entry["psnr"] = metrics.psnr_from_mse(entry["mse"])
        return losses["loss"], entry
    return step_loss


def _finish(model: nn.Module) -> None:
    """Every fitting function leaves the model the same way: in eval mode, with coding
    tables that follow its new weights."""
    model.eval()
    if hasattr(model, "update"):
        model.update(force=True)


def _groups(model: nn.Module, parameters: list, lr: float, lr_of: dict[str, float]) -> list[dict]:
    """Adam parameter groups: ``parameters`` named with a prefix of ``lr_of`` at its rate, the rest at ``lr``."""
    names = {id(p): n for n, p in model.named_parameters()}
    rate = lambda p: next((r for prefix, r in lr_of.items() if names[id(p)].startswith(prefix)), lr)
    rates = sorted({rate(p) for p in parameters})
    return [{"params": [p for p in parameters if rate(p) == r], "lr": r} for r in rates]


def fit(model: nn.Module, data, *, steps: int, lmbda: float = 0.01, criterion=None,
        lr: float = 1e-4, aux_lr: float = 1e-3, batch_size: int = 8, seed: int = 0,
        device: str | torch.device = "cpu", clip_max_norm: float = 1.0, decay_at: float | None = None,
        lr_of: dict[str, float] | None = None, progress: bool = True, description: str = "training") -> list[dict]:
    """Train ``model`` for ``steps`` optimizer steps; return the history, one dict a step.

    Args:
        model: returns ``{"x_hat", "likelihoods"}`` (and may have ``aux_loss()``).
        data: a ``Dataset`` of image tensors (batched here) or an iterable of batches.
        lmbda: rate-distortion trade-off for the default ``RateDistortionLoss``.
        criterion: a loss module returning a dict with ``"loss"``; overrides ``lmbda``.
        clip_max_norm: gradient norm clipping of the main parameters (0: off).
        decay_at: the fraction of ``steps`` after which the learning rate is ``lr / 10``
            (``None``: constant).
        seed: seeds torch and the data order, so two runs with one seed agree (the
            caller's random state is given back unchanged: ``seeding.seeded``).
        lr_of: ``{name prefix: lr}``: parameters whose names start with a prefix train at
            that learning rate (a learned lattice's basis), the others at ``lr``.

    The history is :func:`train_steps`'s (``aux`` where the model has ``aux_loss``).
    Raises ``FloatingPointError`` as soon as the loss is not finite. The model ends in
    eval mode with its coding tables rebuilt (``model.update(force=True)``).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    with seeded(seed):
        criterion = criterion or RateDistortionLoss(lmbda)
        model.to(device)
        main, aux = split_parameters(model)
        if lr_of:
            main = _groups(model, main, lr, lr_of)
        step_loss = _criterion_steps(model, criterion, batches(data, batch_size, seed), device)
        model.train()
        history = train_steps(step_loss, main, steps=steps, lr=lr, aux_parameters=aux,
                              aux_loss=getattr(model, "aux_loss", None), aux_lr=aux_lr,
                              clip_max_norm=clip_max_norm, decay_at=decay_at, progress=progress,
                              description=description)
    _finish(model)
    return history


def fit_family(make_model, data, lambdas, *, steps: int, batch_size: int = 8, seed: int = 0,
               device: str | torch.device = "cpu", lr: float = 1e-3, finetune_lr: float = 3e-4,
               name: str = "model", cache_dir=None, cache_key: str = "", progress: bool = True):
    """One model per lambda, cheaply: a base model trained at the middle lambda for
    ``steps`` steps, then a copy of it fine-tuned for ``steps // 5`` steps at each lambda.
    Each run ends with a tenth of its learning rate for its last tenth of steps. (Measured
    at the ``cpu`` budget: for the same time, a longer base with shorter fine-tunings, and
    the final drop, gave the best curve; batches of 16 instead of 8 did not help.)

    Args:
        make_model: builds a fresh model (called once, after seeding with ``seed``).
        cache_dir: if given, the trained weights and histories are saved there and
            reused by a later call with the same settings, ``cache_key`` (which must
            name the training data) and source (``lic_teach.cache``); ``None`` always trains.

    Returns ``(models, histories, from_cache)``: ``{lambda: model}`` in eval mode,
    ``{label: history}`` with the fine-tuning steps numbered after the base's, and
    whether the weights came from the cache.
    """
    lambdas = [float(l) for l in lambdas]
    middle = lambdas[len(lambdas) // 2]
    base = {}                                     # trained once, before the first lambda's copy

    def train_one(lmbda):
        if not base:
            with seeded(seed):
                base["model"] = make_model()
            label = f"{name}, base, lambda={middle:g}"
            base["histories"] = {label: fit(base["model"], data, steps=steps, lmbda=middle, lr=lr,
                                            batch_size=batch_size, seed=seed, device=device, decay_at=0.9,
                                            progress=progress, description=label)}
        model = copy.deepcopy(base["model"])
        label = f"{name}, lambda={lmbda:g}"
        history = fit(model, data, steps=max(1, steps // 5), lmbda=lmbda, lr=finetune_lr, batch_size=batch_size,
                      seed=seed + 1, device=device, decay_at=0.9, progress=progress, description=label)
        for entry in history:
            entry["step"] += steps
        return model, {**base["histories"], label: history}

    settings = dict(recipe="family, fine-tunings of steps // 5, lr / 10 for the last tenth", steps=steps,
                    batch_size=batch_size, seed=seed,
                    lr=lr, finetune_lr=finetune_lr, data=cache_key)
    return cache.family(make_model, settings, lambdas, train_one, cache_dir, device)


def fit_entropy_model(model: nn.Module, latents: torch.Tensor, *, steps: int, batch_size: int = 16,
                      lr: float = 1e-3, aux_lr: float = 1e-3, seed: int = 0, progress: bool = True,
                      description: str = "entropy model") -> list[dict]:
    """Train only the entropy model of ``model`` (every parameter outside ``g_a`` and
    ``g_s``) on fixed latents ``[K, M, h, w]`` of training crops. With the transforms
    frozen the distortion does not depend on these parameters, so the loss is the rate
    alone, in bits per pixel of the crops (each latent position stands for
    ``model.y_stride`` squared pixels). Returns :func:`train_steps`'s history; the model
    ends as :func:`fit` leaves it."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    with seeded(seed):
        device = next(model.parameters()).device
        trained = [(n, p) for n, p in model.named_parameters() if not n.startswith(("g_a.", "g_s."))]
        pixels_per_latent = model.y_stride ** 2

        def step_loss():
            y = latents[torch.randint(0, len(latents), (batch_size,))].to(device)
            _, likelihoods = model.entropy(y)
            rate = metrics.bits(likelihoods) / (batch_size * y.shape[-2] * y.shape[-1] * pixels_per_latent)
            return rate, {"bpp": rate.item()}

        model.train()
        history = train_steps(step_loss, [p for n, p in trained if not n.endswith("quantiles")], steps=steps, lr=lr,
                              aux_parameters=[p for n, p in trained if n.endswith("quantiles")],
                              aux_loss=model.aux_loss, aux_lr=aux_lr, progress=progress, description=description)
    _finish(model)
    return history


DECODER_PARTS = ("g_s.", "h_s.")


@contextlib.contextmanager
def _training_only(model: nn.Module, prefixes):
    """Inside the block only the parameters whose names start with ``prefixes`` require
    gradients (those are yielded); the others are frozen, and unfrozen again after."""
    frozen = [p for n, p in model.named_parameters() if not n.startswith(prefixes) and p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    try:
        yield [p for n, p in model.named_parameters() if n.startswith(prefixes)]
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)


def fit_decoder(model: nn.Module, data, *, steps: int, lmbda: float, batch_size: int = 8, lr: float = 1e-4,
                seed: int = 0, device: str | torch.device = "cpu", progress: bool = True,
                description: str = "decoder on hard latents") -> list[dict]:
    """Fine-tune the decoder side (``g_s``, and ``h_s`` where there is one) on the
    latents the decoder really receives: everything else frozen, the model kept in eval
    mode so that ``y`` and ``z`` are rounded exactly as the coder rounds them, and the
    loss ``R + lambda * 255^2 * MSE`` computed on those (Borzechowski et al., "Optimizing
    learned image compression on scalar and entropy-constraint quantization", sec. 3).
    Training with noise leaves a mismatch; this removes the decoder's share of it.
    Returns :func:`train_steps`'s history; the model ends as :func:`fit` leaves it."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    with seeded(seed):
        model.to(device).eval()
        criterion = RateDistortionLoss(lmbda)
        step_loss = _criterion_steps(model, criterion, batches(data, batch_size, seed), device)
        with _training_only(model, DECODER_PARTS) as trained:
            history = train_steps(step_loss, trained, steps=steps, lr=lr, progress=progress, description=description)
    _finish(model)
    return history


def fit_synthesis(model: nn.Module, data, quantize, *, steps: int, lmbda: float, batch_size: int = 8,
                  lr: float = 1e-4, seed: int = 0, device: str | torch.device = "cpu", progress: bool = True,
                  description: str = "synthesis on chosen latents") -> list[dict]:
    """Fine-tune ``g_s`` of a ``FactorizedPrior`` on the latents ``quantize(g_a(x))`` an
    encoder chooses instead of the coder's rounding: rate-distortion optimized rounding
    (``lic_teach.rdoq``, ``lic_teach.trellis``) or, as a control, uniform noise
    (Borzechowski et al. 2024, sec. 3). The rate of given latents does not depend on
    ``g_s``, so the loss is ``lambda * 255^2 * MSE`` alone and the history's ``bpp`` is
    ``None``. Everything but ``g_s`` is frozen; the model ends as :func:`fit` leaves it."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    with seeded(seed):
        model.to(device).eval()
        stream = batches(data, batch_size, seed)

        def step_loss():
            x = next(stream).to(device)
            with torch.no_grad():
                y_hat = quantize(model.g_a(x))
            mse = F.mse_loss(model.g_s(y_hat), x)
            return lmbda * 255 ** 2 * mse, {"mse": mse.item(), "psnr": metrics.psnr_from_mse(mse.item())}

        with _training_only(model, ("g_s.",)) as trained:
            history = train_steps(step_loss, trained, steps=steps, lr=lr, progress=progress, description=description)
    _finish(model)
    return history
