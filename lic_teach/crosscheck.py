"""Moving weights between ``lic_teach`` models and their CompressAI twins, and checking
that both compute the same thing.

The parameters are the same tensors under other names (``prior.`` and ``hyperprior.``
here are ``entropy_bottleneck.`` there, ``conditional.`` is ``gaussian_conditional.``;
coding tables ``quantized_cdf``, ``cdf_length``, ``cdf_offset`` are ``_quantized_cdf``,
``_cdf_length``, ``_offset``). CompressAI also
stores a few constants as buffers (GDN's reparameterization bounds, the auxiliary
loss target, the likelihood bound). They are taken from a fresh twin on the way out,
and on the way in they are checked against ours. Both directions load with
``strict=True``.

A model registered with ``twin_transforms`` (the shallow decoders) has no CompressAI
class of its own: its twin is the CompressAI codec of its entropy model carrying copies
of those transforms, so the two sides share the networks and differ in the coding.
"""

from __future__ import annotations

import copy
import functools

import torch

from .data import as_batch, pad_to
from .metrics import bits, bpp
from .models import CheckerboardContext, JointAutoregressive, registry

_TABLES = {
    "quantized_cdf": "_quantized_cdf",
    "cdf_length": "_cdf_length",
    "cdf_offset": "_offset",
}
_CONSTANT_SUFFIXES = (
    "pedestal",
    "lower_bound.bound",
    ".target",
    "likelihood_lower_bound.bound",
    "scale_bound",
    "lower_bound_scale.bound",
    "context_prediction.mask",
)
_FLAT_PREFIXES = [
    ("prior.", "entropy_bottleneck."),
    ("hyperprior.", "entropy_bottleneck."),
    ("conditional.", "gaussian_conditional."),
]
_PREFIXES = {  # lic_teach attribute -> CompressAI module path, by lic_teach class
    CheckerboardContext: [
        ("h_a.", "latent_codec.hyper.h_a."),
        ("h_s.", "latent_codec.hyper.h_s."),
        ("hyperprior.", "latent_codec.hyper.entropy_bottleneck."),
        ("conditional.", "latent_codec.y.y.gaussian_conditional."),
        ("context_prediction.", "latent_codec.y.context_prediction."),
        ("entropy_parameters.", "latent_codec.y.entropy_parameters."),
    ],
}


@functools.cache
def checkerboard_twin_class():
    """CompressAI's version of :class:`CheckerboardContext`: the transforms of its
    ``MeanScaleHyperprior`` and the entropy-parameter network of its
    ``JointAutoregressiveHierarchicalPriors``, around its ``CheckerboardLatentCodec``
    (two-pass forward) inside a ``HyperpriorLatentCodec``. CompressAI ships a
    checkerboard model only with Cheng et al.'s transforms, hence this assembly."""
    from compressai import latent_codecs as lc
    from compressai import models as cai
    from compressai.entropy_models import EntropyBottleneck
    from compressai.layers import CheckerboardMaskedConv2d
    from compressai.models.base import SimpleVAECompressionModel

    class CheckerboardMeanScale(SimpleVAECompressionModel):
        def __init__(self, N: int = 128, M: int = 192):
            super().__init__()
            self.N, self.M = N, M
            transforms = cai.MeanScaleHyperprior(N, M)
            self.g_a, self.g_s = transforms.g_a, transforms.g_s
            checkerboard = lc.CheckerboardLatentCodec(
                latent_codec={"y": lc.GaussianConditionalLatentCodec()},
                entropy_parameters=cai.JointAutoregressiveHierarchicalPriors(
                    N, M
                ).entropy_parameters,
                context_prediction=CheckerboardMaskedConv2d(
                    M, 2 * M, kernel_size=5, padding=2
                ),
            )
            hyper = lc.HyperLatentCodec(
                EntropyBottleneck(N), transforms.h_a, transforms.h_s
            )
            self.latent_codec = lc.HyperpriorLatentCodec(
                latent_codec={"y": checkerboard, "hyper": hyper}
            )

        @classmethod
        def from_state_dict(cls, state_dict):
            N = state_dict["latent_codec.hyper.h_a.0.weight"].size(0)
            model = cls(N, state_dict["g_a.6.weight"].size(0))
            model.load_state_dict(state_dict)
            return model

    return CheckerboardMeanScale


def _cai_class(name: str):
    from compressai import models as cai

    return (
        checkerboard_twin_class()
        if name == "CheckerboardMeanScale"
        else getattr(cai, name)
    )


def _twin_class(model_class):
    try:
        name = registry.architecture_of(model_class).compressai_class
    except ValueError:
        name = None
    if name is None:
        raise TypeError(f"no CompressAI twin known for {model_class.__name__}")
    return _cai_class(name)


def _lic_class(cai_class):
    for entry in registry.ARCHITECTURES.values():
        if (
            entry.compressai_class is not None
            and not entry.twin_transforms
            and cai_class is _cai_class(entry.compressai_class)
        ):
            return entry.model_class
    raise TypeError(f"no lic_teach model known for CompressAI's {cai_class.__name__}")


def _to_cai_key(key: str, prefixes) -> str:
    for ours, theirs in prefixes:
        if key.startswith(ours):
            key = theirs + key[len(ours) :]
            break
    head, _, last = key.rpartition(".")
    return f"{head}.{_TABLES[last]}" if last in _TABLES else key


def _is_constant(cai_key: str) -> bool:
    return cai_key.endswith(_CONSTANT_SUFFIXES)


def to_compressai(model):
    """The CompressAI twin of ``model``, with the same weights and coding tables."""
    twin = _twin_class(type(model))(*model.hyperparameters())
    for name in registry.architecture_of(type(model)).twin_transforms:
        setattr(twin, name, copy.deepcopy(getattr(model, name)))
    prefixes = _PREFIXES.get(type(model), _FLAT_PREFIXES)
    state = {_to_cai_key(k, prefixes): v for k, v in model.state_dict().items()}
    for key, value in twin.state_dict().items():
        if _is_constant(key):
            state[key] = value
    twin.load_state_dict(state, strict=True)
    return twin.to(next(model.parameters()).device)


def from_compressai(cai_model, model_class: type | None = None):
    """The ``lic_teach`` twin of a CompressAI model (its weights and coding tables);
    name the ``model_class`` of a twin that carries borrowed transforms
    (:func:`to_compressai` of a shallow decoder), which CompressAI's class alone does
    not tell.

    Raises ``ValueError`` if one of CompressAI's constant buffers differs from the
    value the ``lic_teach`` model assumes (e.g. a changed GDN ``beta_min``).
    """
    model_class = model_class or _lic_class(type(cai_model))
    model = model_class(cai_model.N, cai_model.M)
    reference = to_compressai(model).state_dict()  # our constants, CompressAI's names
    prefixes = _PREFIXES.get(model_class, _FLAT_PREFIXES)
    inverse = {_to_cai_key(k, prefixes): k for k in model.state_dict()}
    foreign = [
        k for k in cai_model.state_dict() if k not in inverse and not _is_constant(k)
    ]
    if foreign:
        raise ValueError(
            f"this {type(cai_model).__name__} does not hold a {model_class.__name__} "
            f"(it has {foreign[0]!r}); for a twin that borrows transforms (a shallow "
            f"decoder), name its lic_teach class: from_compressai(cai_model, "
            f"model_class)"
        )
    ours = model.state_dict()
    state = {}
    for key, value in cai_model.state_dict().items():
        if _is_constant(key):
            if not torch.allclose(value.float().cpu(), reference[key].float().cpu()):
                raise ValueError(
                    f"CompressAI constant {key} = {value.tolist()} differs from "
                    f"lic_teach's {reference[key].tolist()}; cannot convert"
                )
            continue
        if (
            key.endswith("scale_table") and value.numel() == 0
        ):  # twin never updated: keep ours
            value = ours[inverse[key]]
        state[inverse[key]] = value
    model.load_state_dict(state, strict=True)
    return model.to(next(cai_model.parameters()).device)


# ------------------------------------------------------------------- zoo checkpoints


def load_zoo(
    architecture: str = "bmshj2018-factorized", quality: int = 1, metric: str = "mse"
):
    """A CompressAI zoo model with its published weights, as a ``lic_teach`` model.

    This is CompressAI's own ``pretrained=True`` path: it downloads the checkpoint (or
    reuses torch hub's cache). Without network it raises ``ConnectionError``.
    """
    function = registry.architecture(architecture).compressai_zoo
    if function is None:
        raise ValueError(
            f"CompressAI publishes no weights for {architecture}; "
            f"train one or use load_checkpoint"
        )
    from compressai import zoo

    try:
        cai_model = getattr(zoo, function)(
            quality=quality, metric=metric, pretrained=True
        )
    except OSError as error:  # urllib's URLError is an OSError
        raise ConnectionError(
            f"could not download the {architecture} quality {quality} "
            f"checkpoint: {error}. Are you offline?"
        ) from error
    return from_compressai(cai_model.eval())


def load_checkpoint(path, architecture: str = "bmshj2018-factorized"):
    """A ``lic_teach`` model from a checkpoint file in CompressAI's zoo format (a state
    dict saved by ``torch.save``, possibly with the zoo's older key names)."""
    from compressai.zoo.pretrained import load_pretrained

    entry = registry.architecture(architecture)
    if entry.twin_transforms:
        raise ValueError(
            f"CompressAI has no {architecture} model, so no checkpoint of its format "
            f"holds one; load lic_teach weights with lic_teach.zoo.load_weights"
        )
    class_name = entry.compressai_class
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, altered, or not a torch file at all
        raise ValueError(
            f"could not read the checkpoint {path}: {str(error)[:200]}"
        ) from error
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = load_pretrained(state)
    cai_class = _cai_class(class_name)
    try:
        cai_model = cai_class.from_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as error:
        raise ValueError(
            f"{path} is not a {architecture} checkpoint in CompressAI's format: "
            f"{str(error)[:200]}"
        ) from error
    return from_compressai(cai_model)


# --------------------------------------------------------------------- the cross-check


@torch.no_grad()
def crosscheck(model, x: torch.Tensor, coder: str = "ans") -> dict:
    """Run ``model`` and its CompressAI twin on the same image and compare.

    Returns the largest absolute differences of ``y``, the likelihoods and ``x_hat``
    (eval mode), the ideal rate ``sum(-log2 p)`` against the bytes both codecs really
    write, whether the strings are identical, and how far the image ``lic_teach``
    decodes from its bitstream is from the one CompressAI decodes from its own.
    ``decoded_matches_forward`` is None for :class:`JointAutoregressive`, whose eval
    ``forward`` rounds ``y`` without the means (see its docstring).
    """
    model.eval()
    model.update(force=True)
    # the twin on the CPU: CompressAI's serial decoder builds its symbols there
    twin = to_compressai(model).cpu().eval()
    x = pad_to(as_batch(x).cpu(), model.downsampling)
    on_model = x.to(next(model.parameters()).device)
    forward = model(on_model)
    ours = {
        "x_hat": forward["x_hat"].cpu(),
        "likelihoods": {k: v.cpu() for k, v in forward["likelihoods"].items()},
    }
    theirs = twin(x)
    y_ours, y_theirs = model.g_a(on_model).cpu(), twin.g_a(x)
    our_strings = model.image_to_strings(x, coder)  # it moves x to the model
    coded = twin.compress(x)
    their_strings = [strings[0] for strings in coded["strings"]]
    pixels = x.shape[-2] * x.shape[-1]
    decoded = model.strings_to_image(
        our_strings, model.latent_size(*x.shape[-2:]), coder
    ).cpu()
    their_decoded = twin.decompress(coded["strings"], coded["shape"])["x_hat"]
    likelihood_gap = max(
        float((ours["likelihoods"][k] - theirs["likelihoods"][k]).abs().max())
        for k in ours["likelihoods"]
    )
    matches_forward = (
        None
        if isinstance(model, JointAutoregressive)
        else float((decoded - ours["x_hat"]).abs().max()) <= 1e-5
    )
    return {
        "max_diff_y": float((y_ours - y_theirs).abs().max()),
        "max_diff_likelihoods": likelihood_gap,
        "max_diff_x_hat": float((ours["x_hat"] - theirs["x_hat"]).abs().max()),
        "ideal_bits": float(bits(ours["likelihoods"])),
        "coded_bits": 8.0 * sum(len(s) for s in our_strings),
        "compressai_coded_bits": 8.0 * sum(len(s) for s in their_strings),
        "ideal_bpp": bpp(ours["likelihoods"], pixels),
        "coded_bpp": bpp(sum(len(s) for s in our_strings), pixels),
        "same_bitstream": coder == "ans" and our_strings == their_strings,
        "max_diff_decoded": float((decoded.clamp(0, 1) - their_decoded).abs().max()),
        "decoded_matches_forward": matches_forward,
    }
