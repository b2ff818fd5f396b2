"""Image compression models, each following the model contract of DESIGN.md."""
from .factorized import FactorizedPrior
from .hyperprior import MeanScaleHyperprior, ScaleHyperprior

__all__ = ["FactorizedPrior", "ScaleHyperprior", "MeanScaleHyperprior"]
