"""Registration: transforms fitted robustly to matches, matching again
through them until they stop changing, and images warped through them.
"""

from ._models import TooFewMatches
from ._register import register
from ._transform import TransformFit, fit_transform
from ._warp import warp

__all__ = [
    "TooFewMatches",
    "TransformFit",
    "fit_transform",
    "register",
    "warp",
]
