"""lic_teach: readable reference code behind an executable textbook on learned image
compression, one concept per module. The README's module table lists every module in
its layer; that table is the map, and ``tests/test_package_map.py`` keeps it true."""

import warnings
from importlib.metadata import PackageNotFoundError, version

# torchvision/CompressAI call torch.jit.script on import, which recent torch reports as
# deprecated; the warning is theirs and says nothing to a reader of this book.
warnings.filterwarnings(
    "ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning
)

try:
    __version__ = version("lic_teach")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
