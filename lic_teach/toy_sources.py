"""Two-dimensional sources and a tiny nonlinear transform code for them (the
quantization chapter).

In two dimensions the quantization cells of a learned codec can be drawn: every source
point ``x`` lands in the cell of the integer vector ``round(g_a(x))``, and is decoded to
that cell's reconstruction point ``g_s(round(g_a(x)))``. Ballé, Chou, Minnen, Singh,
Johnston, Agustsson, Hwang and Toderici ("Nonlinear transform coding", IEEE JSTSP 2021,
sec. IV and fig. 5) show such cells for a banana-shaped density: the learned code lays
its cells along the banana and spends no bits where the density is empty.

The sources here are defined by this module (the banana is in the spirit of the paper's,
not a copy of its parameters). :class:`ToyTransformCode` is small enough to train in
seconds on a CPU with any of the relaxations of ``lic_teach.quantization``.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import quantization
from .entropy_models import FactorizedDensity
from .seeding import seeded


def banana(count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[count, 2]`` samples of a bent Gaussian: ``x1 = 2 z1``,
    ``x2 = 0.4 z2 + 0.25 x1^2 - 1`` with ``z ~ N(0, I)``."""
    z = torch.randn(count, 2, generator=generator)
    x1 = 2.0 * z[:, 0]
    return torch.stack([x1, 0.4 * z[:, 1] + 0.25 * x1**2 - 1.0], dim=1)


def laplace(
    count: int, generator: torch.Generator | None = None, scale: float = 1.0
) -> torch.Tensor:
    """``[count, 2]`` independent Laplacian samples of the given scale."""
    u = torch.rand(count, 2, generator=generator).clamp(1e-7, 1 - 1e-7) - 0.5
    return -scale * torch.sign(u) * torch.log1p(-2 * u.abs())


def banana_log_density(x: torch.Tensor) -> torch.Tensor:
    """``log p(x)`` of :func:`banana` for points ``[..., 2]``: ``x1 ~ N(0, 4)`` and
    ``x2 | x1 ~ N(0.25 x1^2 - 1, 0.16)``."""
    x1, x2 = x[..., 0], x[..., 1]
    return (
        -(x1**2) / 8
        - math.log(2 * math.sqrt(2 * math.pi))
        - (x2 - 0.25 * x1**2 + 1) ** 2 / 0.32
        - math.log(0.4 * math.sqrt(2 * math.pi))
    )


def laplace_log_density(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``log p(x)`` of :func:`laplace` for points ``[..., 2]``."""
    return -x.abs().sum(dim=-1) / scale - 2 * math.log(2 * scale)


SOURCES = {"banana": banana, "laplace": laplace}
LOG_DENSITIES = {"banana": banana_log_density, "laplace": laplace_log_density}
RELAXATIONS = quantization.RELAXATIONS


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.Softplus(),
        nn.Linear(hidden, hidden),
        nn.Softplus(),
        nn.Linear(hidden, outputs),
    )


class ToyTransformCode(nn.Module):
    """``x -> g_a -> y -> Q -> y_hat -> g_s -> x_hat`` for 2-D vectors: two small
    multilayer perceptrons and a factorized density for ``y`` (the end-to-end
    chapter's).

    Args:
        latents: dimensions of ``y``.
        hidden: width of the hidden layers.
    """

    def __init__(self, latents: int = 2, hidden: int = 64):
        super().__init__()
        self.g_a = _mlp(2, hidden, latents)
        self.g_s = _mlp(latents, hidden, 2)
        self.prior = FactorizedDensity(latents)

    def forward(
        self,
        x: torch.Tensor,
        relaxation: str = "noise",
        alpha: float = quantization.SOFT_ROUND_ALPHA,
        seed: int = 0,
    ) -> dict:
        """``{"x_hat", "bits"}`` (``bits``: per vector) with ``Q`` replaced by the named
        relaxation in training, and by rounding around the medians in eval mode."""
        y = self.g_a(x)
        medians = self.prior.medians_like(y)
        if self.training:
            y_rate, y_decoder = quantization.relax(y, relaxation, medians, alpha, seed)
        else:
            y_rate = y_decoder = self.prior.hard_round(y)
        bits = -torch.log2(self.prior.likelihood(y_rate)).sum(dim=1)
        return {"x_hat": self.g_s(y_decoder), "bits": bits}

    @torch.no_grad()
    def cells(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cell, x_hat)`` for points ``x`` ``[n, 2]``: the index of each point's cell
        (equal integer vectors ``round(g_a(x) - median)`` share an index) and its
        reconstruction point."""
        symbols = self.prior.quantize(self.g_a(x))
        _, cell = torch.unique(symbols, dim=0, return_inverse=True)
        return cell, self.g_s(self.prior.dequantize(symbols))


@contextlib.contextmanager
def _one_thread():
    """Run torch on one CPU thread inside the block. A toy step is a few small matrix
    products: splitting each over threads gains nothing, and on a busy CPU the threads
    spin while they wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_toy(
    model: ToyTransformCode,
    source: str = "banana",
    *,
    lmbda: float = 1.0,
    steps: int = 2000,
    batch_size: int = 1024,
    relaxation: str = "noise",
    lr: float = 1e-2,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Train for ``bits + lmbda * squared error`` (both per vector). ``soft_round``
    sharpens from ``alpha = 1`` to 16 over the run. Returns the history (``step``,
    ``bits``, ``mse``)."""
    if source not in SOURCES:
        raise ValueError(
            f"unknown source {source!r}; choose one of {', '.join(SOURCES)}"
        )
    generator = torch.Generator().manual_seed(seed)
    main = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    optimizer = torch.optim.Adam(main, lr=lr)
    aux_optimizer = torch.optim.Adam([model.prior.quantiles], lr=lr)
    model.train()
    history = []
    with _one_thread(), seeded(seed):
        for step in tqdm(
            range(1, steps + 1),
            desc=f"{source}, {relaxation}",
            disable=not progress,
            leave=False,
        ):
            x = SOURCES[source](batch_size, generator)
            out = model(
                x,
                relaxation,
                alpha=quantization.soft_round_alpha(step, steps),
                seed=seed + step,
            )
            bits, mse = out["bits"].mean(), ((out["x_hat"] - x) ** 2).sum(dim=1).mean()
            optimizer.zero_grad()
            (bits + lmbda * mse).backward()
            optimizer.step()
            aux_optimizer.zero_grad()
            model.prior.aux_loss().backward()
            aux_optimizer.step()
            history.append({"step": step, "bits": bits.item(), "mse": mse.item()})
    model.eval()
    return history


def training_objective(history: list[dict], fraction: float = 0.1) -> dict:
    """The training estimate at the end of a run: mean ``bits`` and ``mse`` of the last
    ``fraction`` of :func:`fit_toy`'s history (with the relaxation, not rounding)."""
    tail = history[-max(1, int(len(history) * fraction)) :]
    return {key: float(np.mean([h[key] for h in tail])) for key in ("bits", "mse")}


@torch.no_grad()
def rate_distortion(
    model: ToyTransformCode,
    source: str = "banana",
    count: int = 100_000,
    seed: int = 1,
    dither_seed: int | None = None,
) -> dict:
    """Test-time ``bits`` (ideal, from the rounded latents' probabilities), ``mse`` per
    vector, and ``snr_db`` (source variance over mse) on fresh samples, hard rounding.
    With ``dither_seed``, universal quantization as a real codec runs it: encoder and
    decoder share a dither drawn from that seed, the encoder subtracts it before
    rounding and the decoder adds it back (:func:`lic_teach.quantization.universal`)."""
    x = SOURCES[source](count, torch.Generator().manual_seed(seed))
    model.train(dither_seed is not None)
    with _one_thread():
        out = (
            model(x) if dither_seed is None else model(x, "universal", seed=dither_seed)
        )
    model.eval()
    mse = float(((out["x_hat"] - x) ** 2).sum(dim=1).mean())
    return {
        "bits": float(out["bits"].mean()),
        "mse": mse,
        "snr_db": 10 * math.log10(float(x.var(dim=0).sum()) / mse),
    }
