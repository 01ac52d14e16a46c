"""The normalized median test: is an offset unlike its neighbours'?"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

# A point is tested only against at least this many valid neighbours...
MIN_NEIGHBOURS = 3
# ... each within this many times the median neighbour spacing.
REACH = 4.0


def normalized_median_residual(
    points: npt.ArrayLike,
    offsets: npt.ArrayLike,
    *,
    neighbours: int = 8,
    epsilon: float = 0.1,
    valid: npt.ArrayLike | None = None,
    min_neighbours: int = MIN_NEIGHBOURS,
    reach: float = REACH,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalized median residual of each point's offset [1]_.

    For a point with offset ``u`` and the offsets ``u_nb`` of its
    neighbours, per component::

        r = |u - median(u_nb)| / (median(|u_nb - median(u_nb)|) + epsilon)

    and the residual of the point is the largest ``r`` over the
    components: a point is an outlier when any component is (the
    either-component rule of OpenPIV's ``local_norm_median_val``), so
    the usual threshold of 2 keeps the per-component meaning it was
    calibrated with in [1]_ (a root of the sum of squares, as PIVlab
    combines them, grows by up to sqrt(D) on noise alone).

    Parameters
    ----------
    points : (N, D) array_like
        Positions of the points (e.g. row, col), in pixels.
    offsets : (N, C) array_like
        Displacement of each point, one column per component.
    neighbours : int, optional
        How many nearest valid points (other than the point itself) form
        its neighbourhood (8: the 3 x 3 neighbourhood of a regular grid).
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
    n = len(points)
    if len(offsets) != n:
        raise ValueError(
            f"{n} points but {len(offsets)} offsets: one offset per point."
        )
    if neighbours < 1 or min_neighbours < 1:
        raise ValueError("neighbours and min_neighbours must be >= 1.")
    placed = np.isfinite(points).all(axis=1)
    usable = placed & np.isfinite(offsets).all(axis=1)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != (n,):
            raise ValueError(f"valid must have shape ({n},).")
        usable &= valid
    residual = np.full(n, np.nan)
    enough = np.zeros(n, dtype=bool)
    pool = np.flatnonzero(usable)
    if len(pool) < max(2, min_neighbours):
        return residual, enough
    tree = cKDTree(points[pool])
    # Median spacing: nearest other valid point (k=2 skips the point).
    spacing = float(np.median(tree.query(points[pool], k=2)[0][:, 1]))
    tested = np.flatnonzero(placed)
    k = min(neighbours + 1, len(pool))
    distance, found = tree.query(points[tested], k=k)
    distance = distance.reshape(len(tested), k)
    index = pool[found.reshape(len(tested), k)]
    other = index != tested[:, None]
    # The `neighbours` nearest others, then only those within reach.
    rank = np.cumsum(other, axis=1)
    near = other & (rank <= neighbours) & (distance <= reach * spacing)
    enough[tested] = near.sum(axis=1) >= min_neighbours
    rows = enough[tested]
    if not rows.any():
        return residual, enough
    chosen = tested[rows]
    # (M, k, C) neighbour offsets, NaN where not a neighbour.
    around = np.where(near[rows][:, :, None], offsets[index[rows]], np.nan)
    middle = np.nanmedian(around, axis=1)
    spread = np.nanmedian(np.abs(around - middle[:, None, :]), axis=1)
    per_component = np.abs(offsets[chosen] - middle) / (spread + epsilon)
    residual[chosen] = per_component.max(axis=1)
    return residual, enough
