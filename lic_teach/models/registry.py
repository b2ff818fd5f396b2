"""The model registry: one table from an architecture's name to its class.

Each image model registers itself with :func:`register_model` under the name
CompressAI's zoo gives its architecture: the first authors' initials and the year, then
a variant (``"bmshj2018-factorized"``: the factorized prior of Ballé, Minnen, Singh,
Hwang and Johnston, "Variational image compression with a scale hyperprior", ICLR 2018).
It names its CompressAI twin and the zoo function that loads published weights, where
they exist. The cross-check, the zoo of trained models and the command line look
architectures up here, and a bitstream's header names the model that decodes it
(:func:`writer_of`), so a new model is known everywhere once it is registered.

A model whose transforms CompressAI lacks (Yang and Mandt's shallow decoders) names the
CompressAI codec of its entropy model and the transforms the twin borrows from it
(``twin_transforms``): the cross-check then runs CompressAI's coding around our ``g_a``
and ``g_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import bitstream


@dataclass(frozen=True)
class Architecture:
    """A registered model: ``name``, its ``model_class``, the class name of its
    CompressAI twin (``compressai.models``), the ``compressai.zoo`` function with
    published weights (``None`` where CompressAI has none), and the modules the twin
    borrows from the model because CompressAI has no such transforms (``()``: none)."""

    name: str
    model_class: type
    compressai_class: str | None = None
    compressai_zoo: str | None = None
    twin_transforms: tuple[str, ...] = ()


ARCHITECTURES: dict[str, Architecture] = {}


def register_model(
    name: str,
    *,
    compressai_class: str | None = None,
    compressai_zoo: str | None = None,
    twin_transforms: tuple[str, ...] = (),
):
    """Class decorator: register the model class under ``name``."""

    def register(model_class: type) -> type:
        if name in ARCHITECTURES:
            raise ValueError(
                f"architecture {name!r} is already registered "
                f"(by {ARCHITECTURES[name].model_class.__name__})"
            )
        ARCHITECTURES[name] = Architecture(
            name, model_class, compressai_class, compressai_zoo, tuple(twin_transforms)
        )
        return model_class

    return register


def architecture(name: str) -> Architecture:
    """The registered architecture ``name``; ``ValueError`` listing the known ones."""
    if name not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}"
        )
    return ARCHITECTURES[name]


def architecture_of(model_class: type) -> Architecture:
    """The registered architecture whose class is exactly ``model_class``."""
    for entry in ARCHITECTURES.values():
        if entry.model_class is model_class:
            return entry
    raise ValueError(f"{model_class.__name__} is not a registered model")


def writer_of(data: bytes) -> tuple[Architecture, tuple[int, ...], str]:
    """``(architecture, hyper-parameters, layout)`` of the model that wrote the
    bitstream ``data``, read from its verified header, so that a decoder can build that
    model (``layout``: ``""``, or a suffix such as ``"+DQ"`` for another arrangement of
    the latents). ``ValueError`` for damaged bytes or a model that is not registered."""
    header, _ = bitstream.unpack(data)
    class_name, plus, layout = header.model.partition("+")
    for entry in ARCHITECTURES.values():
        if entry.model_class.__name__ == class_name:
            return entry, tuple(header.params), plus + layout
    raise ValueError(
        f"this bitstream was written by {class_name}, which is not a registered model; "
        f"known: {', '.join(e.model_class.__name__ for e in ARCHITECTURES.values())}"
    )
