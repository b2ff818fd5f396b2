"""Image compression models, each following the model contract of DESIGN.md."""
from .factorized import FactorizedPrior

__all__ = ["FactorizedPrior"]
