"""lic_teach: readable reference code behind an executable textbook on learned image
compression. One concept per module: ``budget``, ``data``, ``metrics``, ``baselines``,
``train``, ``plots``, ``widgets``, ``rate_distortion``, ``transform_coding``, ``coding``,
``entropy_models``, ``layers``, ``models``, ``crosscheck``, ``evaluate``, ``experiments``,
``quantization``, ``toy_sources``, ``relaxed_training``, ``iterative_encoding``,
``entropy_constrained``."""
import warnings
from importlib.metadata import PackageNotFoundError, version

# torchvision/CompressAI call torch.jit.script on import, which recent torch reports as
# deprecated; the warning is theirs and says nothing to a reader of this book.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)

try:
    __version__ = version("lic_teach")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
