"""The zoo's recipe study (issue 34), and the zoo's one trainer: a few training recipes
at one lambda, each given the same CPU time, measured on held-out photos through real
bitstreams; ``make zoo`` trains the recipes :data:`ZOO` has chosen, one per family, and
publishes them into the zoo (:func:`to_zoo`).

Every recipe trains one model from scratch at ``lambda = 0.025`` (a mid rate) on
:class:`lic_teach.zoo_data.AugmentedCrops` of the zoo's training photos, with one CPU
thread (``torch.set_num_threads(1)``), for ``cpu_seconds`` of ``time.process_time()``
spent in training steps: equal CPU, not equal steps, since what the zoo can afford is
CPU time. The loss is ``train.RateDistortionLoss`` (Ballé et al. 2017, eq. 2, on
CompressAI's scale); Adam at ``lr`` (gradients clipped), dropped to ``lr / 10`` once
``decay_at`` of the CPU budget is spent (``train.learning_rate``; issue 34's probe found
this drop worth 1.5-3 dB); the entropy models' quantiles by their own Adam on
``model.aux_loss()`` (Ballé et al. 2018).

The training is ``train.train_steps``, called for :data:`CHUNK` steps at a time with
both Adams given, so that their moments carry from one call to the next, each call at
the rate the CPU schedule gives at its start; the CPU clock is read after each call.
It runs in *segments* of ``segment_seconds`` of CPU, each ending with the first call
that reaches its end. After each, into :data:`FOLDER`:

- ``<recipe>.safetensors``: the weights as float16 (package data, small);
- ``resume/<recipe>.pt``: the exact training state (float32 weights, both Adams'
  moments, torch's random state, steps, CPU seconds, the record), which a later run
  continues from exactly; not package data. Without it a run continues from the
  float16 weights with fresh Adam moments, and the record says so;
- ``<recipe>.json``: the record, one measured point per segment: steps, CPU seconds,
  the float16 model's real-bitstream bpp and PSNR on the held-out photos
  (``evaluate.codec_point``; astronaut and flower), the PSNR Pillow's JPEG reaches at
  that bpp on the same photos (linear in bpp between the points of a quality sweep),
  and the transforms' *ceiling*: the PSNR of ``g_s(g_a(x))`` with continuous ``y``
  (no quantization) on the training photos and on the held-out photos. A trained
  model's coded PSNR lies below its ceiling, so a ceiling below JPEG's PSNR at the
  model's rate says the transforms, not the entropy model, hold the curve down.

A record carries ``cache.settings_hash`` of its recipe and names the photos it trained
on (``trained_on``); a rerun skips finished segments and refuses a record made by other
settings or on other photos. Crops depend on ``(seed, index)`` alone and the state file
holds everything else, so a run stopped after any segment and continued ends with the
weights of a run straight through.

A run trains on the bundled photos (``zoo_data.training_photos``) or on a folder of the
user's own (``zoo_data.folder_photos``), on the CPU or on another device (``"cuda"``):
the model, both Adams and the batches live there, measuring follows the model, and the
state in ``resume/`` is kept on the CPU, so a run may continue on another device. Off
the CPU the clock counts wall seconds, read once the device's queued work is done
(``complexity.clock``); each segment records its ``device``.

``python -m lic_teach.experiments.zoo_recipe [--minutes-per-recipe N] [--recipes a,b]``
(the study); ``... --zoo [--families a,b] [--data DIR --folder F --to-zoo Z]
[--device cuda]`` (``make zoo``: :data:`ZOO`, trained and published into the zoo)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import math
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import lic_teach

from .. import (
    baselines,
    budget,
    cache,
    complexity,
    data,
    evaluate,
    metrics,
    tables,
    train,
    zoo,
    zoo_data,
)
from ..models import registry
from ..seeding import seeded

FOLDER = Path(__file__).resolve().parent.parent / "studies" / "zoo_recipe"
CHUNK = 10  # training steps between two readings of the CPU clock


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One recipe: ``architecture`` (a zoo family: a key of ``zoo.FAMILIES``) with
    ``N``, ``M``, trained on ``batch_size`` crops of ``patch_size`` pixels (augmented as
    ``min_scale``, ``flip``, ``rotate``, ``swap_channels`` say) at ``lmbda`` for
    ``cpu_seconds`` of CPU, in segments of ``segment_seconds``. ``eval_size``:
    measure on the central square of that size of each photo (``None``: the whole
    photos).

    ``cooldown`` > 0 makes the run open-ended, as the warmup-stable-decay schedule
    does (Hägele et al., "Scaling laws and compute-optimal training beyond fixed
    training durations", NeurIPS 2024): the trunk trains at ``lr`` throughout
    (``decay_at`` is not used), a later run may continue it with a larger
    ``cpu_seconds``, and at :func:`cools_down` segments a copy of it is trained
    ``cooldown`` times its steps more at ``lr / 10`` and measured: what a run that
    ended there with a decay would reach, without committing the trunk to an end.
    ``cooldown_lambdas``: the copy is also cooled down at each of these lambdas (a
    fine-tune and a decay in one), so that each cooldown point has a curve of several
    rates and a BD-rate against JPEG."""

    name: str
    architecture: str
    N: int
    M: int
    patch_size: int
    batch_size: int
    lmbda: float = 0.025
    lr: float = 1e-3
    decay_at: float = 0.9
    aux_lr: float = 1e-3
    clip_max_norm: float = 1.0
    min_scale: float = 0.5
    flip: bool = True
    rotate: bool = True
    swap_channels: float = 0.0
    cpu_seconds: float = 1800.0
    segment_seconds: float = 300.0
    seed: int = 0
    eval_size: int | None = None
    cooldown: float = 0.0
    cooldown_lambdas: tuple[float, ...] = ()

    def key(self) -> str:
        """The hash a record carries (:func:`lic_teach.cache.settings_hash`): of every
        field, less ``cooldown`` where it is 0 (records made before it existed keep
        their hash), less ``cpu_seconds`` where it is not (an open-ended run does not
        depend on its budget, which a later run may raise), and less
        ``cooldown_lambdas`` (they add measurements, and change no weight of the
        trunk), and less ``swap_channels`` where it is 0 (as for ``cooldown``)."""
        settings = dataclasses.asdict(self)
        del settings["cpu_seconds" if self.cooldown else "cooldown"]
        if not self.swap_channels:
            del settings["swap_channels"]
        del settings["cooldown_lambdas"]
        return cache.settings_hash(settings)


# Every recipe sees 131,072 pixels a step (8 crops of 128 or 2 of 256), so equal CPU is
# close to equal data. First, 30 CPU minutes each, the entropy model at equal
# transforms: the factorized prior against the mean-scale hyperprior, N=64/M=128 on
# 256-pixel crops (which give the hyper-latent z 4x4 positions instead of 2x2); the
# mean-scale zoo losing to the factorized one is issue 34's most puzzling result. Then
# open-ended runs (``cooldown``), continued over several sessions, which answer what
# wins after hours rather than half an hour: the narrow factorized prior that won
# issue 34's 35-minute probe, a CompressAI-like width, and the mean-scale hyperprior
# at that width; and two controls of the first.
OPEN_ENDED = {"cooldown": 0.1, "cpu_seconds": 8 * 3600.0}
RECIPES = (
    Recipe("mean-scale-N64-M128-p256", "mean-scale", 64, 128, 256, 2),
    Recipe("factorized-N64-M128-p256", "factorized", 64, 128, 256, 2),
    Recipe(
        "factorized-N48-M64-p128-open",
        "factorized",
        48,
        64,
        128,
        8,
        **OPEN_ENDED,
        cooldown_lambdas=(0.0018, 0.0067, 0.0932),  # the old zoo's other lambdas
    ),
    Recipe(
        "factorized-N96-M192-p128-open", "factorized", 96, 192, 128, 8, **OPEN_ENDED
    ),
    Recipe(
        "mean-scale-N96-M192-p256-open", "mean-scale", 96, 192, 256, 2, **OPEN_ENDED
    ),
    # the mean-scale hyperprior at the narrow trunk's transforms (N=48, M=64), on
    # 256-pixel crops for a 4x4 z: the N=96 one is slow and its rate spiked three times
    # at lr 1e-3 in 55 minutes; does the hyperprior beat the factorized prior at equal
    # transforms and CPU?
    Recipe(
        "mean-scale-N48-M64-p256-open",
        "mean-scale",
        48,
        64,
        256,
        2,
        **OPEN_ENDED,
        cooldown_lambdas=(0.0018, 0.0067, 0.0932),
    ),
    # the ladder at equal recipe (issue 34): the factorized prior and the scale
    # hyperprior with the mean-scale one's transforms, crops and schedule
    Recipe(
        "factorized-N48-M64-p256-open",
        "factorized",
        48,
        64,
        256,
        2,
        **OPEN_ENDED,
        cooldown_lambdas=(0.0018, 0.0067, 0.0932),
    ),
    Recipe(
        "scale-N48-M64-p256-open",
        "scale",
        48,
        64,
        256,
        2,
        **OPEN_ENDED,
        cooldown_lambdas=(0.0018, 0.0067, 0.0932),
    ),
    # the ladder's fourth rung: the mean-scale hyperprior with He et al.'s checkerboard
    # context (two parallel passes), same transforms, crops and schedule
    Recipe(
        "checkerboard-N48-M64-p256-open",
        "checkerboard",
        48,
        64,
        256,
        2,
        **OPEN_ENDED,
        cooldown_lambdas=(0.0018, 0.0067, 0.0932),
    ),
    # the flat top's capacity test: the cooled copies at the top lambda come within
    # 0.3 dB of their transforms' ceiling at M=64, so is it the width that caps the top?
    # Both trained at the top lambda from the start, at equal CPU: the zoo's width and
    # a wider one (CompressAI widens M to 320 for its top qualities)
    Recipe(
        "factorized-N48-M64-p256-l0.0932-open",
        "factorized",
        48,
        64,
        256,
        2,
        lmbda=0.0932,
        **OPEN_ENDED,
    ),
    Recipe(
        "factorized-N64-M128-p256-l0.0932-open",
        "factorized",
        64,
        128,
        256,
        2,
        lmbda=0.0932,
        **OPEN_ENDED,
    ),
    # the ladder again with the colour channels of half the crops swapped
    # (``zoo_data.AugmentedCrops``): the mean-scale hyperprior above lost its held-out
    # rate after 65 minutes, its hyper-synthesis predicting means near 2,000 on the
    # flower photo, and near 5,000 on its own training photos with two channels
    # swapped: five scenes teach it too few colours. Five lambdas, for rates from about
    # 0.1 to 1 bpp (the old zoo's four spanned 0.2 to 0.66 bpp on the evaluation images)
    *(
        Recipe(
            f"{family}-N48-M64-p256-swap-open",
            family,
            48,
            64,
            256,
            2,
            swap_channels=0.5,
            **OPEN_ENDED,
            cooldown_lambdas=(0.0009, 0.0035, 0.0932, 0.25),
        )
        for family in ("mean-scale", "checkerboard", "scale", "factorized")
    ),
    # two controls of the narrow factorized trunk: trained at 0.0067 from the start
    # (against its copies fine-tuned to 0.0067 during the cooldown: per-lambda
    # training or fine-tuning?), and without the augmentation (no downscaling, flips
    # or turns: what does it add?)
    Recipe(
        "factorized-N48-M64-p128-l0.0067-open",
        "factorized",
        48,
        64,
        128,
        8,
        lmbda=0.0067,
        **OPEN_ENDED,
    ),
    Recipe(
        "factorized-N48-M64-p128-plain-open",
        "factorized",
        48,
        64,
        128,
        8,
        min_scale=1.0,
        flip=False,
        rotate=False,
        **OPEN_ENDED,
    ),
)

# The zoo, one recipe a family: the study's current choice (issue 34), the ladder at
# equal recipe with colour swaps, each trained for ZOO_MINUTES of CPU by ``make zoo``
# and published at its lambda and its cooldown lambdas. The shallow-decoder families
# (jpeg-like, two-layer) have no recipe in it yet.
ZOO = tuple(
    f"{family}-N48-M64-p256-swap-open"
    for family in ("factorized", "scale", "mean-scale", "checkerboard")
)
ZOO_MINUTES = 80


# ------------------------------------------------------------------------ measuring


def jpeg_curve(images) -> metrics.RDCurve:
    """Pillow's JPEG (``baselines.CLASSICAL["jpeg"]``) on ``images`` at each of
    ``baselines.DENSE_QUALITIES``: real bytes, averaged over the images."""
    return evaluate.classical_curve("jpeg", images, baselines.DENSE_QUALITIES)


def jpeg_psnr_at(curve: metrics.RDCurve, rate: float) -> float | None:
    """The PSNR ``curve`` reaches at ``rate`` bpp, linear between its points
    (``baselines.psnr_at_rate``); ``None`` outside its rates."""
    try:
        return baselines.psnr_at_rate(curve, rate)
    except ValueError:
        return None


def half_precision(model):
    """A copy of ``model`` with its parameters rounded to float16 and its coding
    tables rebuilt from them: the model the ``.safetensors`` file holds."""
    return zoo.rounded_to_half(copy.deepcopy(model).eval())


def measure(model, held_out: dict, training: dict, jpeg: metrics.RDCurve) -> dict:
    """A record's point for ``model`` (float16 as shipped): real-bitstream ``bpp`` and
    ``psnr`` on ``held_out`` (``evaluate.codec_point``), ``jpeg_psnr`` at that rate
    and the difference ``over_jpeg_db``, the ``ceiling`` on ``training`` and on
    ``held_out`` photos, and the range of the hyper-synthesis's output on each
    (``evaluate.hyper_synthesis_range``; ``None`` without a hyperprior)."""
    shipped = half_precision(model)
    point = evaluate.codec_point(shipped, held_out)
    jpeg_psnr = jpeg_psnr_at(jpeg, point["bpp"])
    return {
        "bpp": point["bpp"],
        "psnr": point["psnr"],
        "estimated_bpp": point["estimated_bpp"],
        "jpeg_psnr": jpeg_psnr,
        "over_jpeg_db": None if jpeg_psnr is None else point["psnr"] - jpeg_psnr,
        "ceiling_train": evaluate.ceiling(shipped, training),
        "ceiling_held_out": evaluate.ceiling(shipped, held_out),
        "hyper_range_train": evaluate.hyper_synthesis_range(shipped, training),
        "hyper_range_held_out": evaluate.hyper_synthesis_range(shipped, held_out),
    }


# ------------------------------------------------------------------------- training


def _device(model) -> torch.device:
    """The device ``model`` lives on (that of its parameters)."""
    return next(model.parameters()).device


def new_model(recipe: Recipe):
    """The recipe's model, initialized from its seed."""
    with seeded(recipe.seed):
        family = registry.architecture(zoo.FAMILIES[recipe.architecture])
        return family.model_class(recipe.N, recipe.M)


def optimizers(model, recipe: Recipe) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam on the main parameters and Adam on the quantiles
    (``train.split_parameters``)."""
    main, aux = train.split_parameters(model)
    return (
        torch.optim.Adam(main, lr=recipe.lr),
        torch.optim.Adam(aux, lr=recipe.aux_lr),
    )


def learning_rate(recipe: Recipe, cpu_seconds: float) -> float:
    """``recipe.lr``, or a tenth of it once ``decay_at`` of the CPU budget is spent:
    ``train.learning_rate`` with the step counted in CPU milliseconds. An open-ended
    recipe (``cooldown`` > 0) trains its trunk at ``recipe.lr`` throughout."""
    if recipe.cooldown:
        return recipe.lr
    return train.learning_rate(
        round(1000 * cpu_seconds) + 1,
        round(1000 * recipe.cpu_seconds),
        recipe.lr,
        recipe.decay_at,
    )


@dataclasses.dataclass
class State:
    """Where a recipe's training stands: the model, its two Adams, steps taken and CPU
    seconds spent, and the record so far."""

    model: torch.nn.Module
    adam: tuple
    steps: int
    cpu_seconds: float
    record: dict


def _step_loss(model, recipe: Recipe, crops, first: int, lmbda: float | None = None):
    """``train.train_steps``'s ``step_loss`` for ``model``: the rate-distortion loss
    at ``lmbda`` (default the recipe's) on ``crops.batch(i, batch_size)`` for ``i =
    first, first + 1, ...``, moved to the model's device."""
    criterion = train.RateDistortionLoss(recipe.lmbda if lmbda is None else lmbda)
    index = itertools.count(first)
    device = _device(model)

    def step_loss():
        x = crops.batch(next(index), recipe.batch_size).to(device)
        losses = criterion(model(x), x)
        return losses["loss"], {
            "bpp": losses["bpp_loss"].item(),
            "mse": losses["mse_loss"].item(),
        }

    return step_loss


def cools_down(recipe: Recipe, segment: int) -> bool:
    """Whether segment ``segment`` (1, 2, ...) of an open-ended recipe is followed by
    a cooldown: segments 1, 2, 4, 8, ... (CPU time doubling, so the cooldowns cost
    about ``2 * cooldown`` of the trunk's time for each lambda cooled at, the
    recipe's and each of ``cooldown_lambdas``) and the last one."""
    last = segment * recipe.segment_seconds >= recipe.cpu_seconds
    return bool(recipe.cooldown) and (last or segment & (segment - 1) == 0)


def random_state_kept(model):
    """A block after which torch's random state is as it was before
    (``torch.random.fork_rng``): the CPU's, and the GPU's where ``model`` is on
    one."""
    device = _device(model)
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def cool_down(state: State, recipe: Recipe, crops, clock, lmbda=None) -> tuple:
    """A copy of the trunk trained ``recipe.cooldown`` times its steps more (a whole
    number of :data:`CHUNK`, at least one) at ``recipe.lr / 10`` and at ``lmbda``
    (default the recipe's), continuing both Adams' moments on the crops the trunk
    would see next, on the trunk's device; the trunk, its Adams and torch's random
    state are left as they were. Returns ``(model, {"steps", "cpu_seconds"})``."""
    model = copy.deepcopy(state.model)
    adam = optimizers(model, recipe)
    for mine, trunk in zip(adam, state.adam):
        mine.load_state_dict(copy.deepcopy(trunk.state_dict()))
    steps = max(CHUNK, CHUNK * round(recipe.cooldown * state.steps / CHUNK))
    main, aux = train.split_parameters(model)
    model.train()
    with random_state_kept(model):
        started = clock()
        train.train_steps(
            _step_loss(model, recipe, crops, state.steps, lmbda),
            main,
            steps=steps,
            lr=recipe.lr / 10,
            aux_parameters=aux,
            aux_loss=model.aux_loss,
            clip_max_norm=recipe.clip_max_norm,
            optimizer=adam[0],
            aux_optimizer=adam[1],
            progress=False,
        )
        seconds = clock() - started
    return model.eval(), {"steps": steps, "cpu_seconds": seconds}


def cooled_family(state, recipe: Recipe, crops, clock, photos, entry) -> tuple:
    """At a cooldown point, copies cooled down at each of ``recipe.cooldown_lambdas``
    too, measured (``photos``: held-out photos, training photos, JPEG's curve), beside
    ``entry``'s own cooled copy. Returns ``({"points": {lambda: point},
    "bd_rate_vs_jpeg"}, {lambda: model})``: the BD-rate of the curve they make against
    Pillow's JPEG on the held-out photos (``None`` where the curves do not overlap
    enough), and the copies."""
    held_out, training, jpeg = photos
    points, models = {str(recipe.lmbda): entry["cooled"]}, {}
    for lmbda in recipe.cooldown_lambdas:
        models[lmbda], spent = cool_down(state, recipe, crops, clock, lmbda)
        point = measure(models[lmbda], held_out, training, jpeg)
        points[str(lmbda)] = {**spent, **point}
    ordered = sorted(points.values(), key=lambda p: p["bpp"])
    try:
        bd_rate = metrics.bd_rate(
            jpeg.bpp,
            jpeg.psnr,
            [p["bpp"] for p in ordered],
            [p["psnr"] for p in ordered],
        )
    except ValueError:  # no overlap, or a curve that does not rise
        bd_rate = None
    return {"points": points, "bd_rate_vs_jpeg": bd_rate}, models


def train_segment(state: State, recipe: Recipe, crops, clock, bar) -> dict:
    """Train until the end of the next segment's CPU time: ``train.train_steps`` for
    :data:`CHUNK` steps at a time, continuing both Adams, each call at
    :func:`learning_rate` of the CPU seconds spent before it. Step ``i`` trains on
    ``crops.batch(i, batch_size)``. Returns the mean training loss, bpp and PSNR over
    the segment's steps, its step count and the last call's rate."""
    end = min(
        recipe.cpu_seconds, (len(state.record["segments"]) + 1) * recipe.segment_seconds
    )
    main, aux = train.split_parameters(state.model)
    step_loss = _step_loss(state.model, recipe, crops, state.steps)
    state.model.train()
    entries = []
    last = clock()
    while not entries or state.cpu_seconds < end:  # one chunk at least
        lr = learning_rate(recipe, state.cpu_seconds)
        entries += train.train_steps(
            step_loss,
            main,
            steps=CHUNK,
            lr=lr,
            aux_parameters=aux,
            aux_loss=state.model.aux_loss,
            clip_max_norm=recipe.clip_max_norm,
            optimizer=state.adam[0],
            aux_optimizer=state.adam[1],
            progress=False,
        )
        state.steps += CHUNK
        now = clock()
        state.cpu_seconds += now - last
        bar.update(int(state.cpu_seconds) - bar.n)  # whole CPU seconds
        bar.set_postfix(
            steps=state.steps, loss=f"{entries[-1]['loss']:.3f}", refresh=False
        )
        last = now
    mean = {
        k: sum(e[k] for e in entries) / len(entries) for k in ("loss", "bpp", "mse")
    }
    return {
        "segment_steps": len(entries),
        "lr": lr,
        "train_loss": mean["loss"],
        "train_bpp": mean["bpp"],
        "train_psnr": metrics.psnr_from_mse(mean["mse"]),
    }


# ---------------------------------------------------------------------------- files


def record_path(recipe: Recipe, folder: Path) -> Path:
    """The recipe's JSON record in ``folder``."""
    return Path(folder) / f"{recipe.name}.json"


def weights_path(recipe: Recipe, folder: Path) -> Path:
    """The recipe's float16 weights in ``folder``."""
    return Path(folder) / f"{recipe.name}.safetensors"


def cooled_path(recipe: Recipe, folder: Path, lmbda: float | None = None) -> Path:
    """An open-ended recipe's latest cooled-down model, float16, in ``folder``: at
    the recipe's lambda, or at ``lmbda`` (one of ``cooldown_lambdas``)."""
    tail = "" if lmbda in (None, recipe.lmbda) else f"-{lmbda:g}"
    return Path(folder) / f"{recipe.name}-cooled{tail}.safetensors"


def state_path(recipe: Recipe, folder: Path) -> Path:
    """The recipe's exact training state in ``folder`` (not package data)."""
    return Path(folder) / "resume" / f"{recipe.name}.pt"


def recipe_fields(recipe: Recipe) -> dict:
    """The recipe's fields as its JSON record holds them (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(recipe)))


def new_record(recipe: Recipe, trained_on) -> dict:
    """A record with no segments yet: the recipe, its hash and what it trains on
    (:func:`training_set`'s ``trained_on``)."""
    return {
        "recipe": recipe_fields(recipe),
        "settings_hash": recipe.key(),
        "trained_on": trained_on,
        "held_out": list(data.sample_image_paths("test")),
        "threads": 1,
        "clock": "time.process_time() of the training steps; off the CPU, wall "
        "seconds read once the device's queued work is done (each segment's device)",
        "torch_version": torch.__version__,
        "lic_teach_version": lic_teach.__version__,
        "finished": False,
        "segments": [],
    }


def read_record(recipe: Recipe, folder: Path) -> dict | None:
    """The recipe's record in ``folder``, ``None`` if there is none;
    ``ValueError`` if it was made by other settings."""
    path = record_path(recipe, folder)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("settings_hash") != recipe.key():
        raise ValueError(
            f"{path} was made by other settings (hash {record.get('settings_hash')}, "
            f"this recipe's is {recipe.key()}); delete it or choose another folder"
        )
    return record


def save(state: State, recipe: Recipe, folder: Path, cooled=None) -> None:
    """The float16 weights of ``cooled`` (``{lambda: model}``, the copies of the last
    cooldown) if given, entered in the record (``cooled_weights``: the copy at the
    recipe's lambda; ``cooled_family_weights``: each copy by lambda); then the exact
    state (``resume/``, the record in it), then the float16 weights, then the record,
    each written atomically: a run stopped between two writes finds the state first."""
    if cooled is not None:
        written = {}
        for lmbda, model in sorted(cooled.items()):
            path = cooled_path(recipe, folder, lmbda)
            written[str(lmbda)] = {
                "file": path.name,
                "sha256": zoo.save_weights(model, path, half=True, tables=False),
                "segment": len(state.record["segments"]),
            }
        state.record["cooled_weights"] = written[str(recipe.lmbda)]
        state.record["cooled_family_weights"] = written
    payload = {
        "model": on_cpu(state.model.state_dict()),
        "main": on_cpu(state.adam[0].state_dict()),
        "aux": on_cpu(state.adam[1].state_dict()),
        "rng": torch.get_rng_state(),
        "steps": state.steps,
        "cpu_seconds": state.cpu_seconds,
        "record": json.dumps(state.record),
    }
    device = _device(state.model)
    if device.type == "cuda":  # the noise of training is drawn there
        payload["cuda_rng"] = torch.cuda.get_rng_state(device)
    cache.atomic_write(state_path(recipe, folder), lambda f: torch.save(payload, f))
    publish(state, recipe, folder)


def on_cpu(value):
    """``value`` (a tensor, or dicts, lists and tuples holding tensors) with every
    tensor on the CPU: a state file that loads on any machine."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(item) for item in value)
    return value


def publish(state: State, recipe: Recipe, folder: Path) -> None:
    """The float16 weights and the JSON record of ``state``."""
    path = weights_path(recipe, folder)
    digest = zoo.save_weights(state.model, path, half=True, tables=False)
    state.record["weights"] = {"file": path.name, "sha256": digest}
    cache.atomic_write(
        record_path(recipe, folder), json.dumps(state.record, indent=1) + "\n"
    )


def restore(recipe: Recipe, folder: Path, trained_on, device="cpu") -> State:
    """The recipe's state on ``device``: from ``resume/`` if it is there (exact; saved
    on the CPU, it continues on any device), else from the record and float16 weights
    (new Adam moments), else new. ``ValueError`` if it was trained on other photos
    than ``trained_on`` says (:func:`training_set`)."""
    device, model = torch.device(device), new_model(recipe)  # loaded, then moved
    path = state_path(recipe, folder)
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        record = json.loads(saved["record"])
        if record.get("settings_hash") != recipe.key():
            raise ValueError(f"{path} was made by other settings; delete it")
        check_photos(record, trained_on, path)
        model.load_state_dict(saved["model"])
        adam = optimizers(model.to(device), recipe)
        adam[0].load_state_dict(saved["main"])
        adam[1].load_state_dict(saved["aux"])
        torch.set_rng_state(saved["rng"])
        if "cuda_rng" in saved and device.type == "cuda":
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        return State(model, adam, saved["steps"], saved["cpu_seconds"], record)
    record = read_record(recipe, folder)
    if record is None or not record["segments"]:
        adam = optimizers(model.to(device), recipe)
        return State(model, adam, 0, 0.0, new_record(recipe, trained_on))
    check_photos(record, trained_on, record_path(recipe, folder))
    zoo.load_weights(model, weights_path(recipe, folder), record["weights"]["sha256"])
    adam = optimizers(model.to(device), recipe)
    last = record["segments"][-1]
    torch.manual_seed(recipe.seed + last["steps"])
    if not record["finished"]:
        last["next_resumed_from"] = "float16 weights, new Adam moments"
    return State(model, adam, last["steps"], last["cpu_seconds"], record)


# -------------------------------------------------------------------------- the study


def run(
    recipe: Recipe,
    folder: Path = FOLDER,
    *,
    photos: Path | None = None,
    device: str | torch.device = "cpu",
    max_segments: int | None = None,
    clock=None,
    progress: bool = True,
) -> dict:
    """Train ``recipe`` from where its files in ``folder`` stop, segment by segment,
    each saved and measured (see the module docstring), until its CPU budget is spent
    or ``max_segments`` more segments are done; return its record. ``photos``: a
    folder of the user's own photos to train on (:func:`training_set`; default: the
    bundled training photos); a record made on other photos is refused
    (``ValueError``). ``device``: where the model trains and is measured (``"cuda"`` on
    a GPU machine). ``clock`` counts the seconds spent (default
    :func:`device_clock`; tests give a counter)."""
    folder, device = Path(folder), torch.device(device)
    photo_set = training_set(photos, recipe.patch_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with seeded(recipe.seed):
            return _run(
                recipe,
                folder,
                photo_set,
                device,
                max_segments,
                clock or device_clock(device),
                progress,
            )
    finally:
        torch.set_num_threads(threads)


def device_clock(device: torch.device):
    """The clock a run on ``device`` counts its seconds by: on the CPU,
    ``time.process_time`` (CPU seconds of this process, one thread); elsewhere the
    wall clock read once the device's queued work is done (``complexity.clock``)."""
    return time.process_time if device.type == "cpu" else complexity.clock


def training_set(folder: Path | None = None, min_side: int = 0) -> tuple[dict, object]:
    """The photos a run trains on, and how its record names them (``trained_on``):
    the bundled training photos (``zoo_data.training_photos``) and their names; or
    the user's photos in ``folder`` (``zoo_data.folder_photos``: each at least
    ``min_side`` pixels a side, none an evaluation image) and ``{"folder", "photos",
    "sha256"}`` (the file names and ``zoo_data.photos_sha256``)."""
    if folder is None:
        photos = zoo_data.training_photos()
        return photos, list(photos)
    photos = zoo_data.folder_photos(folder, min_side)
    return photos, {
        "folder": str(Path(folder).resolve()),
        "photos": sorted(photos),
        "sha256": zoo_data.photos_sha256(photos),
    }


def _photos_named(trained_on) -> str:
    """A record's ``trained_on`` in words."""
    if isinstance(trained_on, dict):
        return (
            f"the photos in {trained_on['folder']} "
            f"(SHA-256 {trained_on['sha256'][:12]})"
        )
    return f"the bundled training photos ({', '.join(trained_on)})"


def check_photos(record: dict, trained_on, path: Path) -> None:
    """``ValueError`` naming both if ``record`` (read from ``path``) was trained on
    other photos than ``trained_on`` says (a folder's photos compared by their
    SHA-256): a run never continues on other data."""
    key = lambda named: named["sha256"] if isinstance(named, dict) else named
    if key(record["trained_on"]) != key(trained_on):
        raise ValueError(
            f"{path} was trained on {_photos_named(record['trained_on'])}, not on "
            f"{_photos_named(trained_on)}: a run never continues on other photos; "
            f"choose another folder for this run"
        )


def _photos_of(trained_on) -> dict:
    """The photos a record's ``trained_on`` names (:func:`training_set`);
    ``ValueError`` if its folder no longer holds them."""
    if not isinstance(trained_on, dict):
        return zoo_data.training_photos()
    photos = zoo_data.folder_photos(trained_on["folder"])
    if zoo_data.photos_sha256(photos) != trained_on["sha256"]:
        raise ValueError(
            f"{trained_on['folder']} no longer holds the photos the run trained on "
            f"(SHA-256 {trained_on['sha256'][:12]})"
        )
    return photos


def _measured_photos(recipe: Recipe, photos: dict) -> tuple[dict, dict]:
    """(held-out photos, training ``photos``) to measure on: the training photos
    ``zoo_data.bounded``, and both cut to their central ``eval_size`` square (at most a
    photo's shorter side) if the recipe says so."""
    training = zoo_data.bounded(photos)
    if recipe.eval_size:
        training = {
            n: data.center_crop(x, min(recipe.eval_size, *x.shape[-2:]))
            for n, x in training.items()
        }
    return data.held_out(recipe.eval_size), training


def _run(recipe, folder, photo_set, device, max_segments, clock, progress) -> dict:
    photos, trained_on = photo_set
    state = restore(recipe, folder, trained_on, device)
    if recipe.cooldown and state.cpu_seconds < recipe.cpu_seconds:
        state.record["finished"] = False  # an open-ended run given a larger budget
        state.record["recipe"] = recipe_fields(recipe)
    segments = state.record["segments"]
    pending = bool(segments) and segments[-1].get("cooldown_pending", False)
    if state.record["finished"] and not pending:
        if state_path(recipe, folder).is_file():
            publish(state, recipe, folder)  # in case a stop came between the writes
        return state.record
    crops = zoo_data.AugmentedCrops(
        photos,
        patch_size=recipe.patch_size,
        seed=recipe.seed,
        min_scale=recipe.min_scale,
        flip=recipe.flip,
        rotate=recipe.rotate,
        swap_channels=recipe.swap_channels,
    )
    held_out, training = _measured_photos(recipe, photos)
    jpeg = jpeg_curve(held_out)
    state.record["jpeg_curve"] = {
        "quality": list(jpeg.params),
        "bpp": jpeg.bpp,
        "psnr": jpeg.psnr,
    }
    photos = (held_out, training, jpeg)
    if pending:  # a run stopped during the last segment's cooldowns
        _cool_last(state, recipe, folder, crops, clock, photos)
    done = 0
    bar = tqdm(
        total=int(recipe.cpu_seconds),
        initial=int(state.cpu_seconds),
        desc=recipe.name,
        unit="cpu-s",
        disable=not progress,
        mininterval=30,
    )
    with bar:
        while not state.record["finished"] and done != max_segments:
            started = time.perf_counter()
            summary = train_segment(state, recipe, crops, clock, bar)
            measured_from = time.process_time()
            with random_state_kept(state.model):
                point = measure(state.model, held_out, training, jpeg)
            segment = len(state.record["segments"]) + 1
            state.record["finished"] = state.cpu_seconds >= recipe.cpu_seconds
            due = cools_down(recipe, segment) or bool(
                recipe.cooldown and state.record["finished"]
            )
            state.record["segments"].append(
                {
                    "segment": segment,
                    "steps": state.steps,
                    "cpu_seconds": state.cpu_seconds,
                    **summary,
                    **point,
                    "measure_cpu_seconds": time.process_time() - measured_from,
                    "wall_seconds": time.perf_counter() - started,
                    "device": str(device),
                    **({"cooldown_pending": True} if due else {}),
                }
            )
            save(state, recipe, folder)  # the trunk first: a stop loses no training
            if due:
                _cool_last(state, recipe, folder, crops, clock, photos)
            done += 1
    return state.record


def _cool_last(state, recipe, folder, crops, clock, photos) -> None:
    """The cooldowns of the last segment (``cooldown_pending``): the cooled copy at the
    recipe's lambda and at each of ``cooldown_lambdas``, measured, then saved with the
    record."""
    entry = state.record["segments"][-1]
    cooled, spent = cool_down(state, recipe, crops, clock)
    entry["cooled"] = {**spent, **measure(cooled, *photos)}
    models = {recipe.lmbda: cooled}
    if recipe.cooldown_lambdas:
        entry["cooled_family"], others = cooled_family(
            state, recipe, crops, clock, photos, entry
        )
        models.update(others)
    del entry["cooldown_pending"]
    save(state, recipe, folder, models)


# --------------------------------------------------------------------- into the zoo


def learning_curve(record: dict) -> list[dict]:
    """A record's learning curve, one entry a segment: the trunk's ``steps``, CPU
    seconds and real-bitstream PSNR over JPEG's at its rate (dB), and where the
    segment was cooled down, the cooled copy's (``cooled_over_jpeg_db``) and the
    cooled family's BD-rate against JPEG (``cooled_bd_rate_vs_jpeg``, %)."""
    curve = []
    for segment in record["segments"]:
        entry = {
            k: segment[k] for k in ("segment", "steps", "cpu_seconds", "over_jpeg_db")
        }
        if "cooled" in segment:
            entry["cooled_over_jpeg_db"] = segment["cooled"]["over_jpeg_db"]
        if "cooled_family" in segment:
            entry["cooled_bd_rate_vs_jpeg"] = segment["cooled_family"][
                "bd_rate_vs_jpeg"
            ]
        curve.append(entry)
    return curve


def jpeg_crossing(curve: list[dict]) -> dict | None:
    """Where a :func:`learning_curve` first beats JPEG: the CPU seconds at which its
    cooled families' BD-rate against JPEG crosses 0, linear in log CPU time between
    the last cooldown above 0 and the first below (``{"cpu_seconds", "bracket": (a,
    b)}``; ``bracket`` ``(None, b)`` where the first measured family was already below
    0, so the crossing lies before ``b``). ``None`` if no family beat JPEG yet."""
    points = [
        (entry["cpu_seconds"], entry["cooled_bd_rate_vs_jpeg"])
        for entry in curve
        if entry.get("cooled_bd_rate_vs_jpeg") is not None
    ]
    for number, (seconds, bd_rate) in enumerate(points):
        if bd_rate >= 0:
            continue
        if number == 0:
            return {"cpu_seconds": seconds, "bracket": (None, seconds)}
        before, above = points[number - 1]
        share = above / (above - bd_rate)  # 0 at the point above, 1 at this one
        log_seconds = math.log(before) + share * math.log(seconds / before)
        return {"cpu_seconds": math.exp(log_seconds), "bracket": (before, seconds)}
    return None


def to_zoo(
    recipe: Recipe, folder: Path = FOLDER, zoo_folder: Path = zoo.FOLDER
) -> list[dict]:
    """Publish the latest cooled family of ``recipe``'s record in ``folder`` (the
    copies of its trunk cooled down at its lambda and each of ``cooldown_lambdas``)
    into the zoo in ``zoo_folder`` as family ``recipe.architecture``, quality 1, 2, ...
    by increasing lambda, each with a manifest (``zoo.publish_model``) that names the
    record it came from, the photos it trained on (the record's ``trained_on``, whose
    training ceiling it measures) and the ``devices`` it trained on, and keeps its
    :func:`learning_curve`. ``training_seconds``: the trunk's seconds up to that
    cooldown and the copy's own, CPU seconds of one thread on the CPU (wall seconds
    on another device). Returns the manifests; ``ValueError`` if the record has no
    cooled family, or if the folder of photos it trained on holds other photos now."""
    record = read_record(recipe, folder)
    weights = (record or {}).get("cooled_family_weights")
    if not weights:
        raise ValueError(
            f"{recipe.name} in {folder} has no cooled family to publish: train it "
            f"(python -m lic_teach.experiments.zoo_recipe --recipes {recipe.name}) "
            f"until a cooldown saves one"
        )
    segment = record["segments"][weights[str(recipe.lmbda)]["segment"] - 1]
    points = {str(recipe.lmbda): segment["cooled"]}
    points.update(segment.get("cooled_family", {}).get("points", {}))
    photos = _photos_of(record["trained_on"])
    manifests = []
    for quality, key in enumerate(sorted(weights, key=float), start=1):
        model = new_model(recipe)
        zoo.load_weights(
            model, Path(folder) / weights[key]["file"], weights[key]["sha256"]
        )
        manifests.append(
            zoo.publish_model(
                model.eval(),
                zoo_folder,
                {
                    "family": recipe.architecture,
                    "quality": quality,
                    "lambda": float(key),
                },
                _how_trained(recipe, record, segment, points[key], folder),
                photos,
                recipe.eval_size,
            )
        )
    return manifests


def _how_trained(recipe: Recipe, record: dict, segment: dict, cooled: dict, folder):
    """What :func:`to_zoo`'s manifest says of how a model was trained: the trunk up to
    ``segment`` and the ``cooled`` copy's own steps and seconds, the devices, the
    photos (the record's ``trained_on``) and augmentation, the record it came from
    and its learning curve."""
    trained_on = record["trained_on"]
    if not isinstance(trained_on, dict):  # the bundled photos, by name
        trained_on = {"photos": trained_on}
    done = record["segments"][: segment["segment"]]
    return {
        "recipe": recipe_fields(recipe),
        "steps": segment["steps"] + cooled["steps"],
        "training_seconds": round(segment["cpu_seconds"] + cooled["cpu_seconds"], 1),
        "clock": "CPU seconds of one thread (time.process_time) on the CPU, wall "
        "seconds on another device",
        "devices": sorted({s.get("device", "cpu") for s in done}),
        "trained_on": {
            **trained_on,
            "augmentation": {
                k: getattr(recipe, k)
                for k in ("min_scale", "flip", "rotate", "swap_channels")
            },
        },
        "study": {
            "record": record_path(recipe, folder).name,
            "settings_hash": record["settings_hash"],
            "segment": segment["segment"],
        },
        "learning_curve": learning_curve(record),
    }


def records(folder: Path = FOLDER) -> list[dict]:
    """Every record in ``folder``, in :data:`RECIPES` order (others after, by name)."""
    order = {r.name: i for i, r in enumerate(RECIPES)}
    found = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]
    return sorted(
        found,
        key=lambda r: (order.get(r["recipe"]["name"], len(order)), r["recipe"]["name"]),
    )


def _cell(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def shown_point(record: dict) -> tuple[dict, str, dict] | None:
    """The point a record is judged by, what it is, and the segment it belongs to: an
    open-ended recipe's latest cooled-down copy, else the last segment's model
    (decayed at ``decay_at`` of a finished run's budget); ``None`` before its first
    segment."""
    if not record["segments"]:
        return None
    cooled = [s for s in record["segments"] if "cooled" in s]
    if cooled:
        point = cooled[-1]["cooled"]
        return point, f"cooled, +{point['steps']} steps at lr/10", cooled[-1]
    last = record["segments"][-1]
    if not record["finished"]:
        return last, "at lr, not decayed yet", last
    return last, f"lr/10 after {100 * record['recipe']['decay_at']:.0f}%", last


def _family_bd_rate(record: dict) -> str:
    """The latest ``cooled_family`` BD-rate against JPEG of a record, as a cell."""
    family = [s["cooled_family"] for s in record["segments"] if "cooled_family" in s]
    if not family:
        return ""
    value = family[-1]["bd_rate_vs_jpeg"]
    return "not defined" if value is None else f"{value:+.1f}%"


def table(folder: Path = FOLDER, name: str = "tbl-zoo-recipe") -> tables.Table:
    """One row per record in ``folder``: the trunk's steps and CPU minutes, and the
    :func:`shown_point`'s bpp, PSNR, JPEG's PSNR at that rate, dB over JPEG and
    ceiling on the training and on the held-out photos, and the BD-rate against JPEG
    of the latest copies cooled at several lambdas (``cooldown_lambdas``); ``name``:
    the table's label (a chapter gives its own)."""
    rows = []
    for record in records(folder):
        shown = shown_point(record)
        if shown is None:
            continue
        point, what, last = shown  # the steps and CPU time of the point's segment
        rows.append(
            [
                record["recipe"]["name"] + ("" if record["finished"] else " (running)"),
                last["steps"],
                _cell(last["cpu_seconds"] / 60, 1),
                what,
                _cell(point["bpp"], 3),
                _cell(point["psnr"]),
                _cell(point["jpeg_psnr"]),
                _cell(point["over_jpeg_db"]),
                _cell(point["ceiling_train"]),
                _cell(point["ceiling_held_out"]),
                _family_bd_rate(record),
            ]
        )
    return tables.Table(
        [
            "recipe",
            "steps",
            "CPU min",
            "model measured",
            "bpp",
            "PSNR (dB)",
            "JPEG PSNR (dB)",
            "over JPEG (dB)",
            "ceiling, train (dB)",
            "ceiling, held out (dB)",
            "BD-rate vs JPEG, cooled at several lambdas",
        ],
        rows,
        "The zoo's recipes at equal CPU time, at lambda 0.025 unless the name says "
        "otherwise, on the held-out photos "
        "through real bitstreams; the ceiling is g_s(g_a(x)) without quantization.",
        name,
    )


# ---------------------------------------------------------------------- command line


def parse_args(argv):
    """The command line's options (see :func:`main`)."""
    parser = argparse.ArgumentParser(
        prog="python -m lic_teach.experiments.zoo_recipe",
        description="Train and measure the zoo's recipe study (resumable); with "
        "--zoo, train the zoo's recipes and publish them into the zoo (make zoo).",
    )
    parser.add_argument(
        "--minutes-per-recipe",
        type=float,
        default=None,
        help="CPU minutes each open-ended recipe trains for, a later run may give "
        f"more (default: the recipe's own, with --zoo {ZOO_MINUTES}; a fixed-budget "
        "recipe keeps its own)",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="one segment of each recipe in turn, so that their learning curves "
        "advance together (default: each recipe to its end, one after the other)",
    )
    parser.add_argument(
        "--segment-minutes",
        type=float,
        default=None,
        help="CPU minutes between two saved, measured segments (default: the "
        "recipe's own, 5)",
    )
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument(
        "--recipes", help="comma-separated recipe names (default: all, in order)"
    )
    chosen.add_argument(
        "--zoo",
        action="store_true",
        help="train the zoo's recipes (ZOO, one a family), then publish each into "
        "--to-zoo (default: the shipped zoo, lic_teach/zoo_weights)",
    )
    parser.add_argument(
        "--families",
        help="with --zoo: only these families, comma- or space-separated (default: "
        "every family of ZOO)",
    )
    parser.add_argument(
        "--folder",
        type=Path,
        default=FOLDER,
        help="where the runs' records and weights go (default: the study's, "
        "lic_teach/studies/zoo_recipe)",
    )
    parser.add_argument(
        "--to-zoo",
        type=Path,
        default=None,
        metavar="ZOO_FOLDER",
        help="without --zoo, train nothing: publish each recipe's latest cooled family "
        "into this zoo folder (lic_teach/zoo_weights: the shipped zoo); with --zoo, "
        "where the trained recipes are published",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --zoo: train on your own photos in DIR instead of the bundled "
        "ones (give --folder and --to-zoo too)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="where to train: cpu (default) or cuda (a GPU machine)",
    )
    return parser.parse_args(argv)


def _refused(error) -> int:
    """Say why the command cannot run, on stderr; the exit status 2."""
    print(f"zoo: {error}", file=sys.stderr, flush=True)
    return 2


def _zoo_names(families: str | None) -> list[str]:
    """The recipes of :data:`ZOO` for ``families`` (comma- or space-separated family
    names; ``None``: all); ``ValueError`` for a family it has no recipe for."""
    by_family = {_recipe_called(name).architecture: name for name in ZOO}
    asked = families.replace(",", " ").split() if families else list(by_family)
    missing = [family for family in asked if family not in by_family]
    if missing:
        raise ValueError(
            f"no zoo recipe for the family {', '.join(missing)}: ZOO trains "
            f"{', '.join(by_family)} (the study has chosen none for the others yet)"
        )
    return [by_family[family] for family in asked]


def _recipe_called(name: str) -> Recipe:
    """The recipe of :data:`RECIPES` called ``name``; ``ValueError`` if none is."""
    known = {r.name: r for r in RECIPES}
    if name not in known:
        raise ValueError(f"unknown recipe {name}; choose from {', '.join(known)}")
    return known[name]


def _recipes(args) -> list[Recipe]:
    """The recipes the command line asks for, with the budget and segments it gives
    (``--minutes-per-recipe`` extends only an open-ended recipe)."""
    if args.families and not args.zoo:
        raise ValueError("--families chooses among the zoo's recipes: give --zoo too")
    if args.zoo:
        names = _zoo_names(args.families)
    else:
        names = (args.recipes or ",".join(r.name for r in RECIPES)).split(",")
    minutes = args.minutes_per_recipe or (ZOO_MINUTES if args.zoo else None)
    chosen = []
    for recipe in [_recipe_called(name.strip()) for name in names if name.strip()]:
        if minutes is not None and recipe.cooldown:
            recipe = dataclasses.replace(recipe, cpu_seconds=60 * minutes)
        if args.segment_minutes is not None:
            seconds = 60 * args.segment_minutes
            recipe = dataclasses.replace(recipe, segment_seconds=seconds)
        chosen.append(recipe)
    return chosen


def _check_data(args) -> None:
    """``ValueError`` unless ``--data`` (if given) comes with ``--zoo``, a ``--folder``
    other than the study's and a ``--to-zoo`` other than the shipped zoo."""
    if args.data is None:
        return
    shipped = args.to_zoo is None or args.to_zoo.resolve() == zoo.FOLDER.resolve()
    if not args.zoo or shipped or args.folder.resolve() == FOLDER.resolve():
        raise ValueError(
            "--data (with --zoo) trains on your photos: give --folder, where their "
            "runs go, and --to-zoo, where their models go (the study in "
            "lic_teach/studies/zoo_recipe and the shipped zoo in lic_teach/zoo_weights "
            "stay as they are)"
        )


def _train(recipes, args, device) -> int:
    """Train ``recipes`` into ``args.folder`` on ``device`` (on ``args.data``'s photos
    if given), one after the other or, with ``--interleave``, a segment of each in
    turn; print the table after each round. A recipe that cannot go on is named and
    the others still run; with ``--zoo`` it ends the command (status 2)."""
    chosen = list(recipes)
    while chosen:
        for recipe in list(chosen):
            try:
                record = run(
                    recipe,
                    args.folder,
                    photos=args.data,
                    device=device,
                    max_segments=1 if args.interleave else None,
                )
            except (FileNotFoundError, FloatingPointError, ValueError) as error:
                if args.zoo:  # the photos of --data, a record of other settings
                    return _refused(error)
                print(f"{recipe.name} stopped: {error}", file=sys.stderr, flush=True)
                record = {"finished": True}
            if record["finished"] or not args.interleave:
                chosen.remove(recipe)
        print(table(args.folder), flush=True)
    return 0


def _publish_all(recipes, folder: Path, zoo_folder: Path) -> int:
    """:func:`to_zoo` for each recipe, a line per model published."""
    for recipe in recipes:
        try:
            manifests = to_zoo(recipe, folder, zoo_folder)
        except (FileNotFoundError, ValueError) as error:
            return _refused(error)
        for manifest in manifests:
            print(zoo.describe(manifest))
    return 0


def main(argv=None) -> int:
    """Train the recipes asked for (the study's, or with ``--zoo`` the zoo's), one
    after the other or a segment of each in turn, printing the table; with ``--zoo``,
    publish them into the zoo; with ``--to-zoo`` alone, only publish. Returns the exit
    status (2: refused, with the reason on stderr)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        recipes = _recipes(args)
        device = budget.device_named(args.device)
        _check_data(args)
    except ValueError as error:
        return _refused(error)
    if args.to_zoo is not None and not args.zoo:
        return _publish_all(recipes, args.folder, args.to_zoo)
    status = _train(recipes, args, device)
    if status or not args.zoo:
        return status
    return _publish_all(recipes, args.folder, args.to_zoo or zoo.FOLDER)


if __name__ == "__main__":
    sys.exit(main())
