"""Matching points between two images: ``match_points`` and everything
behind its result (windows placed and read, correlated, refined to
sub-pixel, judged; the consistency check, guided matching through a
known transform, the statuses, a run on a cluster).
"""

from ._match import match_points
from ._result import MatchResult, Status, Surface

# The compiled kernels match_points uses when numba is installed (see
# core._compiled): a GUI loads them in a thread before its first run.
KERNEL_MODULES = (
    f"{__name__.rpartition('.')[0]}.core._window_kernels",
    f"{__name__.rpartition('.')[0]}.core._peak_kernels",
    f"{__name__}._motion_kernels",
    f"{__name__}._warp_kernels",
)

__all__ = [
    "KERNEL_MODULES",
    "MatchResult",
    "Status",
    "Surface",
    "match_points",
]
