"""Tracking points through a time series: ``track_points`` (each point
predicted, matched and refined with a shape function frame by frame),
its result as napari Tracks and tables, and the drift.
"""

from ._drift import estimate_drift
from ._track import track_points
from ._tracks import TrackResult

__all__ = [
    "TrackResult",
    "estimate_drift",
    "track_points",
]
