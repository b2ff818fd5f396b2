"""How long each chapter takes at the ``gpu`` budget on a Colab T4, estimated from
counted FLOPs (issue 35), since CI has no GPU to time it on.

Each chapter's network work at a budget is listed here (:func:`chapter_work`, the same
steps, batches and crops as the notebook and the ``experiments`` helpers it calls), as
:class:`Work` items; the FLOPs of one forward pass of a model are counted by PyTorch's
FLOP counter on the ``meta`` device (:func:`forward_flops`, instant: no arithmetic
runs), a training step costs three forward passes (the backward pass about two), and
the total is divided by a T4's throughput. On Colab each notebook runs on a fresh
machine; the chapters after the end-to-end one start from the zoo's shipped models
(``experiments.zoo_family``), so their work is at the zoo's sizes (:data:`ZOO`) and
none trains the end-to-end chapter's family first.

The throughput is an assumption, stated: the T4's peak of 8.1 TFLOP/s in float32
(NVIDIA's datasheet) at :data:`UTILIZATION` of it, a usual share for small
convolutional networks trained in float32. Work that is not arithmetic (the serial
decoder's Python loop over positions, entropy coding, classical codecs, the CPU's toy
experiments) is not counted. ``make gpu-check`` measures seconds a training step on a
real GPU: where one was available, compare its figures with these.

``python -m lic_teach.gpu_estimate [--sizes gpu]`` prints the estimate per chapter.
"""

from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import dataclass

import torch

from . import budget, complexity
from .models import (
    CheckerboardContext,
    FactorizedPrior,
    JointAutoregressive,
    MeanScaleHyperprior,
    ScaleHyperprior,
)

T4_PEAK_FLOPS = 8.1e12  # float32, NVIDIA T4 datasheet
UTILIZATION = 0.3  # assumed share of the peak; make gpu-check measures the real pace
STEP_SECONDS = 0.01  # assumed a training step's cost beside its FLOPs: Python, launches
LAUNCH_SECONDS = 1e-5  # assumed: one small CUDA kernel's launch, waited for
LIMIT_SECONDS = 600  # the gpu budget's promise: 10 minutes a chapter on a T4
ZOO = (48, 64)  # N, M of the shipped zoo's models
EVALUATION_SIDE = 512  # the held-out photos, about 512 x 512 each
CHAPTERS = (
    "ch01_transform_coding",
    "ch02_entropy_coding",
    "ch03_end_to_end",
    "ch04_quantization",
    "ch05_decoder_sees",
    "ch06_hyperprior",
    "ch07_context_models",
    "ch08_distillation",
    "ch09_shallow_decoders",
    "ch10_quantization_rectifier",
    "ch11_lattice_vq",
    "ch12_evaluating_codecs",
)


@dataclass(frozen=True)
class Work:
    """``passes`` images of ``side x side`` pixels through ``model(N, M)``: forward
    only, or trained (``training``: forward and backward); ``part``: ``"all"``,
    ``"hyper"`` for the entropy model alone (what the model adds to a factorized
    prior's transforms, trained on fixed latents), or ``"students"`` for the
    distillation chapter's student synthesis transforms of a teacher of ``N``, ``M``
    (:func:`student_flops`; ``model`` unused). ``steps``: the optimizer steps it
    takes, each costing :data:`STEP_SECONDS` beside its arithmetic (Python, kernel
    launches, the optimizer), plus ``seconds_a_step`` of work that is not arithmetic."""

    what: str
    model: type | None
    N: int
    M: int
    side: int
    passes: int
    training: bool = False
    part: str = "all"
    steps: int = 0
    seconds_a_step: float = 0.0

    def flops(self) -> float:
        """The item's floating-point operations."""
        if not self.passes:
            return 0.0
        if self.part == "students":
            per_pass = student_flops(self.N, self.M, self.side)
        else:
            per_pass = forward_flops(self.model, self.N, self.M, self.side)
        if self.part == "hyper":
            per_pass -= forward_flops(FactorizedPrior, self.N, self.M, self.side)
        return per_pass * self.passes * (3 if self.training else 1)


@functools.cache
def forward_flops(model: type, N: int, M: int, side: int) -> float:
    """FLOPs of one forward pass of ``model(N, M)`` on a ``side x side`` image,
    counted on the ``meta`` device (shapes only)."""
    with torch.device("meta"):
        network = model(N, M)
        image = torch.zeros(1, 3, side, side)
    return 2.0 * complexity.macs(network, image)


@functools.cache
def student_flops(N: int, M: int, side: int) -> float:
    """FLOPs of one pass of the distillation chapter's three student transforms,
    averaged (its ``designs`` for a teacher of ``N``, ``M``), on the latents of a
    ``side x side`` image."""
    from .distillation import student_synthesis

    designs = (((N // 2,) * 3, (2, 2, 2, 2)), ((N, N), (2, 2, 4)), ((12,), (8, 2)))
    with torch.device("meta"):
        latent = torch.zeros(1, M, side // 16, side // 16)
        counts = [
            complexity.macs(student_synthesis(M, *design), latent) for design in designs
        ]
    return 2.0 * sum(counts) / len(counts)


def seconds(work: list[Work]) -> float:
    """The estimated seconds of ``work`` on a T4: its FLOPs at :data:`UTILIZATION`
    of the peak, and each step's :data:`STEP_SECONDS` and ``seconds_a_step``."""
    arithmetic = sum(w.flops() for w in work) / (T4_PEAK_FLOPS * UTILIZATION)
    return arithmetic + sum(w.steps * (STEP_SECONDS + w.seconds_a_step) for w in work)


def end_to_end_family(B: budget.Budget) -> list[Work]:
    """The end-to-end chapter's family (``experiments.factorized_family``): a base
    model at the middle lambda for ``train_steps``, then a fifth of that for each
    lambda."""
    return [
        Work("the end-to-end chapter's base model", FactorizedPrior, B.N, B.M,
             B.patch_size, B.train_steps * B.batch_size, True,
             steps=B.train_steps),
        Work("the end-to-end chapter's fine-tunes", FactorizedPrior, B.N, B.M,
             B.patch_size, B.rd_models * (B.train_steps // 5) * B.batch_size, True,
             steps=B.rd_models * (B.train_steps // 5)),
    ]  # fmt: skip


def _entropy_models(B: budget.Budget, models: tuple) -> list[Work]:
    """``experiments.train_architectures``: each model's entropy model on the fixed
    latents of the zoo's transforms, a quarter of the base steps in batches of 4 crops
    of 256 pixels, one per lambda; and the latents of 512 crops, once per lambda."""
    steps, side = max(1, B.train_steps // 4), max(B.patch_size, 256)
    return [
        Work("latents of the crops", FactorizedPrior, *ZOO, side, B.rd_models * 512),
        *(
            Work(f"{m.__name__}'s entropy model", m, *ZOO, side,
                 B.rd_models * steps * 4, True, part="hyper",
                 steps=B.rd_models * steps)
            for m in models
        ),
    ]  # fmt: skip


def _evaluation(B: budget.Budget, models: int, size: int = EVALUATION_SIDE, sizes=None):
    """``models`` models of ``sizes`` (``N``, ``M``; default the budget's) coding
    ``B.eval_images`` photos: a warm-up, the code and the estimate, about three passes
    each."""
    return Work("evaluation", FactorizedPrior, *(sizes or (B.N, B.M)), size,
                3 * models * B.eval_images)  # fmt: skip


# the notebooks' own budget tables: the distillation chapter's student steps, the
# quantization chapter's SGA steps, the shallow decoders' SGA (steps, crop, qualities)
STUDENT_STEPS = {"smoke": 10, "cpu": 260, "gpu": 2000}
SGA_STEPS = {"smoke": 10, "cpu": 200, "gpu": 1000}
SHALLOW_SGA = {"smoke": (3, 64, 1), "cpu": (120, 128, 4), "gpu": (1000, 256, 4)}


def chapter_work(chapter: str, B: budget.Budget) -> list[Work]:
    """The network work of ``chapter`` (its notebook's name, as in :data:`CHAPTERS`)
    at ``B``'s sizes, on a fresh machine (the numbers are the notebook's and its
    helpers')."""
    finetune = max(1, B.train_steps // 15)  # end_to_end.finetune_steps
    steps, sga = STUDENT_STEPS[B.name], SGA_STEPS[B.name]
    sga_9, side, qualities = SHALLOW_SGA[B.name]
    gains = 6 * (1 + 2 * ZOO[1]) * 8  # rdoq.channel_gains: 2 probes a channel, 6 calls
    latent_positions = (B.patch_size // 16) ** 2
    work = {
        "ch01_transform_coding": [],  # classical codecs and the DCT, on the CPU
        "ch02_entropy_coding": [],  # entropy coding, on the CPU
        "ch03_end_to_end": [*end_to_end_family(B), _evaluation(B, 3 * 2)],
        "ch04_quantization": [
            Work("15 relaxations' fine-tunes", FactorizedPrior, *ZOO,
                 B.patch_size, 15 * finetune * B.batch_size, True,
                 steps=15 * finetune),
            Work("SGA of one 256-px crop", FactorizedPrior, *ZOO, 256, sga, True,
                 steps=sga),
            _evaluation(B, 15 * 2, sizes=ZOO),
        ],
        "ch05_decoder_sees": [
            Work("12 decoders' fine-tunes", FactorizedPrior, *ZOO, B.patch_size,
                 12 * finetune * B.batch_size, True, steps=12 * finetune),
            # the trellis decoders' Viterbi search, a Python loop over the positions
            # of a step's latents, about 25 kernel launches each
            Work("the trellis's search in 3 decoders' training", None, *ZOO,
                 B.patch_size, 0, steps=3 * finetune,
                 seconds_a_step=latent_positions * 25 * LAUNCH_SECONDS),
            Work("channel gains", FactorizedPrior, *ZOO, B.patch_size, gains),
            _evaluation(B, 21, sizes=ZOO),
        ],
        "ch06_hyperprior": [
            *_entropy_models(B, (ScaleHyperprior, MeanScaleHyperprior)),
            _evaluation(B, 9 + 6 + 6, sizes=ZOO),
        ],
        "ch07_context_models": [
            *_entropy_models(B, (MeanScaleHyperprior, CheckerboardContext,
                                 JointAutoregressive)),
            _evaluation(B, 12 + 6, sizes=ZOO),
        ],
        # 12 students, one with features, a pruned one and its control at half
        "ch08_distillation": [
            Work("the teacher's passes for 14 students", FactorizedPrior, *ZOO,
                 B.patch_size, 14 * steps * B.batch_size),
            Work("14 students' training", None, *ZOO, B.patch_size,
                 14 * steps * B.batch_size, True, part="students",
                 steps=14 * steps),
            Work("h_s student", ScaleHyperprior, *ZOO, 256,
                 3 * steps * B.batch_size, True, part="hyper", steps=steps),
        ],
        "ch09_shallow_decoders": [
            Work(f"{6 * qualities} SGA runs of {side}-px crops", MeanScaleHyperprior,
                 *ZOO, side, 6 * qualities * sga_9, True,
                 steps=6 * qualities * sga_9),
        ],
        "ch10_quantization_rectifier": [
            Work("phase 2 and its controls (2250 steps of 8 crops of 128 px)",
                 FactorizedPrior, *ZOO, 128, 2250 * 8, True, steps=2250),
        ],
        "ch11_lattice_vq": [
            Work("18 lattice fine-tunes (150 steps of 8 crops of 128 px)",
                 FactorizedPrior, *ZOO, 128, 18 * 150 * 8, True, steps=18 * 150),
        ],
        "ch12_evaluating_codecs": [
            *_entropy_models(B, (MeanScaleHyperprior, CheckerboardContext)),
            _evaluation(B, 29 * 5, 850, sizes=ZOO),  # 5 images of 3.66 megapixels
        ],
    }  # fmt: skip
    if chapter not in work:
        raise ValueError(
            f"no chapter {chapter!r}; the book's are {', '.join(CHAPTERS)}"
        )
    return work[chapter]


def table(B: budget.Budget) -> list[tuple[str, float, str]]:
    """``(chapter, estimated seconds, its largest item)`` for each chapter."""
    rows = []
    for chapter in CHAPTERS:
        work = chapter_work(chapter, B)
        largest = max(work, key=lambda w: w.flops()).what if work else "none"
        rows.append((chapter, seconds(work), largest))
    return rows


def main(argv=None) -> int:
    """Print the estimate per chapter; 1 if a chapter exceeds the gpu budget's
    promise."""
    parser = argparse.ArgumentParser(
        prog="python -m lic_teach.gpu_estimate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", default="gpu", choices=budget.NAMES)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    B = sizes(args.sizes)
    print(
        f"{B}\nT4: {T4_PEAK_FLOPS / 1e12:.1f} TFLOP/s float32 peak, "
        f"{UTILIZATION:.0%} of it assumed; network work only"
    )
    over = False
    for chapter, estimate, largest in table(B):
        over |= estimate > LIMIT_SECONDS
        print(f"{chapter:<30} {estimate / 60:5.1f} min  (most: {largest})")
    return 1 if over and B.name == "gpu" else 0


def sizes(name: str) -> budget.Budget:
    """The sizes of budget ``name``, without the warning of a gpu budget where CUDA
    is absent."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return budget.budget(name)


if __name__ == "__main__":
    sys.exit(main())
