"""Training a learned codec: the rate-distortion loss, the one optimization loop and
its learning-rate schedule.

The loss follows Ballé et al. (2017, eq. 2), ``L = R + lambda * D``, with CompressAI's
scaling so that lambdas carry over: ``lambda * 255^2 * MSE + bpp`` (MSE of images in
[0, 1], rate in bits per pixel estimated from the likelihoods): :func:`rd_loss`.

:func:`train_steps` is the one loop: every optimization in the package is a
``step_loss`` given to it, whether it trains a model (:func:`fit`), a decoder on hard
latents (:func:`fit_decoder`) or the latents of one image
(``iterative_encoding.sga_encode``). Its learning rate is one function of the step,
:func:`learning_rate` (nanoGPT's ``get_lr(it)``); :func:`frozen` keeps parameters out
of an optimization and gives each its previous ``requires_grad`` back.
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

MSE_SCALE = 255**2  # CompressAI's scaling: the MSE of [0, 1] images on the 8-bit scale


def rd_loss(lmbda: float, mse, bpp=0.0):
    """``lambda * 255^2 * MSE + bpp``: ``R + lambda D`` (Ballé et al. 2017, eq. 2) on
    CompressAI's scale, for ``mse`` of images in [0, 1] and the rate ``bpp`` in bits per
    pixel (tensors or floats). ``bpp=0`` is the distortion term alone, for a loss whose
    rate does not depend on what is trained."""
    return lmbda * (MSE_SCALE * mse) + bpp


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
            result["loss"] = rd_loss(self.lmbda, result["mse_loss"], result["bpp_loss"])
        else:
            result["ms_ssim_loss"] = 1 - ms_ssim(
                output["x_hat"], target, data_range=1.0
            )
            result["loss"] = self.lmbda * result["ms_ssim_loss"] + result["bpp_loss"]
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
    ``batch_size``; anything else (a list of batches, a DataLoader) is cycled as it is.
    """
    if isinstance(data, Dataset):
        generator = torch.Generator().manual_seed(seed)
        data = DataLoader(
            data,
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            generator=generator,
        )
    return cycle(data)


DECAY_AT = 0.9  # most published schedules spend their last tenth at a tenth of the rate


def learning_rate(
    step: int, steps: int, lr: float, decay_at: float | None = None
) -> float:
    """The learning rate at ``step`` (``1 .. steps``) of a run that starts at ``lr``:
    ``lr`` up to step ``round(decay_at * steps)``, ``lr / 10`` after it (``decay_at``
    ``None``: ``lr`` throughout). One function of the step, as nanoGPT's
    ``get_lr(it)``; :func:`train_steps` calls it at every step."""
    if decay_at is not None and step > round(decay_at * steps):
        return lr / 10
    return lr


@contextlib.contextmanager
def frozen(parameters):
    """Inside the block ``parameters`` do not require gradients; after it (even after an
    error) each requires them exactly as it did before, so a parameter its caller had
    frozen stays frozen."""
    parameters = list(parameters)
    before = [parameter.requires_grad for parameter in parameters]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, requires_grad in zip(parameters, before):
            parameter.requires_grad_(requires_grad)


def _adam(parameters: list, lr: float, given: torch.optim.Optimizer | None):
    """(the optimizer to step, each of its groups' starting rate): ``given`` if it is
    not ``None``, else a new Adam on ``parameters`` at ``lr``; the rates are a new
    Adam's (``lr``, or a group's own ``lr``). ``ValueError`` if ``given`` does not hold
    ``parameters`` in the same groups."""
    new = torch.optim.Adam(parameters, lr=lr)
    rates = [group["lr"] for group in new.param_groups]
    if given is None:
        return new, rates
    held = lambda adam: [
        [id(p) for p in group["params"]] for group in adam.param_groups
    ]
    if held(given) != held(new):
        raise ValueError("the optimizer given does not hold these parameters' groups")
    return given, rates


def train_steps(
    step_loss,
    parameters,
    *,
    steps: int,
    lr: float,
    aux_parameters=(),
    aux_loss=None,
    aux_lr: float = 1e-3,
    clip_max_norm: float = 0.0,
    decay_at: float | None = None,
    progress: bool = True,
    description: str = "training",
    optimizer: torch.optim.Optimizer | None = None,
    aux_optimizer: torch.optim.Optimizer | None = None,
) -> list[dict]:
    """The one optimization loop: ``steps`` Adam steps on ``parameters`` (a model's
    parameters, any tensors that require gradients such as the latents of one image,
    or Adam's parameter groups, each with its own ``lr``), each minimizing
    ``step_loss() -> (loss, entry)``; then, if ``aux_loss`` is given, one Adam step of
    ``aux_loss()`` on ``aux_parameters`` (the quantiles' auxiliary loss, Ballé et al.
    2018). At step ``t`` every group's rate is :func:`learning_rate` of ``t`` (tenfold
    lower after ``decay_at * steps``, if given). Returns the history: per step
    ``{"step", "loss", "bpp", "mse", "psnr", "aux"}``, overridden and extended by what
    ``entry`` gives, ``None`` where nothing was measured. Raises ``FloatingPointError``
    as soon as the loss is not finite.

    Each call makes new Adams, unless ``optimizer`` (``aux_optimizer``) is given: an
    optimizer holding ``parameters`` (``aux_parameters``) in the same groups, stepped
    as it is, so that its moments carry on from an earlier call (one loop split into
    calls). Its groups' rates are still those ``parameters`` and ``lr`` give, on the
    schedule above; a given ``aux_optimizer`` keeps its own rate."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    parameters, aux_parameters = list(parameters), list(aux_parameters)
    optimizer, rates = _adam(parameters, lr, optimizer)
    aux_optimizer = (
        _adam(aux_parameters, aux_lr, aux_optimizer)[0]
        if aux_loss and aux_parameters
        else None
    )
    history = []
    bar = tqdm(range(1, steps + 1), desc=description, disable=not progress, leave=False)
    for step in bar:
        for group, rate in zip(optimizer.param_groups, rates):
            group["lr"] = learning_rate(step, steps, rate, decay_at)
        loss, entry = step_loss()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss.item()} at step {step}; "
                f"try a smaller learning rate or lambda"
            )
        optimizer.zero_grad()
        loss.backward()
        if clip_max_norm > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for group in optimizer.param_groups for p in group["params"]],
                clip_max_norm,
            )
        optimizer.step()
        entry = {
            "step": step,
            "loss": loss.item(),
            "bpp": None,
            "mse": None,
            "psnr": None,
            "aux": None,
            **entry,
        }
        if aux_optimizer is not None:
            aux_optimizer.zero_grad()
            aux = aux_loss()
            aux.backward()
            aux_optimizer.step()
            entry["aux"] = aux.item()
        history.append(entry)
        bar.set_postfix(loss=f"{entry['loss']:.3f}")
    return history


def _criterion_loss(model: nn.Module, criterion):
    """A ``batch_loss``: ``criterion(model(x), x)`` for a batch of images ``x``, with
    ``bpp`` and, for MSE, ``mse`` and ``psnr`` for the history."""

    def batch_loss(x):
        losses = criterion(model(x), x)
        entry = {"bpp": losses["bpp_loss"].item()}
        if "mse_loss" in losses:
            entry["mse"] = losses["mse_loss"].item()
            entry["psnr"] = metrics.psnr_from_mse(entry["mse"])
        return losses["loss"], entry

    return batch_loss


def _on(batch, device):
    """A batch (a tensor, or the tuple of tensors a ``Dataset`` of tuples gives) moved
    to ``device``."""
    if isinstance(batch, (list, tuple)):
        return tuple(t.to(device) for t in batch)
    return batch.to(device)


def _stream_steps(batch_loss, stream, device):
    """A :func:`train_steps` ``step_loss``: ``batch_loss`` of the next batch of
    ``stream``, on ``device``."""
    return lambda: batch_loss(_on(next(stream), device))


def _finish(model: nn.Module) -> None:
    """Every fitting function leaves the model the same way: in eval mode, with coding
    tables that follow its new weights."""
    model.eval()
    if hasattr(model, "update"):
        model.update(force=True)


def _groups(
    model: nn.Module, parameters: list, lr: float, lr_of: dict[str, float]
) -> list[dict]:
    """Adam parameter groups: ``parameters`` named with a prefix of ``lr_of`` at its
    rate, the rest at ``lr``."""
    names = {id(p): n for n, p in model.named_parameters()}
    rate = lambda p: next(
        (r for prefix, r in lr_of.items() if names[id(p)].startswith(prefix)), lr
    )
    rates = sorted({rate(p) for p in parameters})
    return [{"params": [p for p in parameters if rate(p) == r], "lr": r} for r in rates]


def fit(
    model: nn.Module,
    data,
    *,
    steps: int,
    lmbda: float = 0.01,
    criterion=None,
    lr: float = 1e-4,
    aux_lr: float = 1e-3,
    batch_size: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
    clip_max_norm: float = 1.0,
    decay_at: float | None = None,
    lr_of: dict[str, float] | None = None,
    progress: bool = True,
    description: str = "training",
) -> list[dict]:
    """Train ``model`` for ``steps`` optimizer steps; return the history, one dict a
    step.

    Args: model: returns ``{"x_hat", "likelihoods"}`` (and may have ``aux_loss()``).
    data: a ``Dataset`` of image tensors (batched here) or an iterable of batches.
    lmbda: rate-distortion trade-off for the default ``RateDistortionLoss``. criterion:
    a loss module returning a dict with ``"loss"``; overrides ``lmbda``. clip_max_norm:
    gradient norm clipping of the main parameters (0: off). decay_at: the fraction of
    ``steps`` after which the learning rate is ``lr / 10`` (:func:`learning_rate`;
    ``None``: constant). seed:
    seeds torch and the data order, so two runs with one seed agree (the caller's random
    state is given back unchanged: ``seeding.seeded``). lr_of: ``{name prefix: lr}``:
    parameters whose names start with a prefix train at that learning rate (a learned
    lattice's basis), the others at ``lr``.

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
        step_loss = _stream_steps(
            _criterion_loss(model, criterion), batches(data, batch_size, seed), device
        )
        model.train()
        history = train_steps(
            step_loss,
            main,
            steps=steps,
            lr=lr,
            aux_parameters=aux,
            aux_loss=getattr(model, "aux_loss", None),
            aux_lr=aux_lr,
            clip_max_norm=clip_max_norm,
            decay_at=decay_at,
            progress=progress,
            description=description,
        )
    _finish(model)
    return history


def fit_family(
    make_model,
    data,
    lambdas,
    *,
    steps: int,
    batch_size: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
    lr: float = 1e-3,
    finetune_lr: float = 3e-4,
    name: str = "model",
    cache_dir=None,
    cache_key: str = "",
    progress: bool = True,
):
    """One model per lambda, cheaply: a base model trained at the middle lambda for
    ``steps`` steps, then a copy of it fine-tuned for ``steps // 5`` steps at each
    lambda. Each run ends with a tenth of its learning rate for its last tenth of steps.
    (Measured at the ``cpu`` budget: for the same time, a longer base with shorter
    fine-tunings, and the final drop, gave the best curve; batches of 16 instead of 8
    did not help.)

    Args: make_model: builds a fresh model (called once, after seeding with ``seed``).
    cache_dir: if given, the trained weights and histories are saved there and reused by
    a later call with the same settings, ``cache_key`` (which must name the training
    data) and source (``lic_teach.cache``); ``None`` always trains.

    Returns ``(models, histories, from_cache)``: ``{lambda: model}`` in eval mode,
    ``{label: history}`` with the fine-tuning steps numbered after the base's, and
    whether the weights came from the cache.
    """
    lambdas = [float(lmbda) for lmbda in lambdas]
    middle = lambdas[len(lambdas) // 2]
    base = {}  # trained once, before the first lambda's copy

    def train_one(lmbda):
        if not base:
            with seeded(seed):
                base["model"] = make_model()
            label = f"{name}, base, lambda={middle:g}"
            base["histories"] = {
                label: fit(
                    base["model"],
                    data,
                    steps=steps,
                    lmbda=middle,
                    lr=lr,
                    batch_size=batch_size,
                    seed=seed,
                    device=device,
                    decay_at=DECAY_AT,
                    progress=progress,
                    description=label,
                )
            }
        model = copy.deepcopy(base["model"])
        label = f"{name}, lambda={lmbda:g}"
        history = fit(
            model,
            data,
            steps=max(1, steps // 5),
            lmbda=lmbda,
            lr=finetune_lr,
            batch_size=batch_size,
            seed=seed + 1,
            device=device,
            decay_at=DECAY_AT,
            progress=progress,
            description=label,
        )
        for entry in history:
            entry["step"] += steps
        return model, {**base["histories"], label: history}

    settings = dict(
        recipe="family, fine-tunings of steps // 5, lr / 10 for the last tenth",
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        lr=lr,
        finetune_lr=finetune_lr,
        data=cache_key,
    )
    return cache.family(make_model, settings, lambdas, train_one, cache_dir, device)


def fit_entropy_model(
    model: nn.Module,
    latents: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    aux_lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
    description: str = "entropy model",
) -> list[dict]:
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
        trained = [
            (n, p)
            for n, p in model.named_parameters()
            if not n.startswith(("g_a.", "g_s."))
        ]
        pixels_per_latent = model.y_stride**2

        def step_loss():
            y = latents[torch.randint(0, len(latents), (batch_size,))].to(device)
            _, likelihoods = model.entropy(y)
            rate = metrics.bits(likelihoods) / (
                batch_size * y.shape[-2] * y.shape[-1] * pixels_per_latent
            )
            return rate, {"bpp": rate.item()}

        model.train()
        history = train_steps(
            step_loss,
            [p for n, p in trained if not n.endswith("quantiles")],
            steps=steps,
            lr=lr,
            aux_parameters=[p for n, p in trained if n.endswith("quantiles")],
            aux_loss=model.aux_loss,
            aux_lr=aux_lr,
            progress=progress,
            description=description,
        )
    _finish(model)
    return history


DECODER_PARTS = ("g_s.", "h_s.")


def named(model: nn.Module, prefixes) -> list:
    """The parameters of ``model`` whose names start with one of ``prefixes``."""
    return [p for n, p in model.named_parameters() if n.startswith(tuple(prefixes))]


def _parameters_of(trained) -> list:
    """The tensors of a list of parameters or of Adam's parameter groups."""
    return [
        p
        for item in trained
        for p in (item["params"] if isinstance(item, dict) else [item])
    ]


def fit_decoder(
    model: nn.Module,
    data,
    *,
    steps: int,
    lmbda: float | None = None,
    batch_loss=None,
    trained=None,
    batch_size: int = 8,
    lr: float = 1e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    decay_at: float | None = None,
    progress: bool = True,
    description: str = "decoder on hard latents",
) -> list[dict]:
    """Fine-tune the decoder side of ``model`` on the latents the decoder really
    receives (Borzechowski et al., "Optimizing learned image compression on scalar and
    entropy-constraint quantization", 2024, sec. 3): the model is kept in eval mode, so
    that its encoder and entropy model round ``y`` and ``z`` exactly as the coder does,
    and every parameter of it outside ``trained`` is :func:`frozen`. Training with noise
    leaves a mismatch; this removes the decoder's share of it.

    Args: data: a ``Dataset`` (of images, or of tuples) or a list of batches.
    batch_loss: ``batch -> (loss, entry)`` for one batch on ``device``; by default
    ``R + lambda * 255^2 * MSE`` of ``model(x)`` (:class:`RateDistortionLoss` at
    ``lmbda``: ``h_s`` sets the scales, so the rate counts). trained: the parameters
    (or Adam's parameter groups) to train, which may lie outside ``model`` (a
    student's adapters); by default ``g_s`` and ``h_s`` (:data:`DECODER_PARTS`).
    Parameters the caller froze stay frozen. decay_at: as :func:`learning_rate`.

    Every other decoder-side fine-tuning calls this one: :func:`fit_synthesis`,
    ``distillation.distill`` and ``distill_hyper_synthesis``,
    ``rectifier.pretrain_rectifier`` and ``stp_phase2``. Returns :func:`train_steps`'s
    history; the model ends as :func:`fit` leaves it."""
    if batch_loss is None:
        if lmbda is None:
            raise ValueError("give lmbda (the default loss) or a batch_loss")
        batch_loss = _criterion_loss(model, RateDistortionLoss(lmbda))
    trained = named(model, DECODER_PARTS) if trained is None else list(trained)
    kept = {id(p) for p in _parameters_of(trained)}
    with seeded(seed):
        model.to(device).eval()
        step_loss = _stream_steps(batch_loss, batches(data, batch_size, seed), device)
        with frozen(p for p in model.parameters() if id(p) not in kept):
            history = train_steps(
                step_loss,
                trained,
                steps=steps,
                lr=lr,
                decay_at=decay_at,
                progress=progress,
                description=description,
            )
    _finish(model)
    return history


def fit_synthesis(
    model: nn.Module,
    data,
    quantize,
    *,
    steps: int,
    lmbda: float,
    batch_size: int = 8,
    lr: float = 1e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    description: str = "synthesis on chosen latents",
) -> list[dict]:
    """:func:`fit_decoder` of ``g_s`` alone, on the latents ``quantize(g_a(x))`` an
    encoder chooses instead of the coder's rounding: rate-distortion optimized rounding
    (``lic_teach.rdoq``, ``lic_teach.trellis``) or, as a control, uniform noise
    (Borzechowski et al. 2024, sec. 3). The rate of given latents does not depend on
    ``g_s``, so the loss is ``lambda * 255^2 * MSE`` alone and the history's ``bpp`` is
    ``None``."""

    def batch_loss(x):
        with torch.no_grad():
            y_hat = quantize(model.g_a(x))
        mse = F.mse_loss(model.g_s(y_hat), x)
        return rd_loss(lmbda, mse), {
            "mse": mse.item(),
            "psnr": metrics.psnr_from_mse(mse.item()),
        }

    return fit_decoder(
        model,
        data,
        steps=steps,
        batch_loss=batch_loss,
        trained=named(model, ("g_s.",)),
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        progress=progress,
        description=description,
    )
