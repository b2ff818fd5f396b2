"""Image compression models, each following the model contract of DESIGN.md."""
from .context import CheckerboardContext, JointAutoregressive
from .factorized import FactorizedPrior
from .hyperprior import MeanScaleHyperprior, ScaleHyperprior

__all__ = ["FactorizedPrior", "ScaleHyperprior", "MeanScaleHyperprior", "JointAutoregressive",
           "CheckerboardContext"]
