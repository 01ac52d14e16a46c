"""Matching points between two images: ``match_points`` and everything
behind its result (windows placed and read, correlated, refined to
sub-pixel, judged; the consistency check, guided matching through a
known transform, the statuses, a run on a cluster).
"""

from ._match import match_points
from ._result import MatchResult, Status, Surface

__all__ = [
    "MatchResult",
    "Status",
    "Surface",
    "match_points",
]
