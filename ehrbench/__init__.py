"""ehrbench: cohorts, features, models and honest benchmarks on MEDS event streams."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ehrbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
