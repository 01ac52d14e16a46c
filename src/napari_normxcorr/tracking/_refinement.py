"""The sub-pixel refinement along a track, and the reference subsets.

:class:`Refinement` refines a step's whole-pixel matches against each
point's reference subset with a shape function (IC-GN of
``matching._shape``). The regions of the frame it reads for that are
wide enough for a new reference subset too, which it cuts when a
point's reference is renewed. It also cuts the first references, says
which warped subsets lie inside a frame, and refines the subsets that
confirm whole-pixel matches (``_confirmation``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..core._arrays import LazyArray, scaled
from ..matching._result import Status
from ..matching._shape import (
    FILTER_REACH,
    MAX_TRAVEL,
    Reference,
    Refined,
    Regions,
    reference_subsets,
    refine,
)
from ..matching._shape_functions import ShapeFunction
from ._track_inputs import Options
from ._whole_pixel import Found

# Farther than this apart (pixels), the constant-velocity prediction and
# the NCC peak disagree, and the refinement starts from the peak.
_PREDICTION_TRUST = 1.0
# Cubic B-spline taps reach 2 pixels beyond a sample; rounding 0.5 more.
_TAPS = 2.5


class Sampled(NamedTuple):
    """Regions of one box size read around the points `rows` (indices
    into a step's points, sorted) of a frame; region k is of rows[k]."""

    regions: Regions
    rows: np.ndarray


class Refinement:
    """Sub-pixel matches of tracked points, and their reference subsets.

    Parameters
    ----------
    stack : LazyArray
        The (T, ..., rows, cols) stack the points are tracked through.
    plane : numpy.ndarray
        (N, L) integer coordinates of each point between time and the
        matched axes.
    options : Options
        The checked keywords of the track: its shape function, template
        radius, minimum score and whether it is sub-pixel.
    """

    def __init__(self, stack: LazyArray, plane: np.ndarray, options: Options):
        # Only float64 can hold values whose squares overflow (1e200).
        if np.dtype(stack.dtype) == np.float64:
            stack = _InRange(stack)
        self.stack, self.plane, self.options = stack, plane, options
        self.frame_shape = np.asarray(stack.shape[-len(options.radius) :])
        # Pixels of a subset.
        self._size = int(np.prod([2 * r + 1 for r in options.radius]))
        self.filled = _Filled(stack)
        self.affine = ShapeFunction(len(options.radius), 1)

    def refine(
        self,
        reference: Reference,
        todo: np.ndarray,
        guess: np.ndarray,
        warps: np.ndarray,
        found: Found,
        t: int,
    ) -> tuple[Found, list[Sampled]]:
        """IC-GN in frame `t` from the coarse matches `found` of points
        `todo` that are ok, predicted at `guess` with the last `warps`;
        the regions read for them serve new references."""
        close = np.abs(guess - found.position).max(axis=1) < _PREDICTION_TRUST
        start = np.where(close[:, None], guess, found.position)
        warp = _warps(start, warps)
        ok = np.flatnonzero(found.status == Status.OK)
        sampled = [
            part._replace(rows=ok[part.rows])
            for part in self._regions(todo[ok], np.full(ok.size, t), warp[ok])
        ]
        refined = self._refined(reference, todo, warp, ok, sampled)
        position, score = found.position.copy(), found.score.copy()
        status = found.status.copy()
        position[ok] = refined.warps[:, :, 0]
        warp[ok] = refined.warps
        score[ok] = refined.score
        # Not converged: back to the coarse match, its position and score
        # together (the refinement's are those of its starting warp); its
        # score may be high, its position is known to a pixel only.
        failed = ok[~refined.converged]
        status[failed] = Status.UNCERTAIN
        position[failed] = found.position[failed]
        score[failed] = found.score[failed]
        warp[failed, :, 0] = found.position[failed]
        status[ok[~(score[ok] >= self.options.min_score)]] = Status.LOW_SCORE
        left = ok[~self.fits(position[ok], warp[ok])]
        status[left] = Status.OUTSIDE_IMAGE
        fitted = np.zeros(len(todo), dtype=bool)
        fitted[ok] = refined.converged
        found = Found(
            position, score, score, status, warp, found.second, fitted
        )
        return found, sampled

    def _refined(
        self,
        reference: Reference,
        todo: np.ndarray,
        warp: np.ndarray,
        ok: np.ndarray,
        sampled: list[Sampled],
        shape: ShapeFunction | None = None,
    ) -> Refined:
        """IC-GN of the step's points `ok` from `warp`, one call per box
        size of their regions; entries in the order of `ok`; with the
        track's shape function unless `shape` is given."""
        o = self.options
        refined = Refined(
            warp[ok].copy(), np.empty(ok.size), np.empty(ok.size, bool)
        )
        for part in sampled:
            where = np.searchsorted(ok, part.rows)
            found = refine(
                reference,
                todo[part.rows],
                part.regions,
                warp[part.rows],
                o.shape if shape is None else shape,
                o.radius,
            )
            refined.warps[where] = found.warps
            refined.score[where] = found.score
            refined.converged[where] = found.converged
        return refined

    def refined_subsets(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        centres: np.ndarray,
        targets: np.ndarray,
        starts: np.ndarray,
    ) -> Refined:
        """IC-GN with the affine shape function of subsets of points
        `rows`, cut in `frames` around `centres` (no deformation), into
        frames `targets` from the affine warps `starts`: the check of a
        whole-pixel match (see ``_confirmation``).

        The affine shape function whatever the track's: the check is of
        a position to a pixel, and on small noisy subsets the quadratic
        terms, poorly determined, keep IC-GN from converging where the
        position itself is clear.
        """
        shape = self.affine
        # The spline prefilter spreads a pixel without data over the
        # whole region: read filled, a hole beside the subset does not
        # stop the check (one inside it still lowers the score).
        reference = self._subsets(
            rows, frames, shape.identity(centres), shape, self.filled
        )
        sampled = self._regions(rows, targets, starts, shape, self.filled)
        every = np.arange(len(rows))
        return self._refined(reference, every, starts, every, sampled, shape)

    def renew(
        self,
        reference: Reference,
        todo: np.ndarray,
        renew: np.ndarray,
        found: Found,
        sampled: Sampled,
    ) -> np.ndarray:
        """Put new subsets into `reference` for the points `renew` of a
        step that `sampled` has regions of; return the points whose new
        subset is unusable."""
        picked = sampled.rows[renew[sampled.rows]]
        if picked.size == 0:
            return todo[picked]
        # Resampled through the current warp: the subset's offsets keep
        # meaning the pixels of the original subset.
        warps = _warps(found.position[picked], found.warp[picked])
        part = reference_subsets(
            sampled.regions,
            np.searchsorted(sampled.rows, picked),
            warps,
            self.options.shape,
            self.options.radius,
        )
        reference.put(todo[picked], part)
        return todo[picked][~part.usable]

    def references(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        warps: np.ndarray,
        usable: np.ndarray,
    ) -> Reference:
        """Reference subsets of `rows` in `frames` through `warps` (where
        `usable`)."""
        o = self.options
        reference = Reference.empty(len(rows), self._size, o.shape)
        keep = np.flatnonzero(usable)
        if not o.subpixel:
            # Whole pixels: the NCC template is the reference; subsets
            # are cut only to confirm a match (see refined_subsets).
            reference.usable[keep] = True
        elif keep.size:
            reference.put(
                keep, self._subsets(rows[keep], frames[keep], warps[keep])
            )
        return reference

    def _subsets(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        warps: np.ndarray,
        shape: ShapeFunction | None = None,
        stack: LazyArray | None = None,
    ) -> Reference:
        """Reference subsets of `rows` (some) in `frames` through `warps`
        (of the track's shape function unless `shape` is given), read
        from the stack (or `stack`)."""
        o = self.options
        shape = o.shape if shape is None else shape
        reference = Reference.empty(len(rows), self._size, shape)
        for part in self._regions(rows, frames, warps, shape, stack):
            subsets = reference_subsets(
                part.regions,
                np.arange(part.rows.size),
                warps[part.rows],
                shape,
                o.radius,
            )
            reference.put(part.rows, subsets)
        return reference

    def _regions(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        warps: np.ndarray,
        shape: ShapeFunction | None = None,
        stack: LazyArray | None = None,
    ) -> list[Sampled]:
        """Regions of points `rows` in `frames` around their `warps`, wide
        enough for refinement and for a new reference subset (with its
        gradient margin), one Regions per box size; their `rows` index
        the arguments. Read from the stack, or `stack`; warps of the
        track's shape function, or `shape`.

        Each point's box fits its own warp, not the widest of the call:
        the spline coefficients depend (slightly) on the box, and a
        point's numbers must not depend on the other points.
        """
        wide = tuple(r + 2 for r in self.options.radius)
        shape = self.options.shape if shape is None else shape
        extent = shape.extent(warps, wide)
        half = np.ceil(extent + MAX_TRAVEL + _TAPS).astype(np.int64)
        sizes, group = np.unique(half, axis=0, return_inverse=True)
        parts = []
        for k, size in enumerate(sizes):
            members = np.flatnonzero(group.ravel() == k)
            regions = Regions(
                self.stack if stack is None else stack,
                frames[members],
                self.plane[rows[members]],
                warps[members, :, 0],
                size + FILTER_REACH,
            )
            parts.append(Sampled(regions, members))
        return parts

    def fits(self, centres: np.ndarray, warps: np.ndarray) -> np.ndarray:
        """Which subsets, warped by `warps` around `centres`, lie inside
        the frame."""
        extent = self.options.shape.extent(warps, self.options.radius)
        low = centres - extent
        high = centres + extent
        return np.all((low >= 0) & (high <= self.frame_shape - 1), axis=1)


class _Reading:
    """A stack read through a change of each window read (subclasses say
    which), with the stack's shape and dtype."""

    def __init__(self, stack: LazyArray):
        self.stack = stack
        self.shape, self.ndim, self.dtype = (
            stack.shape,
            stack.ndim,
            stack.dtype,
        )


class _InRange(_Reading):
    """`stack` read with each window scaled by a power of two into the
    range where its squares neither overflow nor underflow (see
    `safe_scale`): IC-GN's normalised SSD and the NCC score do not
    change when a window is scaled."""

    def __getitem__(self, index: Any) -> np.ndarray:
        return scaled(np.asarray(self.stack[index]))


class _Filled(_Reading):
    """`stack` read with its pixels without data (NaN, inf) at the mean
    of the others read with them."""

    def __getitem__(self, index: Any) -> np.ndarray:
        values = np.asarray(self.stack[index], dtype=np.float64)
        finite = np.isfinite(values)
        if finite.all():
            return values
        fill = values[finite].mean() if finite.any() else 0.0
        return np.where(finite, values, fill)


def _warps(centres: np.ndarray, warps: np.ndarray) -> np.ndarray:
    """Copies of the rows of `warps` translated to `centres`."""
    moved = warps.copy()
    moved[:, :, 0] = centres
    return moved
