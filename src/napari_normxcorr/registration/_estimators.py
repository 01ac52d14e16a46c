"""Least-squares fits of one transform family to point pairs.

The estimators behind :func:`~napari_normxcorr.fit_transform` and the
check that the points determine the transform. Points are in pixel
coordinates in the arrays' axis order (row, col[, plane]); nothing is
converted to (x, y).
Robust estimation on top of these is in ``_robust``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..matching._guided import apply_matrix

__all__ = [
    "Estimate",
    "Estimator",
    "article",
    "check_geometry",
    "determines",
    "estimator",
    "in_general_position",
    "least_squares",
    "point_rank",
    "residual_distances",
]

# Centred points whose weakest direction spans less than this fraction of
# the strongest, or less than this many pixels, leave that direction to
# rounding, not to the points.
_RANK_RTOL = 1e-6
_RANK_ATOL = 1e-6


class Estimate(Protocol):
    """A fitted transform; falsy (and without `params`) if the fit failed."""

    params: np.ndarray  # homogeneous (D+1, D+1) matrix


class Estimator(Protocol):
    """A transform class with skimage's ``from_estimate`` protocol."""

    def from_estimate(self, src: np.ndarray, dst: np.ndarray) -> Estimate: ...


class _Translation:
    """Pure shift, with the ``from_estimate`` protocol of skimage."""

    def __init__(self, shift: np.ndarray) -> None:
        self.params = np.eye(len(shift) + 1)
        self.params[:-1, -1] = shift

    @classmethod
    def from_estimate(cls, src: np.ndarray, dst: np.ndarray) -> _Translation:
        """The least-squares shift from `src` to `dst`, (N, D) each."""
        # The mean shift is the least-squares fit.
        return cls(np.mean(dst - src, axis=0))

    def residuals(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """(N,) distances between the shifted `src` and `dst`, as skimage's
        ``residuals``."""
        return np.linalg.norm(src + self.params[:-1, -1] - dst, axis=1)


def estimator(model: str) -> Estimator:
    """The class that fits `model`, with skimage's ``from_estimate``.

    Parameters
    ----------
    model : {'translation', 'rigid', 'similarity', 'affine', 'projective'}
        Transform family.

    Returns
    -------
    Estimator
        A class whose ``from_estimate(src, dst)`` fits `model`.
    """
    if model == "translation":
        return _Translation
    # skimage.transform pulls in scipy.optimize: import it on first use.
    from skimage import transform

    # Estimators are equivariant under a permutation of the axes, so
    # fitting directly in (row, col) order yields the (row, col) matrix.
    estimators: dict[str, Estimator] = {
        "rigid": transform.EuclideanTransform,
        "similarity": transform.SimilarityTransform,
        "affine": transform.AffineTransform,
        "projective": transform.ProjectiveTransform,
    }
    return estimators[model]


def residual_distances(
    matrix: np.ndarray, src: np.ndarray, dst: np.ndarray
) -> np.ndarray:
    """Distance between each point mapped through `matrix` and its match.

    Parameters
    ----------
    matrix : (D+1, D+1) ndarray
        Homogeneous transform matrix.
    src, dst : (N, D) ndarray
        Points and their matches.

    Returns
    -------
    (N,) ndarray
        Euclidean distances in pixels; infinite for a point a projective
        matrix sends to its horizon (a minimal sample's fit can).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        distances = np.linalg.norm(apply_matrix(matrix, src) - dst, axis=1)
    return np.where(np.isnan(distances), np.inf, distances)


def point_rank(points: np.ndarray) -> int:
    """Number of independent directions spanned by the centred points.

    Parameters
    ----------
    points : (N, D) ndarray
        Points, N >= 1.

    Returns
    -------
    int
        0 for coincident points, 1 for collinear ones, and so on up to D.
        A direction counts when the points spread along it by more than
        ``_RANK_ATOL`` pixels (RMS) and ``_RANK_RTOL`` of the widest.
    """
    spread = np.linalg.svd(points - points.mean(0), compute_uv=False)
    spread = spread / np.sqrt(len(points))
    floor = max(_RANK_ATOL, _RANK_RTOL * spread[0])
    return int(np.count_nonzero(spread > floor))


def in_general_position(points: np.ndarray) -> bool:
    """Whether four of the (N, 2) points have no three on one line: what
    a projective transform needs, beyond spanning the plane.

    Apart from sets of fewer than four distinct points, the only sets
    without such four are those with all but one point on a line; that
    line passes through two of any three distinct points.
    """
    spread = np.ptp(points, axis=0).max() if len(points) else 0.0
    tolerance = max(_RANK_ATOL, _RANK_RTOL * spread)
    distinct = [points[0]] if len(points) else []
    for point in points[1:]:
        if min(np.linalg.norm(point - d) for d in distinct) > tolerance:
            distinct.append(point)
        if len(distinct) == 4:
            break
    if len(distinct) < 4:
        return False
    for a, b in ((0, 1), (0, 2), (1, 2)):
        along = distinct[b] - distinct[a]
        normal = np.array([-along[1], along[0]]) / np.linalg.norm(along)
        off = np.abs((points - distinct[a]) @ normal) > tolerance
        if np.count_nonzero(off) <= 1:
            return False
    return True


def determines(model: str, points: np.ndarray, min_rank: int) -> bool:
    """Whether `points` span `min_rank` directions, and (projective) have
    four in general position."""
    if point_rank(points) < min_rank:
        return False
    return model != "projective" or in_general_position(points)


def check_geometry(model: str, src: np.ndarray, need: tuple[int, int]) -> None:
    """Raise unless `src` can determine a `model` transform.

    Parameters
    ----------
    model : str
        Transform family, for the messages.
    src : (N, D) ndarray
        Points to fit from.
    need : tuple of int
        Minimum number of points and minimum rank of the centred points.

    Raises
    ------
    ValueError
        If there are too few points, or they span too few directions.
    """
    min_points, min_rank = need
    if len(src) < min_points:
        raise ValueError(
            f"{article(model)} {model} fit needs at least {min_points} "
            f"matched points, got {len(src)}"
        )
    rank = point_rank(src)
    if rank < min_rank:
        shape = ("a single point", "collinear", "coplanar")[rank]
        raise ValueError(
            f"the matched points are {shape}: they do not determine "
            f"{article(model)} {model} transform in {src.shape[1]}-D"
        )
    if model == "projective" and not in_general_position(src):
        raise ValueError(
            "the matched points have no four with no three on a line (all "
            "but one lie on a line, or fewer than four differ): they do "
            "not determine a projective transform"
        )


def article(word: str) -> str:
    """'an' before a vowel ('an affine'), else 'a'."""
    return "an" if word[:1] in "aeiou" else "a"


def least_squares(model: str, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares `model` matrix from `src` to `dst`.

    Parameters
    ----------
    model : {'translation', 'rigid', 'similarity', 'affine', 'projective'}
        Transform family.
    src, dst : (N, D) ndarray
        Points and their matches.

    Returns
    -------
    (D+1, D+1) ndarray
        Homogeneous matrix mapping `src` onto `dst`.

    Raises
    ------
    ValueError
        If the estimator fails, or the matrix it gives is not invertible.
    """
    estimate = estimator(model).from_estimate(src, dst)
    # A failed estimate is falsy, and has no matrix.
    if not estimate or not np.all(np.isfinite(estimate.params)):
        raise ValueError(f"the {model} fit failed: {estimate}")
    matrix = estimate.params
    if np.linalg.cond(matrix) > 1 / np.finfo(float).eps:
        raise ValueError(f"the fitted {model} transform is singular")
    return matrix
