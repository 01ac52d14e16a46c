"""Sub-pixel refinement of many subsets at once with a shape function.

A translation-only refinement (``_subpixel``) cannot follow a subset that
rotates, stretches or shears: the residual pattern biases the shift. Here
each subset carries a shape function as in digital image correlation: an
affine (first-order) or quadratic (second-order) warp of the offsets k of
the subset's pixels (see ``_shape_functions``), and the target is matched to a
reference subset by inverse compositional Gauss-Newton (IC-GN) on the
zero-mean normalised sum of squared differences (ZNSSD), which ignores
gain and offset changes [1]_, [2]_. All subsets of a frame are refined
together: their regions are read side by side, prefiltered for cubic
B-spline interpolation in one call and resampled in one call.

.. [1] B. Pan, K. Li and W. Tong, "Fast, robust and accurate digital image
   correlation calculation without redundant computations", Experimental
   Mechanics 53, 1277-1289, 2013.
.. [2] S. Baker and I. Matthews, "Lucas-Kanade 20 Years On: A Unifying
   Framework", IJCV 56(3), 2004.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core._arrays import LazyArray
from ._shape_functions import ShapeFunction

# Beyond this distance from its start a subset has lost its way (pixels).
MAX_TRAVEL = 2.0
# The B-spline prefilter's reach fades by 0.27 per pixel: 12 pixels beyond
# what is resampled, a cropped region gives the same coefficients to 1e-7.
FILTER_REACH = 12
# Extra offsets around a reference subset for its 5-point gradients.
_GRADIENT_REACH = 2
_MAX_ITERATIONS = 20
# Converged when no pixel of the subset moves more than this (pixels).
_TOLERANCE = 1e-4
_MAX_CONDITION = 1e10
# Sampled coordinates are rounded to this (pixels), far below _TOLERANCE,
# so that they add exactly (see Regions.sample).
COORDINATE_STEP = 2.0**-24


def subset_offsets(radius: tuple[int, ...]) -> np.ndarray:
    """(M, D) integer offsets k of a subset of `radius`, in C order."""
    axes = [np.arange(-r, r + 1) for r in radius]
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=-1).astype(np.float64)


class Regions:
    """Regions of many points read from frames, ready to resample.

    Region k is a box of the same shape for every point, centred on the
    rounded `centres[k]` of frame ``frames[k]`` (plane ``planes[k]``);
    parts outside the frame are mirrored, so that the spline coefficients
    inside match those of the whole frame.

    A point's samples do not depend on the points read with it: sampling
    offsets each coordinate by its box's place in the stack of boxes,
    which rounds a coordinate's low bits differently at each place; on a
    multiple of COORDINATE_STEP the sum is exact (up to 2**29 pixels of
    stacked boxes), so a point's samples are those it gets alone, and a
    task of a cluster gets the local run's numbers.
    """

    def __init__(
        self,
        stack: LazyArray,
        frames: np.ndarray,
        planes: np.ndarray,
        centres: np.ndarray,
        half: np.ndarray,
    ):
        ndim = centres.shape[1]
        self.half = np.asarray(half, dtype=np.int64)
        self.start = np.rint(centres).astype(np.int64) - self.half
        shape = tuple(int(2 * h + 1) for h in self.half)
        self.shape = shape
        boxes = np.empty((len(centres), *shape), dtype=np.float64)
        frame_shape = np.asarray(stack.shape[-ndim:])
        for k, (frame, plane, start) in enumerate(
            zip(frames, planes, self.start)
        ):
            boxes[k] = _read_box(
                stack, (int(frame), *plane), start, shape, frame_shape
            )
        for axis in range(1, ndim + 1):
            ndimage.spline_filter1d(
                boxes, order=3, axis=axis, mode="mirror", output=boxes
            )
        # Boxes stacked along the first axis: one map_coordinates call
        # serves them all, and the margins keep the taps of one box out
        # of its neighbours.
        self._coefficients = boxes.reshape(-1, *shape[1:])

    def sample(self, rows: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """Values at `coords` (n, M, D), frame pixels, of regions `rows`."""
        # Scaling by a power of two and rounding are exact.
        steady = np.round(coords / COORDINATE_STEP) * COORDINATE_STEP
        local = steady - self.start[rows][:, None, :]
        local[..., 0] += (rows * self.shape[0])[:, None]
        flat = local.reshape(-1, local.shape[-1]).T
        values = ndimage.map_coordinates(
            self._coefficients, flat, order=3, prefilter=False, mode="nearest"
        )
        return values.reshape(coords.shape[:-1])


def _read_box(
    stack: LazyArray,
    plane: tuple[int, ...],
    start: np.ndarray,
    shape: tuple[int, ...],
    frame_shape: np.ndarray,
) -> np.ndarray:
    """One box of `shape` from `start`, mirrored where it leaves the frame."""
    stop = start + np.asarray(shape)
    low = np.clip(start, 0, frame_shape - 1)
    high = np.clip(stop, low + 1, frame_shape)
    slices = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    part = np.asarray(stack[(*plane, *slices)], dtype=np.float64)
    pad = [
        (int(a - s), int(t - b)) for s, a, b, t in zip(start, low, high, stop)
    ]
    # "reflect" is numpy's name for the spline filter's "mirror" boundary.
    return np.pad(part, pad, mode="reflect") if np.any(pad) else part


@dataclass
class Reference:
    """Reference subsets of many points, prepared for IC-GN.

    `centred` holds each subset's values minus their mean, `energy` the
    root of their sum of squares, `gradients` (N, M, D) their derivatives
    along the subset offsets, `inverse` the inverse Gauss-Newton Hessians
    (N, P, P) of the warp's parameters; `usable` is False for flat
    subsets and singular Hessians.
    """

    centred: np.ndarray
    energy: np.ndarray
    gradients: np.ndarray
    inverse: np.ndarray
    usable: np.ndarray

    @classmethod
    def empty(cls, count: int, size: int, shape: ShapeFunction) -> Reference:
        """`count` unusable references of `size` pixels."""
        params = shape.parameters
        return cls(
            np.zeros((count, size)),
            np.zeros(count),
            np.zeros((count, size, shape.ndim)),
            np.zeros((count, params, params)),
            np.zeros(count, dtype=bool),
        )

    def copy(self) -> Reference:
        """A copy whose arrays can be changed apart from this one's."""
        return Reference(*(getattr(self, name).copy() for name in _FIELDS))

    def put(self, rows: np.ndarray, part: Reference) -> None:
        """Overwrite references `rows` with those of `part`."""
        for name in _FIELDS:
            getattr(self, name)[rows] = getattr(part, name)


_FIELDS = ("centred", "energy", "gradients", "inverse", "usable")


def reference_subsets(
    regions: Regions,
    rows: np.ndarray,
    warps: np.ndarray,
    shape: ShapeFunction,
    radius: tuple[int, ...],
) -> Reference:
    """Reference subsets resampled through `warps` from `regions`.

    Parameters
    ----------
    regions : Regions
        Regions covering the warped subsets (and 2 pixels more).
    rows : (n,) ndarray of int
        Which region each subset is read from.
    warps : (n, D, S) ndarray
        Rows of the warps from subset offsets to frame pixels, see
        :class:`ShapeFunction`.
    shape : ShapeFunction
        The warps' shape function.
    radius : tuple of int
        Subset radius per axis.

    Returns
    -------
    Reference
        Subsets of ``2 * radius + 1`` pixels per axis.
    """
    ndim = len(radius)
    wide = tuple(r + _GRADIENT_REACH for r in radius)
    coords = _warped(warps, shape.values(subset_offsets(wide)))
    values = regions.sample(rows, coords).reshape(len(rows), *_sides(wide))
    inner = (slice(None),) + tuple(
        slice(_GRADIENT_REACH, -_GRADIENT_REACH) for _ in radius
    )
    subset = values[inner].reshape(len(rows), -1)
    gradients = np.stack(
        [_gradient(values, axis + 1)[inner] for axis in range(ndim)], axis=-1
    ).reshape(len(rows), -1, ndim)
    centred = subset - subset.mean(axis=1, keepdims=True)
    energy = np.sqrt(np.sum(centred**2, axis=1))
    monomials = shape.values(subset_offsets(radius))
    steepest = (gradients[..., :, None] * monomials[None, :, None, :]).reshape(
        len(rows), monomials.shape[0], -1
    )
    # Batched matrix products run on BLAS; einsum would not.
    hessian = steepest.transpose(0, 2, 1) @ steepest
    usable = energy > 0
    usable[usable] = np.linalg.cond(hessian[usable]) < _MAX_CONDITION
    inverse = np.zeros_like(hessian)
    if usable.any():
        inverse[usable] = np.linalg.inv(hessian[usable])
    return Reference(centred, energy, gradients, inverse, usable)


def _sides(radius: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(2 * r + 1 for r in radius)


def _gradient(values: np.ndarray, axis: int) -> np.ndarray:
    """Fourth-order central differences along `axis` (edges left 0)."""
    out = np.zeros_like(values)

    def shifted(k: int) -> np.ndarray:
        index = [slice(None)] * values.ndim
        index[axis] = slice(2 + k, values.shape[axis] - 2 + k)
        return values[tuple(index)]

    inside = [slice(None)] * values.ndim
    inside[axis] = slice(2, -2)
    out[tuple(inside)] = (
        shifted(-2) - 8 * shifted(-1) + 8 * shifted(1) - shifted(2)
    ) / 12
    return out


def _warped(warps: np.ndarray, monomials: np.ndarray) -> np.ndarray:
    """(n, M, D) frame pixels of subset offsets (their (M, S) `monomials`)
    through the rows (n, D, S) of `warps`."""
    return monomials @ warps.transpose(0, 2, 1)


@dataclass
class Refined:
    """Outcome of :func:`refine`, one entry per subset."""

    warps: np.ndarray  # (n, D, S) rows: subset offsets -> frame pixels
    score: np.ndarray  # ZNCC at the warp (the start where not converged)
    converged: np.ndarray


def refine(
    reference: Reference,
    references: np.ndarray,
    regions: Regions,
    warps: np.ndarray,
    shape: ShapeFunction,
    radius: tuple[int, ...],
) -> Refined:
    """Refine `warps` of reference subsets into `regions` (IC-GN, ZNSSD).

    Parameters
    ----------
    reference : Reference
        Prepared reference subsets.
    references : (n,) ndarray of int
        Which reference subset each warp refines; warp k searches region k.
    regions : Regions
        Target regions, one per warp, covering each warped subset with
        :data:`MAX_TRAVEL` and :data:`FILTER_REACH` to spare.
    warps : (n, D, S) ndarray
        Rows of the starting warps, from subset offsets to target pixels.
    shape : ShapeFunction
        The warps' shape function.
    radius : tuple of int
        Subset radius per axis.

    Returns
    -------
    Refined
        Converged warps, their ZNCC, and which converged within
        :data:`MAX_TRAVEL` pixels of their start (the others keep their
        start, scored there; NaN for unusable references).
    """
    monomials = shape.values(subset_offsets(radius))
    reaches = np.abs(monomials).max(axis=0)
    count = len(warps)
    # Relative to where each starts: the lifted products stay small.
    start = warps[:, :, 0].copy()
    relative = warps.copy()
    relative[:, :, 0] = 0.0
    lifted = shape.lift(relative)
    score = np.full(count, np.nan)
    at_start = np.full(count, np.nan)
    converged = np.zeros(count, dtype=bool)
    todo = np.flatnonzero(reference.usable[references])
    for iteration in range(_MAX_ITERATIONS):
        if todo.size == 0:
            break
        rows = references[todo]
        coords = _warped(shape.rows(lifted[todo]), monomials)
        target = regions.sample(todo, coords + start[todo, None, :])
        centred = target - target.mean(axis=1, keepdims=True)
        energy = np.sqrt(np.sum(centred**2, axis=1))
        alive = energy > 0
        gain = np.divide(
            reference.energy[rows],
            energy,
            out=np.zeros_like(energy),
            where=alive,
        )
        residual = reference.centred[rows] - gain[:, None] * centred
        step = _step(reference, rows, residual, monomials)
        update = shape.identity(np.zeros((todo.size, shape.ndim)))
        update += step.reshape(update.shape)
        lifted[todo] = lifted[todo] @ np.linalg.inv(shape.lift(update))
        score[todo] = np.sum(reference.centred[rows] * centred, axis=1) / (
            np.where(alive, reference.energy[rows] * energy, np.inf)
        )
        if iteration == 0:
            at_start[todo] = score[todo]
        moved = np.abs(step.reshape(update.shape)) @ reaches
        travel = np.abs(lifted[todo, 1 : 1 + shape.ndim, 0]).max(axis=1)
        lost = ~alive | ~np.isfinite(moved).all(axis=1) | (travel > MAX_TRAVEL)
        done = ~lost & (moved.max(axis=1) < _TOLERANCE)
        converged[todo[done]] = True
        todo = todo[~(done | lost)]
    result = shape.rows(lifted).copy()
    result[:, :, 0] += start
    failed = ~converged
    result[failed] = warps[failed]
    score[failed] = at_start[failed]
    return Refined(result, np.clip(score, -1, 1), converged)


def _step(
    reference: Reference,
    rows: np.ndarray,
    residual: np.ndarray,
    monomials: np.ndarray,
) -> np.ndarray:
    """Gauss-Newton steps (n, P) from the residuals of the subsets."""
    weighted = reference.gradients[rows] * residual[..., None]
    rhs = (weighted.transpose(0, 2, 1) @ monomials).reshape(len(rows), -1)
    return -(reference.inverse[rows] @ rhs[..., None])[..., 0]
