"""Strain, rotation and expansion from displacement gradients.

A displacement gradient ``g[i, j] = d u_i / d x_j`` (the axes in the
images' order: rows, cols or z, rows, cols) is what match_points,
track_points and match_field give per point; the measures of deformation
follow from it and from nothing else.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

STRAIN_KINDS = ("green-lagrange", "small", "engineering")
# Where a point's displacement gradient comes from, as DIC codes offer:
# its subset's own shape function, or a strain window over its neighbours.
GRADIENT_SOURCES = ("window", "subset")


def gradient_source(method: str) -> str:
    """`method` if it names a GRADIENT_SOURCES entry, else a ValueError."""
    if method not in GRADIENT_SOURCES:
        raise ValueError(
            f"method must be 'window' or 'subset', got {method!r}."
        )
    return method


def strain(
    gradient: npt.ArrayLike, kind: str = "green-lagrange"
) -> np.ndarray:
    """Strain tensors from displacement gradients.

    Parameters
    ----------
    gradient : (..., D, D) array_like
        Displacement gradients ``d u_i / d x_j`` (any leading shape, e.g.
        ``MatchResult.gradient`` (N, D, D), ``TrackResult.gradient``
        (N, T, D, D) or ``FieldResult.gradient`` (R, C, D, D)); NaN
        entries give NaN strains.
    kind : {'green-lagrange', 'small', 'engineering'}, optional
        - ``'green-lagrange'``: ``E = (F'F - I) / 2`` with
          ``F = I + gradient``, exact for any rotation and stretch (what
          DIC codes report by default).
        - ``'small'``: the infinitesimal strain ``(g + g') / 2``, which
          rotations of more than a few 1e-3 rad pollute.
        - ``'engineering'``: the small strain with shears doubled
          (``gamma_ij = 2 eps_ij`` off the diagonal).

    Returns
    -------
    (..., D, D) ndarray of float64
        Symmetric, dimensionless (length per length).

    Examples
    --------
    A 2 % stretch along the columns:

    >>> g = [[0.0, 0.0], [0.0, 0.02]]
    >>> strain(g).round(4).tolist()
    [[0.0, 0.0], [0.0, 0.0202]]
    >>> strain(g, "small").round(4).tolist()
    [[0.0, 0.0], [0.0, 0.02]]
    """
    g = _gradient(gradient)
    if kind not in STRAIN_KINDS:
        raise ValueError(
            f"kind must be one of {', '.join(STRAIN_KINDS)}, got {kind!r}."
        )
    transposed = np.swapaxes(g, -1, -2)
    small = 0.5 * (g + transposed)
    if kind == "small":
        return small
    if kind == "engineering":
        d = g.shape[-1]
        return small * (2.0 - np.eye(d))
    return small + 0.5 * transposed @ g


def principal_strains(tensor: npt.ArrayLike) -> np.ndarray:
    """Principal values of symmetric (..., D, D) strain tensors, largest
    first: (..., D); NaN where a tensor has a NaN entry."""
    s = _gradient(tensor, name="tensor")
    finite = np.isfinite(s).all(axis=(-1, -2))
    values = np.full(s.shape[:-1], np.nan)
    values[finite] = np.linalg.eigvalsh(s[finite])[..., ::-1]
    return values


def vorticity(gradient: npt.ArrayLike) -> np.ndarray:
    """Rotation rate of the displacement: the curl of the field.

    In 2-D, a scalar per point, positive counter-clockwise as the image is
    shown (rows down, columns right): ``d u_col / d row - d u_row / d col``,
    twice the small rotation angle in radians. In 3-D (z, rows, cols), the
    curl vector (..., 3) in the same axis order, each component
    ``d u_k / d x_j - d u_j / d x_k`` for the axes (j, k) that follow the
    component's axis cyclically.
    """
    g = _gradient(gradient)
    d = g.shape[-1]
    if d == 2:
        return g[..., 1, 0] - g[..., 0, 1]
    if d == 3:
        return np.stack(
            [
                g[..., (a + 2) % 3, (a + 1) % 3]
                - g[..., (a + 1) % 3, (a + 2) % 3]
                for a in range(3)
            ],
            axis=-1,
        )
    raise ValueError(f"vorticity needs 2-D or 3-D gradients, got {d}-D.")


def divergence(gradient: npt.ArrayLike) -> np.ndarray:
    """Trace of each displacement gradient: the relative change of area
    (volume) to first order; (...)."""
    return np.trace(_gradient(gradient), axis1=-2, axis2=-1)


def _gradient(values: npt.ArrayLike, name: str = "gradient") -> np.ndarray:
    g = np.asarray(values, dtype=np.float64)
    if g.ndim < 2 or g.shape[-1] != g.shape[-2] or g.shape[-1] == 0:
        raise ValueError(
            f"{name} must end in two equal axes (..., D, D), got shape "
            f"{g.shape}."
        )
    return g


def window_gradients(
    points: np.ndarray,
    displacements: np.ndarray,
    valid: np.ndarray,
    radius: float | None = None,
) -> np.ndarray:
    """Displacement gradients by a strain window: at each point, the linear
    part of the affine map fitted by least squares to the displacements of
    the valid points within `radius` of it (itself included).

    Parameters
    ----------
    points : (N, D) ndarray
        Where the displacements were measured (reference positions).
    displacements : (N, ..., D) ndarray
        One displacement per point and per entry of the middle axes (e.g.
        frames).
    valid : (N, ...) ndarray of bool
        Which displacements may be used.
    radius : float, optional
        Reach of the window; default 1.5 times the median distance of a
        point to its nearest neighbour (the 3 x 3 neighbourhood of a
        regular grid).

    Returns
    -------
    (N, ..., D, D) ndarray
        NaN where fewer than ``D + 2`` valid points are in reach of a
        valid point, or they span less than D dimensions, and at invalid
        points.
    """
    _, gradients = local_affine_fits(points, displacements, valid, radius)
    return gradients


def local_affine_fits(
    points: np.ndarray,
    values: np.ndarray,
    valid: np.ndarray,
    radius: float | None = None,
    *,
    at_valid_only: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The affine map fitted by least squares to the valid `values` (N,
    ..., C) of the points within `radius` of each point (see
    `window_gradients`): its value at the point (N, ..., C) and its
    gradient (N, ..., C, D); NaN where it is not determined, and, with
    `at_valid_only`, at invalid points (else they are predicted from
    their valid neighbours)."""
    from scipy.spatial import cKDTree

    n, d = points.shape
    middle, c = values.shape[1:-1], values.shape[-1]
    value = np.full((n, *middle, c), np.nan)
    gradient = np.full((n, *middle, c, d), np.nan)
    if n < d + 2:
        return value, gradient
    tree = cKDTree(points)
    if radius is None:
        nearest, _ = tree.query(points, k=2)
        radius = 1.5 * float(np.median(nearest[:, 1]))
    k = min(n, 3**d + 2 * d)
    distance, index = tree.query(points, k=k, distance_upper_bound=radius)
    reach = np.isfinite(distance)
    index = np.where(reach, index, 0)
    # Design rows [1, x - p] of each point's neighbours: (N, k, 1 + D).
    offsets = points[index] - points[:, None, :]
    design = np.concatenate([np.ones((n, k, 1)), offsets], axis=-1)
    usable = valid.reshape(n, -1)
    flat = np.where(usable[..., None], values.reshape(n, -1, c), 0.0)
    weight = usable[index] & reach[..., None]  # (N, k, M)
    if at_valid_only:
        weight &= usable[:, None, :]
    w = weight.astype(np.float64)
    normal = np.einsum("nka,nkm,nkb->nmab", design, w, design)
    right = np.einsum("nka,nkm,nkmc->nmac", design, w, flat[index])
    with np.errstate(divide="ignore", invalid="ignore"):
        conditioned = np.linalg.cond(normal) < 1e8
    solvable = (w.sum(axis=1) >= d + 2) & conditioned
    fitted_value = np.full((n, flat.shape[1], c), np.nan)
    fitted_gradient = np.full((n, flat.shape[1], c, d), np.nan)
    if solvable.any():
        fitted = np.linalg.solve(normal[solvable], right[solvable])
        # fitted[a, c]: row a of [1, x] onto component c: row 0 the value
        # at the point, row 1 + j the derivative d v_c / d x_j.
        fitted_value[solvable] = fitted[:, 0, :]
        fitted_gradient[solvable] = np.swapaxes(fitted[:, 1:, :], -1, -2)
    return (
        fitted_value.reshape(value.shape),
        fitted_gradient.reshape(gradient.shape),
    )
