"""Quantization and its differentiable stand-ins for training (the quantization
chapter).

Rounding has zero gradient almost everywhere, so training replaces it. Every quantizer
here has the same form: ``f(y, means=None, ...) -> Tensor``, quantizing ``y`` on the
integer grid shifted by ``means`` (rounding around the predicted mean, as the mean-scale
hyperprior does), with ``means=None`` meaning the plain integer grid. :func:`relax`
combines them into what a model trained with a relaxation gives its entropy model and
its decoder: a pair ``(for the rate, for the decoder)``.

- :func:`hard_round`: what the coder does at test time, ``round(y - mu) + mu``.
- :func:`uniform_noise`: ``y + u``, ``u ~ U(-1/2, 1/2)`` (Ballé et al., "End-to-end
  optimized image compression", ICLR 2017, sec. 3.1).
- :func:`straight_through`: rounds forward, passes the gradient unchanged backward
  (Bengio et al. 2013; Theis et al., "Lossy image compression with compressive
  autoencoders", ICLR 2017).
- :func:`universal`: rounding with a dither ``u`` shared by encoder and decoder through
  a seed, so the error is exactly uniform as in training (Agustsson & Theis,
  "Universally quantized neural compression", NeurIPS 2020, sec. 3).
- :func:`soft_round`: a smooth approximation of rounding whose sharpness ``alpha`` is
  annealed (Agustsson & Theis 2020, eq. 7); :func:`soft_round_alpha` is a schedule that
  ends at :data:`SOFT_ROUND_ALPHA`, also every default sharpness.
- :func:`sga`: stochastic Gumbel annealing, a relaxed random choice between rounding
  down and up whose temperature ``tau`` goes to zero (Yang, Bamler & Mandt, "Improving
  inference for neural image compression", NeurIPS 2020, sec. 3.3);
  :func:`sga_temperature` is the paper's schedule.
"""

from __future__ import annotations

import math

import torch

from . import seeding


def _shift(y: torch.Tensor, means) -> torch.Tensor:
    return y if means is None else y - means


def _unshift(values: torch.Tensor, means) -> torch.Tensor:
    return values if means is None else values + means


def hard_round(y: torch.Tensor, means=None) -> torch.Tensor:
    """``round(y - mu) + mu``: the quantizer the coder uses (zero gradient)."""
    return _unshift(torch.round(_shift(y, means)), means)


def uniform_noise(
    y: torch.Tensor, means=None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``y + u`` with ``u ~ U(-1/2, 1/2)``: the training proxy for rounding (Ballé,
    Laparra and Simoncelli 2017, sec. 2). With one seed it draws what CompressAI's
    entropy models draw. The grid offset ``means`` does not change the noise; it is
    accepted so that every function here is called alike."""
    noise = (
        torch.rand(y.shape, generator=generator, device=y.device, dtype=y.dtype) - 0.5
    )
    return y + noise


def straight_through(y: torch.Tensor, means=None) -> torch.Tensor:
    """Rounds in the forward pass; in the backward pass the gradient is the identity."""
    return y + (hard_round(y, means) - y).detach()


def dither(shape, seed: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The shared dither ``u ~ U(-1/2, 1/2)`` of universal quantization, drawn on
    ``device`` (default: the CPU): the same ``seed`` gives the same ``u`` to an encoder
    and a decoder on the same kind of device."""
    device = device or "cpu"
    generator = seeding.generator(device, seed)
    return (
        torch.rand(tuple(shape), generator=generator, dtype=dtype, device=device) - 0.5
    )


def universal(y: torch.Tensor, seed: int, means=None) -> torch.Tensor:
    """``round(y - mu - u) + u + mu`` with the dither ``u = dither(y.shape, seed)``.

    The encoder codes the integers ``round(y - mu - u)``; the decoder adds the same
    ``u`` back. The error is then uniform on ``(-1/2, 1/2)`` and independent of ``y``,
    exactly the noise of training. The gradient is passed straight through."""
    u = dither(y.shape, seed, y.device, y.dtype)
    quantized = _unshift(torch.round(_shift(y, means) - u) + u, means)
    return y + (quantized - y).detach()


def soft_round(y: torch.Tensor, alpha: float, means=None) -> torch.Tensor:
    """``floor(v) + 1/2 + tanh(alpha r) / (2 tanh(alpha / 2))`` with ``v = y - mu`` and
    ``r = v - floor(v) - 1/2``, plus ``mu``: the identity as ``alpha -> 0`` and
    rounding as ``alpha -> inf``; smooth and increasing in between."""
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    v = _shift(y, means)
    floor = torch.floor(v)
    r = v - floor - 0.5
    return _unshift(
        floor + 0.5 + torch.tanh(alpha * r) / (2 * math.tanh(alpha / 2)), means
    )


SOFT_ROUND_ALPHA = 16.0  # the sharpness soft rounding is annealed to, and every default


def soft_round_alpha(
    step: int, steps: int, start: float = 1.0, end: float = SOFT_ROUND_ALPHA
) -> float:
    """Sharpness annealed from ``start`` to ``end``, evenly in log, over ``steps``
    steps."""
    fraction = min(max(step / max(steps, 1), 0.0), 1.0)
    return start * (end / start) ** fraction


RELAXATIONS = ("noise", "straight_through", "mixed", "universal", "soft_round")


def relax(
    y: torch.Tensor,
    relaxation: str,
    means=None,
    alpha: float = SOFT_ROUND_ALPHA,
    seed: int = 0,
):
    """``(for the rate, for the decoder)``: what a model trained with ``relaxation``
    gives its entropy model and its synthesis transform in place of ``round(y - mu) +
    mu``.

    - ``"noise"``: ``y + u`` for both.
    - ``"straight_through"``: straight-through rounding for both.
    - ``"mixed"``: ``y + u`` for the rate, straight-through rounding for the decoder
      (Minnen & Singh, "Channel-wise autoregressive entropy models for learned image
      compression", ICIP 2020, sec. 2.2).
    - ``"universal"``: :func:`universal` with the dither of ``seed`` for both.
    - ``"soft_round"``: ``y + u`` for the rate, ``soft_round(y, alpha)`` for the
      decoder.
    """
    if relaxation == "noise":
        noisy = uniform_noise(y)
        return noisy, noisy
    if relaxation == "straight_through":
        rounded = straight_through(y, means)
        return rounded, rounded
    if relaxation == "mixed":
        return uniform_noise(y), straight_through(y, means)
    if relaxation == "universal":
        dithered = universal(y, seed, means)
        return dithered, dithered
    if relaxation == "soft_round":
        return uniform_noise(y), soft_round(y, alpha, means)
    raise ValueError(
        f"unknown relaxation {relaxation!r}; choose one of {', '.join(RELAXATIONS)}"
    )


def sga(
    y: torch.Tensor,
    tau: float,
    means=None,
    generator: torch.Generator | None = None,
    epsilon: float = 1e-5,
) -> torch.Tensor:
    """One sample of stochastic Gumbel annealing: ``w_down * floor(v) + w_up * ceil(v)``
    (plus ``mu``), where ``(w_down, w_up)`` is a Gumbel-softmax sample at temperature
    ``tau`` with logits ``-atanh(v - floor v) / tau`` and ``-atanh(ceil v - v) / tau``:
    the nearer integer is the likelier, and as ``tau -> 0`` the sample becomes a hard,
    random rounding. Differentiable in ``y``."""
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    v = _shift(y, means)
    floor = torch.floor(v)
    down = (v - floor).clamp(epsilon, 1 - epsilon)
    logits = torch.stack([-torch.atanh(down), -torch.atanh(1 - down)], dim=-1) / tau
    uniform = torch.rand(
        logits.shape, generator=generator, device=y.device, dtype=y.dtype
    )
    gumbel = -torch.log((-torch.log(uniform.clamp_min(1e-20))).clamp_min(1e-20))
    weights = torch.softmax((logits + gumbel) / tau, dim=-1)
    return _unshift(floor + weights[..., 1], means)


def sga_temperature(
    step: int,
    decay: float = 1e-3,
    start: float = 0.5,
    warmup: int = 700,
    minimum: float = 1e-8,
) -> float:
    """Yang et al.'s schedule: ``tau = start`` for ``warmup`` steps, then
    ``start * exp(-decay * (step - warmup))``, never below ``minimum``."""
    tau = start * math.exp(-decay * max(step - warmup, 0))
    return min(max(tau, minimum), start)
