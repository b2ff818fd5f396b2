"""How much compute a chapter may spend: the ``smoke``, ``cpu`` and ``gpu`` budgets.

Every chapter reads ``budget()`` once and sizes its experiments from it, so the same
notebook proves that it runs in CI (``smoke``, at most 60 s a chapter), gives small but
real results on a laptop (``cpu``, at most 5 min) and fuller ones on a Colab GPU
(``gpu``, at most 15 min). The budget comes from the environment variable
``LIC_BUDGET``; without it, ``gpu`` is chosen when CUDA is available, else ``cpu``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass

import torch

from . import device_check

ENV_VAR = "LIC_BUDGET"


@dataclass(frozen=True)
class Budget:
    """Sizes of the experiments a chapter runs.

    Attributes: name: ``"smoke"``, ``"cpu"`` or ``"gpu"``. train_steps: optimizer steps
    for a model trained live. batch_size: patches per training step. patch_size: side of
    the square training crops, in pixels. N: channels of the hidden layers of a learned
    transform. M: channels of the latent ``y``. eval_images: how many held-out images an
    evaluation uses (at most). eval_size: side of the centre crop an evaluation codes,
    in pixels (``None``: whole image). rd_points: how many points a cheap
    rate-distortion curve has (classical codecs). rd_models: how many models (one per
    lambda) a chapter trains for a learned curve. device: ``"cuda"`` or ``"cpu"`` (or
    ``"meta"``, the stand-in of :mod:`lic_teach.device_check`).
    """

    name: str
    train_steps: int
    batch_size: int
    patch_size: int
    N: int
    M: int
    eval_images: int
    eval_size: int | None
    rd_points: int
    rd_models: int
    device: str

    def __str__(self) -> str:
        return (
            f"budget '{self.name}' on {self.device}: "
            f"{self.train_steps} training steps, "
            f"batch {self.batch_size} of {self.patch_size}x{self.patch_size} patches, "
            f"N={self.N}, M={self.M}, {self.eval_images} evaluation image(s), "
            f"{self.rd_points} R-D points, {self.rd_models} trained models per curve"
        )

    def as_dict(self) -> dict:
        return asdict(self)


# One row a budget, one column a field of Budget (after name; device comes from CUDA).
# smoke: proves the code runs (every chapter <= 60 s in CI).
# cpu: N=32, M=48 converged fastest per second of the sizes tried; the end-to-end
# chapter's 2400 + 3 x 480 steps leave room in its 5 minutes on a 2-core CPU for the
# rest of it.
# gpu: sized for a Colab T4 by lic_teach.gpu_estimate (counted FLOPs at an assumed 30%
# of the T4's peak, and 10 ms a step beside them; CI has no GPU). At N=128, M=192 and
# 4000 steps the end-to-end family alone took 13 minutes, and the chapters that retrain
# it on a fresh Colab machine up to 22; at N=96, M=128 and 2400 steps no chapter takes
# more than 8.7.
_FIELDS = ("train_steps", "batch_size", "patch_size", "N", "M", "eval_images",
           "eval_size", "rd_points", "rd_models")  # fmt: skip
_SIZES = {
    #         steps batch patch    N    M images   size points models
    "smoke": (   20,    4,   64,  16,  24,     1,   128,     3,     2),
    "cpu":   ( 2400,    8,   64,  32,  48,     2,  None,     6,     3),
    "gpu":   ( 2400,    8,  256,  96, 128,     2,  None,     8,     3),
}  # fmt: skip
NAMES = tuple(_SIZES)


def default_name() -> str:
    """``gpu`` when CUDA is available, else ``cpu`` (``smoke`` is only ever asked
    for)."""
    return "gpu" if torch.cuda.is_available() else "cpu"


def budget(name: str | None = None) -> Budget:
    """The active budget: ``name`` if given, else ``$LIC_BUDGET``, else by CUDA.

    Raises:
        ValueError: for a name that is not one of ``smoke``, ``cpu``, ``gpu``.
    """
    chosen = (
        name
        if name is not None
        else os.environ.get(ENV_VAR, "").strip() or default_name()
    )
    key = chosen.lower()
    if key not in _SIZES:
        raise ValueError(
            f"unknown budget {chosen!r} (from {'argument' if name else ENV_VAR}); "
            f"choose one of {', '.join(NAMES)}"
        )
    cuda = torch.cuda.is_available()
    if key == "gpu" and not cuda:
        warnings.warn(
            "budget 'gpu' asked for but CUDA is not available: it will run on the "
            "CPU and take far longer than 15 minutes a chapter",
            stacklevel=2,
        )
    sizes = dict(zip(_FIELDS, _SIZES[key], strict=True))
    return Budget(name=key, device=_device(cuda), **sizes)


def _device(cuda: bool) -> str:
    """``cuda`` or ``cpu``; with ``LIC_TEACH_CHECK_DEVICES=1``, the CPU's stand-in for
    a second device (``lic_teach.device_check``), put in use for this process."""
    if os.environ.get(device_check.ENV_VAR, "").strip() == "1":
        return str(device_check.activate())
    return "cuda" if cuda else "cpu"


def device_named(name: str) -> torch.device:
    """The device a command line asks for by ``name`` (``cpu``, ``cuda``, ``cuda:1``);
    ``ValueError`` saying why, for a name torch does not know or a CUDA device this
    machine lacks (rather than torch's error at the first tensor moved there)."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}: use cpu or cuda") from error
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ValueError(
                f"device {name!r} asked for, but this machine has "
                f"{count or 'no'} CUDA GPU{'' if count == 1 else 's'}"
            )
    elif device.type != "cpu":
        raise ValueError(f"device {name!r}: use cpu or cuda")
    return device
