"""The normalized median test: is an offset unlike its neighbours'?

Each point's offset is predicted from its nearest neighbours by a local
affine fit made robust by least median of squares, and its distance from
the prediction is compared with the same distance of its neighbours, each
predicted from its own neighbours (see normalized_median_residual).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

# A point is tested only against at least this many valid neighbours...
MIN_NEIGHBOURS = 3
# ... each within this many times the median neighbour spacing.
REACH = 4.0
# The least-median fit tries every minimal subset of the neighbours (the
# triangles of 8 neighbours in 2-D) or, where there are more, this many
# drawn once (of 26 neighbours in 3-D), enough that some are clean.
MAX_SUBSETS = 120
# A subset whose simplex is flatter than this (its volume times d!, in
# spacings) fixes no affine map.
MIN_VOLUME = 0.1
# The refit keeps the neighbours within this many robust standard
# deviations of the least-median fit.
INLIER = 2.5
# A least-squares fit of the neighbours that none is off by more than this
# many times epsilon holds no wrong offset worth resisting (and spares the
# least-median search), once at most TRIM of them, the farthest off, are
# left out.
CLEAN = 2.0
TRIM = 2
# Offsets are compared per batch of this many points, and the least-median
# search holds about this many numbers at once (memory).
CHUNK = 8192
BUDGET = 2_000_000


def normalized_median_residual(
    points: npt.ArrayLike,
    offsets: npt.ArrayLike,
    *,
    neighbours: int | None = None,
    epsilon: float = 0.1,
    valid: npt.ArrayLike | None = None,
    min_neighbours: int = MIN_NEIGHBOURS,
    reach: float = REACH,
    limit: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalized median residual of each point's offset [1]_.

    Westerweel and Scarano's test divides the distance of an offset from
    the median of its neighbours' offsets by the median distance of the
    neighbours' offsets from theirs (plus `epsilon`), per component. Here,
    for a point with offset ``u`` and the offsets ``u_i`` of its
    neighbours::

        r = |u - p|_w / (median_i |u_i - p_i|_w + epsilon)

    ``p`` is the offset the neighbours predict at the point: a local
    affine map of their offsets (least squares where it fits them all to
    within 2 `epsilon`, once up to two of them are left out; else the
    best of the fits through minimal subsets, judged by its median error
    over all neighbours, refitted on the neighbours it explains), so that
    a rotation, shear or vortex, whose neighbours differ by more than a
    wrong offset does, still shows the wrong one. Where fewer than
    ``2 (D + 1)`` neighbours are within reach, or they lie in a line,
    ``p`` is the median of their offsets as in [1]_. ``p_i`` is each
    neighbour's own prediction from its own neighbours, so both sides of
    the ratio are errors of predicting an offset from the others, alike
    where the field curves (the spread of the neighbours' offsets about
    the fit through them would vanish there).

    ``|.|_w`` is the length over the components, each weighted by the
    inverse of its typical error (the median over all points, plus
    `epsilon`; the weights' geometric mean is 1): a vortex turns the
    components into one another, so a point is compared as a vector,
    while a component predicted better everywhere (the rows of a
    rectified stereo pair) counts more. Along a component that the
    neighbours share to within `epsilon` (the median of their distances
    from their median), the point is also judged on that component alone
    (``|u - p| / (median_i |u_i - p_i| + epsilon)`` of that component),
    and ``r`` is the larger.

    Parameters
    ----------
    points : (N, D) array_like
        Positions of the points (e.g. row, col), in pixels.
    offsets : (N, C) array_like
        Displacement of each point, one column per component.
    neighbours : int, optional
        How many nearest valid points (other than the point itself) form
        its neighbourhood (default 8, the 3 x 3 neighbourhood of a
        regular grid, in 1-D and 2-D; 26 in 3-D).
    epsilon : float, optional
        Noise level of the offsets, in their units (0.1 pixel in [1]_);
        keeps the residual finite where the neighbours agree exactly.
    valid : (N,) array_like of bool, optional
        Points whose offsets may serve as neighbours (default: those with
        finite positions and offsets). Every point with a finite position
        is tested, valid or not, but only against valid ones.
    min_neighbours : int, optional
        Fewest neighbours a point needs to be tested.
    reach : float, optional
        Neighbours count only within ``reach`` times the median spacing
        (the median, over the valid points, of the distance from each to
        its nearest other valid point).
    limit : float, optional
        The residual above which a point is an outlier. Given, the points
        over half of it are judged again without the points over it as
        neighbours, and keep that residual: the members of a cluster of
        wrong offsets vouch for one another and spoil their neighbours'
        predictions, so the first judgement half hides them. (Judging
        every point again would also flag right offsets next to right
        ones flagged the first time, at depth edges.)

    Returns
    -------
    residual : (N,) ndarray of float
        Normalized median residual; NaN where `enough` is False or the
        point's own offset is not finite.
    enough : (N,) ndarray of bool
        True where the point has at least `min_neighbours` of its
        `neighbours` nearest valid points within the reach: a point
        without them is never judged (its residual is NaN, not large).

    References
    ----------
    .. [1] J. Westerweel and F. Scarano, "Universal outlier detection for
       PIV data", Experiments in Fluids 39(6), 1096-1100, 2005.
    """
    points = np.asarray(points, dtype=float)
    offsets = np.asarray(offsets, dtype=float)
    if points.ndim != 2 or offsets.ndim != 2:
        raise ValueError("points and offsets must be 2-D (N, D), (N, C).")
    n, d = points.shape
    if len(offsets) != n:
        raise ValueError(
            f"{n} points but {len(offsets)} offsets: one offset per point."
        )
    if neighbours is None:
        neighbours = 8 if d <= 2 else 3**d - 1
    if neighbours < 1 or min_neighbours < 1:
        raise ValueError("neighbours and min_neighbours must be >= 1.")
    placed = np.isfinite(points).all(axis=1)
    usable = placed & np.isfinite(offsets).all(axis=1)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != (n,):
            raise ValueError(f"valid must have shape ({n},).")
        usable &= valid
    options = (neighbours, epsilon, min_neighbours, reach)
    residual, enough = _residuals(points, offsets, usable, *options)
    if limit is None or not np.any(usable & (residual > limit)):
        return residual, enough
    # Judged again without the outliers: the suspects (over half the
    # limit), whom a cluster of outliers around them may have shielded.
    again, _ = _residuals(
        points, offsets, usable & ~(residual > limit), *options
    )
    suspect = residual > limit / 2
    return np.where(suspect, again, residual), enough


def _residuals(
    points: np.ndarray,
    offsets: np.ndarray,
    usable: np.ndarray,
    neighbours: int,
    epsilon: float,
    min_neighbours: int,
    reach: float,
) -> tuple[np.ndarray, np.ndarray]:
    """`normalized_median_residual` against the `usable` points."""
    n = len(points)
    placed = np.isfinite(points).all(axis=1)
    residual = np.full(n, np.nan)
    enough = np.zeros(n, dtype=bool)
    pool = np.flatnonzero(usable)
    if len(pool) < max(2, min_neighbours):
        return residual, enough
    tested = np.flatnonzero(placed)
    index, near, spacing = _neighbourhoods(
        points, pool, tested, neighbours, reach
    )
    enough[tested] = near.sum(axis=1) >= min_neighbours
    # Every tested point's error of prediction from its neighbours.
    error = np.full(offsets.shape, np.nan)
    for start in range(0, len(tested), CHUNK):
        rows = slice(start, start + CHUNK)
        here = tested[rows]
        relative = (points[index[rows]] - points[here, None]) / spacing
        predicted = _predict(
            relative, offsets[index[rows]], near[rows], epsilon
        )
        error[here] = offsets[here] - predicted
    judged = enough[tested]
    residual[tested[judged]] = _normalized(
        error,
        offsets,
        tested[judged],
        index[judged],
        near[judged],
        np.nanmedian(np.abs(error[pool]), axis=0),
        epsilon,
    )
    return residual, enough


def _normalized(
    error: np.ndarray,
    offsets: np.ndarray,
    chosen: np.ndarray,
    index: np.ndarray,
    near: np.ndarray,
    typical: np.ndarray,
    epsilon: float,
) -> np.ndarray:
    """The residual of each `chosen` point: its prediction `error` against
    its neighbours' (`index` where `near`), as vectors weighted by the
    components' `typical` errors over the plane, or, along a component
    the neighbours share to within `epsilon`, on its own."""
    scale = np.nan_to_num(typical, nan=0.0) + epsilon
    weight = np.exp(np.log(scale).mean()) / scale
    length = np.linalg.norm(error * weight, axis=1)
    around = np.nan_to_num(_median_where(length[index], near), nan=0.0)
    residual = length[chosen] / (around + epsilon)
    values = offsets[index]
    for c in range(offsets.shape[1]):
        centre = _median_where(values[..., c], near)
        spread = _median_where(np.abs(values[..., c] - centre[:, None]), near)
        quiet = spread <= epsilon
        own = np.abs(error[index, c])
        around = np.nan_to_num(_median_where(own, near), nan=0.0)
        alone = np.abs(error[chosen, c]) / (around + epsilon)
        residual = np.where(quiet, np.fmax(residual, alone), residual)
    return residual


def _neighbourhoods(
    points: np.ndarray,
    pool: np.ndarray,
    tested: np.ndarray,
    neighbours: int,
    reach: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The `neighbours` nearest pool points (other than itself) of each
    tested point: (M, k) indices into `points`, nearest first, with a mask
    of those within ``reach`` times the median spacing (the others fill
    the rows and are masked out), and the spacing."""
    tree = cKDTree(points[pool])
    # Median spacing: nearest other valid point (k=2 skips the point).
    spacing = float(np.median(tree.query(points[pool], k=2)[0][:, 1]))
    k = min(neighbours + 1, len(pool))
    distance, found = tree.query(points[tested], k=k)
    distance = distance.reshape(len(tested), k)
    index = pool[found.reshape(len(tested), k)]
    other = index != tested[:, None]
    rank = np.cumsum(other, axis=1)
    near = other & (rank <= neighbours) & (distance <= reach * spacing)
    # Neighbours first, nearest first (a stable sort keeps the order).
    width = min(neighbours, k)
    order = np.argsort(~near, axis=1, kind="stable")[:, :width]
    rows = np.arange(len(tested))[:, np.newaxis]
    return index[rows, order], near[rows, order], max(spacing, 1e-12)


def _predict(
    relative: np.ndarray,
    values: np.ndarray,
    near: np.ndarray,
    floor: float,
) -> np.ndarray:
    """The offset at each point (the origin of its `relative` positions,
    (m, k, D), in spacings) that its neighbours' `values` (m, k, C)
    predict: their least-squares affine fit where each lies within
    CLEAN times `floor` of it, once up to TRIM of them, each the farthest
    off, are left out (keeping 2 (D + 1)); else a least-median fit
    refitted on its inliers; the median of the values where fewer than
    2 (D + 1) neighbours are `near` or they span no affine map."""
    m, k, d = relative.shape
    design = np.concatenate([relative, np.ones((m, k, 1))], axis=2)
    design = np.where(near[..., np.newaxis], design, 0.0)
    values = np.where(near[..., np.newaxis], values, 0.0)
    least = 2 * (d + 1)
    roomy = near.sum(axis=1) >= least
    kept = near & roomy[:, np.newaxis]
    coefficients, fitted = _fit(design, values, kept)
    for trim in range(TRIM + 1):
        error = np.where(kept, _lengths(design, coefficients, values), 0.0)
        clean = fitted & (error.max(axis=1) <= CLEAN * floor)
        redo = roomy & ~clean & (kept.sum(axis=1) > least)
        if trim == TRIM or not redo.any():
            break
        # Without the neighbour farthest off the fit.
        kept[redo, error[redo].argmax(axis=1)] = False
        coefficients[redo], fitted[redo] = _fit(
            design[redo], values[redo], kept[redo]
        )
    rough = roomy & ~clean
    if rough.any():
        coefficients[rough], fitted[rough] = _least_median(
            design[rough], values[rough], near[rough], floor
        )
    median = np.stack(
        [_median_where(values[..., c], near) for c in range(values.shape[2])],
        axis=-1,
    )
    return np.where(fitted[:, np.newaxis], coefficients[:, -1], median)


def _least_median(
    design: np.ndarray, values: np.ndarray, near: np.ndarray, floor: float
) -> tuple[np.ndarray, np.ndarray]:
    """The affine fit through D + 1 neighbours with the least median
    error over all, refitted by least squares on the neighbours within
    INLIER robust deviations of it (at least `floor`): its coefficients
    and where one was found."""
    m, k, q = design.shape
    subsets = np.array(_subsets(k, q))
    best = np.full(m, np.inf)
    coefficients = np.zeros((m, q, values.shape[2]))
    step = max(1, BUDGET // (len(subsets) * k * values.shape[2]))
    for start in range(0, m, step):
        rows = slice(start, start + step)
        # (n, subsets, D + 1, ...): every subset of every row at once.
        inverse, volume = _inverse(design[rows][:, subsets])
        found = _product(inverse, values[rows][:, subsets])
        error = _lengths(design[rows][:, None], found, values[rows][:, None])
        misfit = _median_where(error, near[rows][:, None])
        fits = near[rows][:, subsets].all(axis=-1)
        misfit[~fits | (np.abs(volume) < MIN_VOLUME)] = np.inf
        # The first of equal misfits, as a loop over the subsets would.
        choice = np.argmin(misfit, axis=1)
        here = np.arange(len(choice))
        best[rows] = misfit[here, choice]
        coefficients[rows] = found[here, choice]
    fitted = np.isfinite(best)
    error = _lengths(design, coefficients, values)
    cut = np.maximum(INLIER * 1.4826 * np.where(fitted, best, 0.0), floor)
    inliers = fitted[:, None] & near & (error <= cut[:, np.newaxis])
    refit, solved = _fit(design, values, inliers)
    redo = solved & (inliers.sum(axis=1) >= q + 1)
    coefficients[redo] = refit[redo]
    return coefficients, fitted


def _fit(
    design: np.ndarray, values: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients (m, D + 1, C) of the `rows` (m, k) of
    each system, and where they span an affine map (the determinant of
    the normal matrix, the sum of the squared volumes of their subsets,
    at least MIN_VOLUME squared)."""
    weighted = design.transpose(0, 2, 1) * rows[:, np.newaxis]
    inverse, volume = _inverse(_product(weighted, design))
    solved = volume >= MIN_VOLUME**2
    coefficients = _product(inverse, _product(weighted, values))
    return np.where(solved[:, None, None], coefficients, 0.0), solved


def _lengths(
    design: np.ndarray, coefficients: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """Length of each neighbour's error from the fits: (..., k)."""
    error = _product(design, coefficients) - values
    return np.sqrt((error**2).sum(axis=-1))


def _product(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Stacked matrix products (..., a, q) @ (..., q, c), as q sums of
    products (faster than matmul for such small matrices)."""
    total = left[..., :, 0, None] * right[..., None, 0, :]
    for j in range(1, left.shape[-1]):
        total = total + left[..., :, j, None] * right[..., None, j, :]
    return total


def _inverse(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses and determinants of stacked small square matrices (...,
    q, q) (by their adjugates for 2 x 2 and 3 x 3, else LAPACK); the
    inverse of a singular matrix is returned as zeros."""
    q = matrices.shape[-1]
    if q == 2:
        (a, b), (c, d) = _entries(matrices)
        adjugate = _matrix([[d, -b], [-c, a]])
    elif q == 3:
        (a, b, c), (d, e, f), (g, h, i) = _entries(matrices)
        adjugate = _matrix(
            [
                [e * i - f * h, c * h - b * i, b * f - c * e],
                [f * g - d * i, a * i - c * g, c * d - a * f],
                [d * h - e * g, b * g - a * h, a * e - b * d],
            ]
        )
    else:
        volume = np.linalg.det(matrices)
        singular = (volume == 0)[..., None, None]
        inverse = np.linalg.inv(np.where(singular, np.eye(q), matrices))
        return np.where(singular, 0.0, inverse), volume
    volume = (matrices[..., 0, :] * adjugate[..., :, 0]).sum(axis=-1)
    singular = (volume == 0)[..., None, None]
    safe = np.where(volume == 0, 1.0, volume)[..., None, None]
    return np.where(singular, 0.0, adjugate / safe), volume


def _entries(matrices: np.ndarray) -> list[list[np.ndarray]]:
    q = matrices.shape[-1]
    return [[matrices[..., r, c] for c in range(q)] for r in range(q)]


def _matrix(entries: list[list[np.ndarray]]) -> np.ndarray:
    return np.stack([np.stack(row, axis=-1) for row in entries], axis=-2)


def _subsets(k: int, size: int) -> list[list[int]]:
    """Every `size`-subset of ``range(k)``, or MAX_SUBSETS of them drawn
    once (the same each call) where there are more."""
    if math.comb(k, size) <= MAX_SUBSETS:
        return [list(s) for s in itertools.combinations(range(k), size)]
    rng = np.random.default_rng(0)
    drawn: set[tuple[int, ...]] = set()
    while len(drawn) < MAX_SUBSETS:
        drawn.add(tuple(sorted(rng.choice(k, size, replace=False))))
    return [list(s) for s in sorted(drawn)]


def _median_where(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median along the last axis of the `values` (..., k) where `mask`
    holds (NaN values count as missing too); NaN where there are none."""
    mask = mask & ~np.isnan(values)
    ordered = np.sort(np.where(mask, values, np.inf), axis=-1)
    count = mask.sum(axis=-1, keepdims=True)
    low = np.take_along_axis(ordered, np.maximum(count - 1, 0) // 2, -1)
    high = np.take_along_axis(ordered, count // 2, -1)
    return np.where(count > 0, (low + high) / 2, np.nan)[..., 0]
