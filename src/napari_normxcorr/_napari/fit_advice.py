"""What the Register tab says when a fit fails or looks suspicious: the
model the matches support, and `two motions` explained by rotation or
scale.

Plain functions of the fit and the matches, tested without a viewer.
"""

from __future__ import annotations

import numpy as np

from ..matching._result import MatchResult, Status
from ..registration import TooFewMatches

# Rotation (degrees) or scale change (fraction) beyond which a straight
# template no longer matches well: the warp of plain matching follows a
# few degrees or percent.
LARGE_TURN, LARGE_SCALE = 5.0, 0.05
# `two motions` on at least this many rows, and this fraction of them,
# is "many".
MANY_ROWS, MANY_FRACTION = 2, 0.2


def rotation_and_scale(matrix: np.ndarray) -> tuple[float, float]:
    """The rotation (degrees) and mean scale of a homogeneous matrix's
    linear part (its polar decomposition)."""
    linear = np.asarray(matrix, dtype=float)[:-1, :-1]
    d = len(linear)
    u, _, vt = np.linalg.svd(linear)
    rotation = u @ vt
    # trace(R) = 2 cos(angle) in 2-D, 1 + 2 cos(angle) in 3-D.
    cosine = np.clip((np.trace(rotation) - (d - 2)) / 2, -1.0, 1.0)
    scale = abs(np.linalg.det(linear)) ** (1 / d)
    return float(np.degrees(np.arccos(cosine))), float(scale)


def two_motions(result: MatchResult) -> int:
    """How many rows are ``two motions``, when they are many; else 0."""
    count = int(np.count_nonzero(result.status == Status.TWO_MOTIONS))
    many = count >= MANY_ROWS and count >= MANY_FRACTION * len(result)
    return count if many else 0


def two_motions_note(result: MatchResult, matrix: np.ndarray) -> str | None:
    """A sentence on the `two motions` rows of `result` when the fit
    `matrix` turns or scales enough to cause them; else None."""
    count = two_motions(result)
    if not count:
        return None
    degrees, scale = rotation_and_scale(matrix)
    if degrees < LARGE_TURN and abs(scale - 1) < LARGE_SCALE:
        return None
    return (
        f"{count} of {len(result)} matches are 'two motions': the target "
        f"is turned by {degrees:.1f} degrees and scaled by {scale:.2f}, "
        "which a straight template cannot follow. Refine through the fit "
        "removes it."
    )


def too_few_advice(
    error: TooFewMatches, result: MatchResult
) -> tuple[str, str | None]:
    """The notification for a fit with too few ok matches, and the model
    to switch to (the most general one they support, a shift only when
    nothing better fits), or None when they support none."""
    supported = error.supported
    named = [m for m in supported if m != "translation"] or list(supported)
    model = named[0] if named else None
    message = str(error) + "."
    if model is not None:
        message += f" The model is now {model}: press Fit, then Refine."
    count = two_motions(result)
    if count:
        message += (
            f" {count} matches are 'two motions', as when the target is "
            "turned or scaled: Refine through the fit removes it."
        )
    return message, model
