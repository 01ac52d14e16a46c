"""Robust estimation: which point matches a transform should be fitted to.

A least-median-of-squares fit sets the inlier threshold from the data,
RANSAC with a local refit finds the inliers, and a chance test refuses a
consensus that unrelated matches would reach. The least-squares fits
themselves are in ``_estimators``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.special import bdtrc, gamma, gammaincinv

from ._estimators import (
    check_geometry,
    determines,
    estimator,
    least_squares,
    residual_distances,
)

__all__ = ["default_threshold", "robust_inliers"]

# A derived threshold never goes below this: NCC matches scatter by
# hundredths to tenths of a pixel, and a match that departs from the model
# by less than half a pixel is not what users call an outlier.
_MIN_THRESHOLD = 0.5
# Share of good matches' residuals the derived threshold accepts.
_INLIER_QUANTILE = 0.999
_MAX_REFITS = 20
_MAX_TRIALS = 2000
# A consensus this likely to arise among unrelated matches is refused.
_CHANCE_LEVEL = 0.01
# Cells per axis of the grid that measures a threshold against the box.
_SHARE_CELLS = 32


def robust_inliers(
    model: str,
    src: np.ndarray,
    dst: np.ndarray,
    threshold: float | None,
    need: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, float]:
    """The matches a robust `model` fit keeps, and the threshold it used.

    Parameters
    ----------
    model : {'translation', 'rigid', 'similarity', 'affine', 'projective'}
        Transform family.
    src, dst : (N, D) ndarray
        Finite points and their matches, enough to determine `model`.
    threshold : float or None
        Inlier threshold in pixels; None derives it from a
        least-median-of-squares fit (see :func:`default_threshold`).
    need : tuple of int
        Minimum number of points and minimum rank of the centred points.
    rng : numpy.random.Generator
        Source of the random samples.

    Returns
    -------
    inliers : (N,) ndarray of bool
        The consensus set, refitted until stable.
    threshold : float
        The threshold given, or the one derived.

    Raises
    ------
    ValueError
        If no `model` is supported by more matches than chance would give.
    """
    if threshold is None:
        first = _least_median_residuals(model, src, dst, need, rng)
        threshold = default_threshold(first, src.shape[1], need[0])
    return _consensus(model, src, dst, threshold, need, rng), threshold


def _least_median_residuals(
    model: str,
    src: np.ndarray,
    dst: np.ndarray,
    need: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Residuals of a fit to the better half of the matches.

    That half is the one a least-median-of-squares fit (Rousseeuw 1984)
    fits best; its minimal samples are drawn until one free of outliers is
    found with 99.9 % probability when up to half of the matches are
    outliers.
    """
    min_points, min_rank = need
    trials = int(np.ceil(np.log(1e-3) / np.log(1 - 0.5**min_points)))
    best, lowest = np.arange(len(src)), np.inf
    fitter = estimator(model)
    for _ in range(trials):
        pick = rng.choice(len(src), min_points, replace=False)
        if not determines(model, src[pick], min_rank):
            continue  # a degenerate sample fits anything
        estimate = fitter.from_estimate(src[pick], dst[pick])
        if estimate:
            residuals = residual_distances(estimate.params, src, dst)
            if np.median(residuals) < lowest:
                lowest = np.median(residuals)
                best = np.flatnonzero(residuals <= lowest)
    # A least-squares refit on the better half is steadier than the best
    # minimal sample.
    if not determines(model, src[best], min_rank):
        best = np.arange(len(src))
    matrix = least_squares(model, src[best], dst[best])
    return residual_distances(matrix, src, dst)


def default_threshold(
    residuals: np.ndarray, ndim: int, min_points: int
) -> float:
    """Inlier threshold in pixels from the residuals of a first fit.

    Good matches scatter with a per-axis standard deviation sigma, so their
    residual distances follow a chi distribution with D degrees of freedom.
    A first sigma comes from the median residual (with Rousseeuw's
    small-sample correction for LMedS); the residuals it accepts give the
    final sigma, free of the outliers that inflate the median. The
    threshold accepts 99.9 % of good matches, but never less than 0.5 px.

    Parameters
    ----------
    residuals : (N,) ndarray
        Residual distances in pixels of a fit to all N matches.
    ndim : int
        Dimension D of the points.
    min_points : int
        Points in a minimal sample of the model, for the correction.

    Returns
    -------
    float
        The threshold in pixels.
    """
    correction = 1 + 5 / max(len(residuals) - min_points, 1)
    sigma = correction * np.median(residuals) / _chi_quantile(0.5, ndim)
    cutoff = _chi_quantile(_INLIER_QUANTILE, ndim)
    close = residuals[residuals <= cutoff * sigma]
    sigma = np.sqrt(np.mean(close**2) / ndim)
    return float(max(_MIN_THRESHOLD, cutoff * sigma))


def _chi_quantile(q: float, ndim: int) -> float:
    """Quantile of the length of a standard normal vector in `ndim`-D."""
    return float(np.sqrt(2 * gammaincinv(ndim / 2, q)))


def _by_chance(
    count: int | np.integer,
    dst: np.ndarray,
    threshold: float,
    min_points: int,
    trials: int,
) -> float:
    """Chance that `trials` models of unrelated matches reach `count`.

    A random target lands within `threshold` of a prediction with the
    odds of a ball of that radius in the targets' bounding box; a
    minimal sample always agrees with itself (the non-randomness test of
    PROSAC, Chum and Matas 2005, bounded over all trials).
    """
    ndim = dst.shape[1]
    ball = np.pi ** (ndim / 2) / gamma(ndim / 2 + 1) * threshold**ndim
    box = np.prod(np.maximum(np.ptp(dst, axis=0), 2 * threshold))
    # A threshold as wide as the targets' spread takes in most of them
    # wherever the model puts its predictions: the ball-to-box ratio
    # (which stops at pi/4 in 2-D) then says too little.
    odds = max(ball / box, _central_share(np.ptp(dst, axis=0), threshold))
    others = len(dst) - min_points
    # bdtrc(k, n, p) is P(more than k of n succeed).
    tail = bdtrc(count - min_points - 1, others, min(odds, 1.0))
    return float(trials * tail)


def _central_share(extent: np.ndarray, threshold: float) -> float:
    """Share of a box of `extent` (per axis) within `threshold` of its
    centre, on a grid of cells (what a prediction at the centre takes
    in of targets spread evenly over the box)."""
    cells = (np.arange(_SHARE_CELLS) + 0.5) / _SHARE_CELLS - 0.5
    grid = np.meshgrid(*[cells * e for e in extent], indexing="ij")
    distance = np.sqrt(sum(g**2 for g in grid))
    return float(np.mean(distance <= threshold))


def _consensus(
    model: str,
    src: np.ndarray,
    dst: np.ndarray,
    threshold: float,
    need: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Inliers of RANSAC, then refitted until the inlier set is stable.

    The refit follows LO-RANSAC (Chum, Matas and Kittler 2003): a
    least-squares fit to the consensus set, whose inliers become the next
    set, until it no longer changes.
    """
    min_points = need[0]
    if len(src) == min_points:
        # An exact fit: there is nothing to vote with.
        return np.ones(len(src), dtype=bool)
    from skimage.measure import ransac

    with warnings.catch_warnings():
        # An empty consensus is reported below, in our words.
        warnings.simplefilter("ignore", UserWarning)
        _, found = ransac(
            (src, dst),
            estimator(model),
            min_points,
            threshold,
            is_data_valid=lambda s, d: determines(model, s, need[1]),
            max_trials=_MAX_TRIALS,
            stop_probability=0.999,
            rng=rng,
        )
    # skimage gives None for no consensus; no inliers says the same.
    inliers = np.zeros(len(src), bool) if found is None else found
    trials = min(_MAX_TRIALS, math.comb(len(src), min_points))
    for _ in range(_MAX_REFITS):
        count = np.count_nonzero(inliers)
        chance = _by_chance(count, dst, threshold, min_points, trials)
        if count <= min_points or chance > _CHANCE_LEVEL:
            raise ValueError(
                f"no {model} transform is supported by more matches "
                f"within {threshold:.3g} px than chance would give "
                f"({count} of {len(src)}): the matches look like outliers"
            )
        check_geometry(model, src[inliers], need)
        matrix = least_squares(model, src[inliers], dst[inliers])
        refitted = residual_distances(matrix, src, dst) <= threshold
        if np.array_equal(refitted, inliers):
            break
        inliers = refitted
    return inliers
