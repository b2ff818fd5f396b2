"""The model registry: one table from an architecture's name to its class.

Each image model registers itself with :func:`register_model` under the name CompressAI's
zoo gives its architecture: the first authors' initials and the year, then a variant
(``"bmshj2018-factorized"``: the factorized prior of Ballé, Minnen, Singh, Hwang and
Johnston, "Variational image compression with a scale hyperprior", ICLR 2018). It names
its CompressAI twin and the zoo function that loads published weights, where they exist. The cross-check, the zoo of
trained models and the command line look architectures up here, so a new model is known
everywhere once it is registered.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    """A registered model: ``name``, its ``model_class``, the class name of its CompressAI
    twin (``compressai.models``) and the ``compressai.zoo`` function with published
    weights (``None`` where CompressAI has none)."""
    name: str
    model_class: type
    compressai_class: str | None = None
    compressai_zoo: str | None = None


ARCHITECTURES: dict[str, Architecture] = {}


def register_model(name: str, *, compressai_class: str | None = None, compressai_zoo: str | None = None):
    """Class decorator: register the model class under ``name``."""
    def register(model_class: type) -> type:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} is already registered "
                             f"(by {ARCHITECTURES[name].model_class.__name__})")
        ARCHITECTURES[name] = Architecture(name, model_class, compressai_class, compressai_zoo)
        return model_class
    return register


def architecture(name: str) -> Architecture:
    """The registered architecture ``name``; ``ValueError`` listing the known ones."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def architecture_of(model_class: type) -> Architecture:
    """The registered architecture whose class is exactly ``model_class``."""
    for entry in ARCHITECTURES.values():
        if entry.model_class is model_class:
            return entry
    raise ValueError(f"{model_class.__name__} is not a registered model")
