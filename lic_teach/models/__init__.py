"""Image compression models, each following the model contract of ``base.ImageCodec``
and registered by architecture name in ``registry``."""

from .context import CheckerboardContext, JointAutoregressive
from .factorized import FactorizedPrior
from .hyperprior import MeanScaleHyperprior, ScaleHyperprior
from .registry import ARCHITECTURES, architecture, architecture_of, register_model
from .shallow import JPEGLikeHyperprior, TwoLayerHyperprior

__all__ = [
    "FactorizedPrior",
    "ScaleHyperprior",
    "MeanScaleHyperprior",
    "JointAutoregressive",
    "CheckerboardContext",
    "JPEGLikeHyperprior",
    "TwoLayerHyperprior",
    "ARCHITECTURES",
    "architecture",
    "architecture_of",
    "register_model",
]
