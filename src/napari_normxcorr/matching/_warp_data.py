"""What a warp fit reads: templates prepared for IC-GN, crops of the
target around each start as spline coefficients, and the residuals of a
template against its crop through a warp (see ``_warp_fit``).

Only pixels that hold data in both windows count: the template's valid
pixels (whose gradients are valid too) whose warped positions fall where
every spline tap of the crop holds data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ..core._compiled import compiled
from ._shape import COORDINATE_STEP
from ._shape_functions import ShapeFunction

# Beyond this distance from its start the template's centre has lost
# its way (pixels).
MAX_TRAVEL = 2.0
# How far (pixels) the search crop reaches past the translated template:
# travel, the warp's own reach (a 0.1 px/px gradient at the corners of a
# template of radius 20) and the spline prefilter's reach (its
# coefficients 12 pixels into a crop equal the whole window's to 1e-7).
_TRAVEL_REACH = 3
_FILTER_REACH = 12
# Cubic B-spline samples read 2 pixels either way.
TAPS = 2
_MAX_CONDITION = 1e10


@dataclass
class Problem:
    """What every step of the fits of one stack of windows reads."""

    reference: References
    crops: Crops
    start: np.ndarray  # (n, d) each template centre's start, crop pixels
    monomials: np.ndarray  # (M, S) of the pixels' offsets
    blocks: np.ndarray  # (M,) the block of each pixel (see _misfit)
    shape: ShapeFunction


@dataclass
class References:
    """Templates prepared for IC-GN: values, validity, steepest descent
    images (n, M, P) and, for templates without holes, the inverse
    Hessians (computed once)."""

    values: np.ndarray  # (n, M)
    valid: np.ndarray  # (n, M) bool: data, and gradients, here
    steepest: np.ndarray  # (n, M, P)
    inverse: np.ndarray  # (n, P, P), for `whole` rows
    whole: np.ndarray  # (n,) no pixel without data
    usable: np.ndarray  # (n,)

    @classmethod
    def of(
        cls,
        templates: np.ndarray,
        template_valid: Sequence[np.ndarray | None],
        inner: tuple[slice, ...],
        monomials: np.ndarray,
    ) -> References:
        n, d = len(templates), templates.ndim - 1
        filled = templates.astype(np.float64, copy=True)
        valid = np.ones(templates.shape, dtype=bool)
        for k, mask in enumerate(template_valid):
            if mask is not None and not mask.all():
                filled[k][~mask] = filled[k][mask].mean() if mask.any() else 0
                # A gradient reads the neighbours along each axis.
                valid[k] = ndimage.binary_erosion(
                    mask, ndimage.generate_binary_structure(d, 1)
                )
        index = (slice(None), *inner)
        gradients = np.stack(
            [
                _central_differences(filled, inner, axis).reshape(n, -1)
                for axis in range(d)
            ],
            axis=-1,
        )
        steepest = _steepest(gradients, monomials)
        values = filled[index].reshape(n, -1)
        used = valid[index].reshape(n, -1)
        whole = np.all(used, axis=1)
        params = steepest.shape[2]
        inverse = np.zeros((n, params, params))
        usable = np.sum(used, axis=1) > 2 * params
        rows = np.flatnonzero(whole & usable)
        if rows.size:
            used_steepest = taken(steepest, rows)
            hessian = used_steepest.transpose(0, 2, 1) @ used_steepest
            good = np.linalg.cond(hessian) < _MAX_CONDITION
            inverse[rows[good]] = np.linalg.inv(hessian[good])
            usable[rows[~good]] = False
        return cls(values, used, steepest, inverse, whole, usable)


def taken(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows]``, without the copy when `rows` are all of them in
    order (the usual case: the steepest descent images are large)."""
    if len(rows) == len(values) and np.array_equal(
        rows, np.arange(len(values))
    ):
        return values
    return values[rows]


def _steepest(gradients: np.ndarray, monomials: np.ndarray) -> np.ndarray:
    """Steepest descent images (n, M, d * S): each gradient (n, M, d)
    times each monomial (M, S), axis by axis (one broadcast over the small
    trailing axes is several times slower)."""
    n, count, d = gradients.shape
    size = monomials.shape[1]
    steepest = np.empty((n, count, d * size))
    for axis in range(d):
        for k in range(size):
            np.multiply(
                gradients[:, :, axis],
                monomials[:, k],
                out=steepest[:, :, axis * size + k],
            )
    return steepest


def _central_differences(
    values: np.ndarray, inner: tuple[slice, ...], axis: int
) -> np.ndarray:
    """np.gradient of a stack of templates along matched `axis`, at the
    pixels `inner` only (none on an edge): (f[i + 1] - f[i - 1]) / 2."""

    def moved(by: int) -> tuple[slice, ...]:
        return (slice(None),) + tuple(
            slice(s.start + by, s.stop + by, s.step) if a == axis else s
            for a, s in enumerate(inner)
        )

    return (values[moved(1)] - values[moved(-1)]) / 2.0


@dataclass
class Crops:
    """The search windows around each template's start, as B-spline
    coefficients stacked along the first axis (one resampling call for
    all), and where a sample would read a pixel without data."""

    low: np.ndarray  # (n, d) crop start in its search window
    shape: tuple[int, ...]
    coefficients: np.ndarray
    unreliable: np.ndarray | None  # like coefficients, bool
    holes: np.ndarray  # (n,) whether the crop has any

    @classmethod
    def of(
        cls,
        searches: Sequence[np.ndarray],
        search_valid: Sequence[np.ndarray | None],
        corners: np.ndarray,
        side: np.ndarray,
    ) -> Crops:
        n, d = corners.shape
        reach = int(np.ceil(MAX_TRAVEL)) + _TRAVEL_REACH + TAPS
        low = np.floor(corners).astype(np.int64) - reach - _FILTER_REACH
        size = tuple(int(s) for s in side + 2 * (reach + _FILTER_REACH) + 1)
        boxes = np.empty((n, *size))
        bad = np.zeros((n, *size), dtype=bool)
        for k in range(n):
            boxes[k], bad[k] = _crop(
                searches[k], search_valid[k], low[k], size
            )
        holes = np.any(bad.reshape(n, -1), axis=1)
        unreliable = None
        if holes.any():
            # Every tap of a sample must hold data.
            unreliable = ndimage.maximum_filter(
                bad, size=(1,) + (2 * TAPS + 1,) * d, mode="nearest"
            )
        _spline_coefficients(boxes)
        stacked = boxes.reshape(-1, *size[1:])
        return cls(low, size, stacked, unreliable, holes)

    def sample(
        self, rows: np.ndarray, coords: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Values (k, M) at `coords` (d, k, M) (crop pixels, axis first)
        of crops `rows`, and whether each sample is reliable."""
        # On a multiple of COORDINATE_STEP the offset of a crop's place
        # in the stack adds exactly: a window's samples, and so its fit,
        # do not depend on the windows fitted with it (as on a cluster).
        local = np.multiply(coords, 1.0 / COORDINATE_STEP)
        np.round(local, out=local)
        local *= COORDINATE_STEP
        local[0] += (rows * self.shape[0])[:, None]
        values = ndimage.map_coordinates(
            self.coefficients,
            local.reshape(len(local), -1),
            order=3,
            prefilter=False,
            mode="nearest",
        ).reshape(coords.shape[1:])
        # Inside the crop, and off every hole.
        reliable = np.ones(coords.shape[1:], dtype=bool)
        for along, length in zip(coords, self.shape):
            reliable &= along >= TAPS
            reliable &= along <= length - 1 - TAPS
        holed = np.flatnonzero(self.holes[rows])
        if self.unreliable is not None and holed.size:
            nearest = [
                np.clip(np.rint(along[holed]), 0, length - 1).astype(np.intp)
                for along, length in zip(coords, self.shape)
            ]
            index = (rows[holed][:, None], *nearest)
            reliable[holed] &= ~self.unreliable[index]
        return values, reliable


def _spline_coefficients(boxes: np.ndarray) -> None:
    """Cubic B-spline coefficients of a stack of boxes (n, *size), in
    place: compiled for 2-D boxes when numba is here."""
    kernels = compiled(f"{__package__}._warp_kernels")
    if kernels is not None and boxes.ndim == 3:
        kernels.spline_coefficients(boxes)
        return
    for axis in range(1, boxes.ndim):
        ndimage.spline_filter1d(
            boxes, order=3, axis=axis, mode="mirror", output=boxes
        )


def _crop(
    search: np.ndarray,
    valid: np.ndarray | None,
    low: np.ndarray,
    size: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """A box of `size` from `low` in `search`, with the pixels without
    data (and those beyond the window) filled with the mean of the rest,
    and where they are."""
    stop = low + np.asarray(size)
    shape = np.asarray(search.shape)
    a = np.clip(low, 0, shape)
    b = np.clip(stop, 0, shape)
    box = np.zeros(size)
    bad = np.ones(size, dtype=bool)
    inside = tuple(slice(int(x - s), int(y - s)) for x, y, s in zip(a, b, low))
    window = tuple(slice(int(x), int(y)) for x, y in zip(a, b))
    box[inside] = search[window]
    bad[inside] = False if valid is None else ~valid[window]
    good = ~bad
    if good.any() and bad.any():
        # Nearest data in the holes: the spline prefilter then rings less.
        nearest = ndimage.distance_transform_edt(
            bad, return_distances=False, return_indices=True
        )
        box = box[tuple(nearest)]
    elif bad.all():
        box[:] = 0.0
    return box, bad


class Residuals(NamedTuple):
    """How templates fit their targets at some warps: the ZNSSD residuals
    (k, M), the weights of their pixels (1 where used) and the ZNCC (k,)."""

    residual: np.ndarray
    weight: np.ndarray
    score: np.ndarray


def residuals(
    problem: Problem, todo: np.ndarray, rows: np.ndarray, kept: np.ndarray
) -> Residuals:
    """ZNSSD residuals (k, M) of windows `todo` at warps `rows`, the
    weights of their pixels (1 where `kept` and the target hold data)
    and their ZNCC: compiled for 2-D windows when numba is here."""
    kernels = compiled(f"{__package__}._warp_kernels")
    if kernels is not None and rows.shape[1] == 2:
        return _compiled_residuals(kernels, problem, todo, rows, kept)
    # Axis first: each axis' coordinates are one contiguous block.
    coords = np.einsum("kds,ms->dkm", rows, problem.monomials)
    coords += problem.start[todo].T[:, :, None]
    target, reliable = problem.crops.sample(todo, coords)
    weight = (kept & reliable).astype(np.float64)
    count = np.maximum(weight.sum(axis=1, keepdims=True), 1.0)
    values = problem.reference.values[todo]
    ref = (values - _dots(weight, values)[:, None] / count) * weight
    tgt = (target - _dots(weight, target)[:, None] / count) * weight
    ref_energy = np.sqrt(_dots(ref, ref))
    tgt_energy = np.sqrt(_dots(tgt, tgt))
    gain = np.divide(
        ref_energy,
        tgt_energy,
        out=np.zeros_like(tgt_energy),
        where=tgt_energy > 0,
    )
    residual = ref - gain[:, None] * tgt
    denominator = ref_energy * tgt_energy
    score = np.divide(
        _dots(ref, tgt),
        denominator,
        out=np.full_like(denominator, np.nan),
        where=denominator > 0,
    )
    return Residuals(residual, weight, score)


def _compiled_residuals(
    kernels: ModuleType,
    problem: Problem,
    todo: np.ndarray,
    rows: np.ndarray,
    kept: np.ndarray,
) -> Residuals:
    """`residuals` by the compiled kernel."""
    crops = problem.crops
    k, count = len(todo), len(problem.monomials)
    unreliable = crops.unreliable
    if unreliable is None:
        unreliable = np.zeros((0, 0, 0), dtype=bool)
    out = Residuals(np.empty((k, count)), np.empty((k, count)), np.empty(k))
    kernels.warp_residuals(
        crops.coefficients,
        np.array(crops.shape, dtype=np.int64),
        todo.astype(np.int64),
        np.ascontiguousarray(rows, dtype=np.float64),
        np.ascontiguousarray(problem.monomials, dtype=np.float64),
        np.ascontiguousarray(problem.start, dtype=np.float64),
        np.ascontiguousarray(kept),
        np.ascontiguousarray(problem.reference.values[todo]),
        crops.holes,
        unreliable,
        COORDINATE_STEP,
        *out,
    )
    return out


def _dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two (k, M) arrays, in one pass."""
    return np.einsum("km,km->k", a, b)


def inverse_hessians(
    reference: References, todo: np.ndarray, weight: np.ndarray
) -> np.ndarray:
    """Inverse Hessians (k, P, P) over the pixels weighted in; NaN where
    too few pixels or singular."""
    inverse = reference.inverse[todo].copy()
    params = inverse.shape[1]
    whole = reference.whole[todo] & (weight.min(axis=1) > 0)
    again = np.flatnonzero(~whole)
    if again.size:
        steepest = reference.steepest[todo[again]]
        weighted = steepest * weight[again, :, None]
        hessian = weighted.transpose(0, 2, 1) @ steepest
        good = (weight[again].sum(axis=1) > 2 * params) & (
            np.linalg.cond(hessian) < _MAX_CONDITION
        )
        inverse[again] = np.nan
        if good.any():
            inverse[again[good]] = np.linalg.inv(hessian[good])
    return inverse
