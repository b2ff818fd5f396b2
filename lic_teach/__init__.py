"""lic_teach: readable reference code behind an executable textbook on learned image
compression. One concept per module: ``budget``, ``data``, ``metrics``, ``baselines``,
``train``, ``plots``, ``widgets``, ``rate_distortion``, ``transform_coding``."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lic_teach")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
