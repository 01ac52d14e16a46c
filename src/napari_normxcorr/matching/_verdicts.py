"""Verdicts from a match's columns: each row alone, then by its neighbours.

The per-row tests read a row's score, peak ratio, motion gap,
uncertainty and consistency; the neighbour test compares each ok match
with the ok matches around it, so it is rerun on the whole result
whenever rows change (live edits).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..core._peak_covariance import SCORE_PRECISION, axis_variances
from ._neighbours import normalized_median_residual
from ._result import MatchResult, Status

# The default thresholds of match_points, chosen on ground truth by
# benchmarks/bench_verdicts.py (the motorcycle stereo pair, the shifted
# brick, the deformed sample): the most points kept ok with at most 5 %
# of them wrong at every template radius, and none wrong on the brick.
# A quadrant of the template that scores this much better away from the
# match moves on its own (see match_points' max_motion_gap).
MAX_MOTION_GAP = 0.03
# px: the largest standard deviation of a match.
MAX_UNCERTAINTY = 0.5
# px between the point and the back-match of its match.
MAX_CONSISTENCY_ERROR = 2.0
# The normalized median test (Westerweel & Scarano's limit is 2, per
# component about the neighbours' median). Ours compares vectors with the
# local affine trend of the neighbours (see normalized_median_residual),
# whose spread is wider: 2.5 keeps right offsets of smooth flows and
# still catches the wrong ones (tests/test_smooth_fields.py).
MAX_NEIGHBOUR_RESIDUAL = 2.5
# The neighbour test needs a dense set: a plane with fewer ok matches
# (scattered clicks across depths, say) is not judged.
MIN_JUDGED = 16
# A covariance whose axes' standard deviations differ by this factor (or
# an unbounded one) is the ridge of a straight edge, not a blurred peak.
EDGE_ELONGATION = 3.0


class Thresholds(NamedTuple):
    """The limits of the verdicts (see match_points)."""

    min_score: float
    min_distinctiveness: float
    min_peak_ratio: float
    max_motion_gap: float
    max_uncertainty: float
    max_consistency_error: float
    max_neighbour_residual: float


def peak_ratio(score: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``(1 - second) / (1 - score)``, each distance to a perfect match
    at least SCORE_PRECISION (a tie of two perfect scores is 1, not 0/0);
    NaN without a second peak."""
    gap = np.maximum(1.0 - np.asarray(score, dtype=float), SCORE_PRECISION)
    other = np.maximum(1.0 - np.asarray(second, dtype=float), SCORE_PRECISION)
    return other / gap


def judge_rows(
    status: np.ndarray,
    result_columns: dict[str, np.ndarray],
    limits: Thresholds,
) -> np.ndarray:
    """Statuses after the per-row tests; only ``ok`` rows change.

    A row without a second peak (its surface has no room for one) has no
    peak ratio and is ``ambiguous``: its uniqueness is unknown.
    """
    c = result_columns
    uncertain = c["uncertainty"] > limits.max_uncertainty
    edge = uncertain & (_elongation(c["covariance"]) >= EDGE_ELONGATION)
    verdicts = [
        (~(c["score"] >= limits.min_score), Status.LOW_SCORE),
        (c["on_border"], Status.ON_BORDER),
        (~(c["peak_ratio"] >= limits.min_peak_ratio), Status.AMBIGUOUS),
        (c["distinctiveness"] < limits.min_distinctiveness, Status.AMBIGUOUS),
        (c["motion_gap"] > limits.max_motion_gap, Status.TWO_MOTIONS),
        (edge, Status.EDGE_ONLY),
        (uncertain, Status.UNCERTAIN),
        (c["consistency"] > limits.max_consistency_error, Status.INCONSISTENT),
    ]
    status = status.copy()
    for mask, verdict in verdicts:
        status[mask & (status == Status.OK)] = verdict
    return status


def _elongation(covariance: np.ndarray) -> np.ndarray:
    """Ratio of the largest to the smallest standard deviation per row;
    infinite where the covariance is unbounded (NaN)."""
    variances = axis_variances(covariance)
    if covariance.shape[-1] < 2:
        return np.where(np.isfinite(variances[:, 0]), 1.0, np.inf)
    low, high = variances[:, 0], variances[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sqrt(high / low)
    # A zero covariance (a perfect match) has no shape.
    ratio = np.where(high > 0, ratio, 1.0)
    return np.where(np.isfinite(high), ratio, np.inf)


def judge_neighbours(
    result: MatchResult, max_residual: float, ndim: int
) -> MatchResult:
    """Flag ``ok`` rows unlike their neighbours ``outlier``, in place.

    Rows ``ok`` or ``outlier`` are judged again from scratch: each is
    compared with the offsets of its nearest ok matches in the same plane,
    through the local trend they follow (see
    :func:`normalized_median_residual`: who counts as a neighbour, and
    how a smooth but non-linear field, such as a vortex, is followed;
    rows near `max_residual` are judged again without the outliers as
    neighbours); a row without enough neighbours, or in a plane of fewer
    than MIN_JUDGED ok matches, is never an outlier.
    The residual of every row with enough neighbours goes to
    ``neighbour_residual``; an infinite `max_residual` turns the test
    off (no residuals computed, NaN). Returns `result`.
    """
    status = result.status
    candidate = (status == Status.OK) | (status == Status.OUTLIER)
    status[status == Status.OUTLIER] = Status.OK
    residual = np.full(len(result), np.nan)
    if max_residual == np.inf:
        result.neighbour_residual = residual
        return result
    planes = np.rint(result.points[:, :-ndim])
    for plane in _unique_rows(planes[candidate]):
        rows = np.flatnonzero(candidate & (planes == plane).all(axis=1))
        if len(rows) < MIN_JUDGED:
            continue
        found, _ = normalized_median_residual(
            result.points[rows, -ndim:],
            result.offset[rows, -ndim:],
            limit=max_residual,
        )
        residual[rows] = found
    result.neighbour_residual = residual
    status[candidate & (residual > max_residual)] = Status.OUTLIER
    return result


def _unique_rows(values: np.ndarray) -> list[np.ndarray]:
    if values.shape[1] == 0:
        return [values[:0].reshape(0)] if len(values) else []
    return list(np.unique(values, axis=0))
