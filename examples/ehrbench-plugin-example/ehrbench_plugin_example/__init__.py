"""An example ehrbench model plugin: `example_centroid`, a nearest-centroid classifier."""

from ehrbench_plugin_example.model import NearestCentroidModel

__all__ = ["NearestCentroidModel"]
