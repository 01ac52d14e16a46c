"""Match points of interest between two images by normalized cross-correlation.

The core (everything importable from here except ``MatchWidget``) needs only
numpy and scipy, and scikit-image for ``fit_transform`` models other than
translation; the napari widget is imported on first use.
"""

from .core import (
    find_template_offset,
    find_template_offset_centered,
    normalized_cross_correlation,
    normalized_cross_correlation_2d,
    visualize_cross_correlation,
)
from .core._strain import principal_strains, strain
from .fields import FieldResult, displacement_field, grid_points, match_field
from .matching import MatchResult, Status, Surface, match_points
from .registration import TransformFit, fit_transform, register, warp
from .tracking import TrackResult, estimate_drift, track_points

__version__ = "0.1.0"

__all__ = [
    "FieldResult",
    "MatchResult",
    "MatchWidget",
    "Status",
    "Surface",
    "TrackResult",
    "TransformFit",
    "displacement_field",
    "estimate_drift",
    "find_template_offset",
    "find_template_offset_centered",
    "fit_transform",
    "grid_points",
    "match_field",
    "match_points",
    "normalized_cross_correlation",
    "normalized_cross_correlation_2d",
    "principal_strains",
    "register",
    "strain",
    "track_points",
    "visualize_cross_correlation",
    "warp",
]


def __getattr__(name: str) -> object:
    # The widget needs napari and Qt: import them only when asked for.
    if name == "MatchWidget":
        from ._napari.widget import MatchWidget

        return MatchWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
