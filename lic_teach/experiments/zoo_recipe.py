"""The zoo's recipe study (issue 34): a few training recipes at one lambda, each given
the same CPU time, measured on held-out photos through real bitstreams.

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

A record carries ``cache.settings_hash`` of its recipe; a rerun skips finished segments
and refuses a record made by other settings. Crops depend on ``(seed, index)`` alone and
the state file holds everything else, so a run stopped after any segment and continued
ends with the weights of a run straight through.

``python -m lic_teach.experiments.zoo_recipe [--minutes-per-recipe N] [--recipes a,b]``
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import lic_teach

from .. import baselines, cache, data, evaluate, metrics, tables, train, zoo, zoo_data
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
    # swapped: five scenes teach it too few colours
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
            cooldown_lambdas=(0.0018, 0.0067, 0.0932),
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
    first, first + 1, ...``."""
    criterion = train.RateDistortionLoss(recipe.lmbda if lmbda is None else lmbda)
    index = itertools.count(first)

    def step_loss():
        x = crops.batch(next(index), recipe.batch_size)
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


def cool_down(state: State, recipe: Recipe, crops, clock, lmbda=None) -> tuple:
    """A copy of the trunk trained ``recipe.cooldown`` times its steps more (a whole
    number of :data:`CHUNK`, at least one) at ``recipe.lr / 10`` and at ``lmbda``
    (default the recipe's), continuing both Adams' moments on the crops the trunk
    would see next; the trunk, its Adams and torch's random state are left as they
    were. Returns ``(model, {"steps", "cpu_seconds"})``."""
    model = copy.deepcopy(state.model)
    adam = optimizers(model, recipe)
    for mine, trunk in zip(adam, state.adam):
        mine.load_state_dict(copy.deepcopy(trunk.state_dict()))
    steps = max(CHUNK, CHUNK * round(recipe.cooldown * state.steps / CHUNK))
    main, aux = train.split_parameters(model)
    random_state = torch.get_rng_state()
    model.train()
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
    torch.set_rng_state(random_state)
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


def new_record(recipe: Recipe) -> dict:
    """A record with no segments yet: the recipe, its hash and what it trains on."""
    return {
        "recipe": recipe_fields(recipe),
        "settings_hash": recipe.key(),
        "trained_on": [p.name for p in zoo_data.TRAINING_PHOTOS],
        "held_out": list(data.sample_image_paths("test")),
        "threads": 1,
        "clock": "time.process_time() of the training steps",
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
        "model": state.model.state_dict(),
        "main": state.adam[0].state_dict(),
        "aux": state.adam[1].state_dict(),
        "rng": torch.get_rng_state(),
        "steps": state.steps,
        "cpu_seconds": state.cpu_seconds,
        "record": json.dumps(state.record),
    }
    cache.atomic_write(state_path(recipe, folder), lambda f: torch.save(payload, f))
    publish(state, recipe, folder)


def publish(state: State, recipe: Recipe, folder: Path) -> None:
    """The float16 weights and the JSON record of ``state``."""
    path = weights_path(recipe, folder)
    digest = zoo.save_weights(state.model, path, half=True, tables=False)
    state.record["weights"] = {"file": path.name, "sha256": digest}
    cache.atomic_write(
        record_path(recipe, folder), json.dumps(state.record, indent=1) + "\n"
    )


def restore(recipe: Recipe, folder: Path) -> State:
    """The recipe's state: from ``resume/`` if it is there (exact), else from the
    record and float16 weights (new Adam moments), else new."""
    model = new_model(recipe)
    adam = optimizers(model, recipe)
    path = state_path(recipe, folder)
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        record = json.loads(saved["record"])
        if record.get("settings_hash") != recipe.key():
            raise ValueError(f"{path} was made by other settings; delete it")
        model.load_state_dict(saved["model"])
        adam[0].load_state_dict(saved["main"])
        adam[1].load_state_dict(saved["aux"])
        torch.set_rng_state(saved["rng"])
        return State(model, adam, saved["steps"], saved["cpu_seconds"], record)
    record = read_record(recipe, folder)
    if record is None or not record["segments"]:
        return State(model, adam, 0, 0.0, new_record(recipe))
    zoo.load_weights(model, weights_path(recipe, folder), record["weights"]["sha256"])
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
    max_segments: int | None = None,
    clock=time.process_time,
    progress: bool = True,
) -> dict:
    """Train ``recipe`` from where its files in ``folder`` stop, segment by segment,
    each saved and measured (see the module docstring), until its CPU budget is spent
    or ``max_segments`` more segments are done; return its record. ``clock`` counts the
    CPU seconds (tests give a counter)."""
    folder = Path(folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with seeded(recipe.seed):
            return _run(recipe, folder, max_segments, clock, progress)
    finally:
        torch.set_num_threads(threads)


def _photos(recipe: Recipe) -> tuple[dict, dict]:
    """(held-out photos, training photos) to measure on, central crops if the recipe
    says so."""
    training = zoo_data.training_photos()
    if recipe.eval_size:
        training = {
            n: data.center_crop(x, recipe.eval_size) for n, x in training.items()
        }
    return data.held_out(recipe.eval_size), training


def _run(recipe, folder, max_segments, clock, progress) -> dict:
    state = restore(recipe, folder)
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
        patch_size=recipe.patch_size,
        seed=recipe.seed,
        min_scale=recipe.min_scale,
        flip=recipe.flip,
        rotate=recipe.rotate,
        swap_channels=recipe.swap_channels,
    )
    held_out, training = _photos(recipe)
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
            random_state = torch.get_rng_state()
            measured_from = time.process_time()
            point = measure(state.model, held_out, training, jpeg)
            torch.set_rng_state(random_state)
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


def to_zoo(
    recipe: Recipe, folder: Path = FOLDER, zoo_folder: Path = zoo.FOLDER
) -> list[dict]:
    """Publish the latest cooled family of ``recipe``'s record in ``folder`` (the
    copies of its trunk cooled down at its lambda and each of ``cooldown_lambdas``)
    into the zoo in ``zoo_folder`` as family ``recipe.architecture``, quality 1, 2, ...
    by increasing lambda, each with a manifest (``zoo.publish_model``) that names the
    record it came from and keeps its :func:`learning_curve`. ``training_seconds`` is
    CPU seconds of one thread: the trunk's up to that cooldown and the copy's own.
    Returns the manifests; ``ValueError`` if the record has no cooled family."""
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
    photos = zoo_data.training_photos()
    manifests = []
    for quality, key in enumerate(sorted(weights, key=float), start=1):
        model = new_model(recipe)
        zoo.load_weights(
            model, Path(folder) / weights[key]["file"], weights[key]["sha256"]
        )
        training = {
            "recipe": recipe_fields(recipe),
            "steps": segment["steps"] + points[key]["steps"],
            "training_seconds": round(
                segment["cpu_seconds"] + points[key]["cpu_seconds"], 1
            ),
            "clock": "CPU seconds of one thread (time.process_time)",
            "trained_on": {
                "photos": record["trained_on"],
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
        manifests.append(
            zoo.publish_model(
                model.eval(),
                zoo_folder,
                {
                    "family": recipe.architecture,
                    "quality": quality,
                    "lambda": float(key),
                },
                training,
                photos,
                recipe.eval_size,
            )
        )
    return manifests


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
        description="Train and measure the zoo's recipe study (resumable).",
    )
    parser.add_argument(
        "--minutes-per-recipe",
        type=float,
        default=None,
        help="CPU minutes each open-ended recipe trains for, a later run may give "
        "more (default: the recipe's own; a fixed-budget recipe keeps its own)",
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
        default=5.0,
        help="CPU minutes between two saved, measured segments (default 5)",
    )
    parser.add_argument(
        "--recipes",
        default=",".join(r.name for r in RECIPES),
        help="comma-separated recipe names (default: all, in order)",
    )
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument(
        "--to-zoo",
        type=Path,
        default=None,
        metavar="ZOO_FOLDER",
        help="train nothing: publish each recipe's latest cooled family into this "
        "zoo folder (lic_teach/zoo_weights: the shipped zoo)",
    )
    return parser.parse_args(argv)


def _publish_all(recipes, folder: Path, zoo_folder: Path) -> int:
    """``--to-zoo``: :func:`to_zoo` for each recipe, a line per model published."""
    for recipe in recipes:
        try:
            manifests = to_zoo(recipe, folder, zoo_folder)
        except ValueError as error:
            print(f"zoo_recipe: {error}", file=sys.stderr)
            return 2
        for manifest in manifests:
            print(zoo.describe(manifest))
    return 0


def main(argv=None) -> int:
    """Run the recipes asked for, one after the other or a segment of each in turn;
    print the table."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    known = {r.name: r for r in RECIPES}
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        print(
            f"unknown recipe {', '.join(unknown)}; choose from {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    if args.to_zoo is not None:
        return _publish_all([known[n] for n in names], args.folder, args.to_zoo)
    chosen = []
    for name in names:
        recipe, minutes = known[name], args.minutes_per_recipe
        if minutes is not None and recipe.cooldown:  # only an open-ended run extends
            recipe = dataclasses.replace(recipe, cpu_seconds=60 * minutes)
        chosen.append(
            dataclasses.replace(recipe, segment_seconds=60 * args.segment_minutes)
        )
    while chosen:
        for recipe in list(chosen):
            try:
                record = run(
                    recipe, args.folder, max_segments=1 if args.interleave else None
                )
            except (FloatingPointError, ValueError) as error:  # the others still run
                print(f"{recipe.name} stopped: {error}", file=sys.stderr, flush=True)
                record = {"finished": True}
            if record["finished"] or not args.interleave:
                chosen.remove(recipe)
        print(table(args.folder), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
