"""The sub-pixel refinement along a track, and the reference subsets.

:class:`Refinement` refines a step's whole-pixel matches against each
point's reference subset with a shape function (IC-GN of
``matching._shape``). The regions of the frame it reads for that are
wide enough for a new reference subset too, which it cuts when a
point's reference is renewed. It also cuts the first references, and
says which warped subsets lie inside a frame.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..core._arrays import LazyArray
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
        self.stack, self.plane, self.options = stack, plane, options
        self.frame_shape = np.asarray(stack.shape[-len(options.radius) :])

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
        # together (the refinement's are those of its starting warp).
        failed = ok[~refined.converged]
        status[failed] = Status.LOW_SCORE
        position[failed] = found.position[failed]
        score[failed] = found.score[failed]
        warp[failed, :, 0] = found.position[failed]
        status[ok[~(score[ok] >= self.options.min_score)]] = Status.LOW_SCORE
        left = ok[~self.fits(position[ok], warp[ok])]
        status[left] = Status.OUTSIDE_IMAGE
        found = Found(position, score, score, status, warp, found.second)
        return found, sampled

    def _refined(
        self,
        reference: Reference,
        todo: np.ndarray,
        warp: np.ndarray,
        ok: np.ndarray,
        sampled: list[Sampled],
    ) -> Refined:
        """IC-GN of the step's points `ok` from `warp`, one call per box
        size of their regions; entries in the order of `ok`."""
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
                o.shape,
                o.radius,
            )
            refined.warps[where] = found.warps
            refined.score[where] = found.score
            refined.converged[where] = found.converged
        return refined

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
        o, n = self.options, len(rows)
        size = int(np.prod([2 * r + 1 for r in o.radius]))
        reference = Reference.empty(n, size, o.shape)
        keep = np.flatnonzero(usable)
        if not o.subpixel or keep.size == 0:
            reference.usable[keep] = True
            return reference
        for part in self._regions(rows[keep], frames[keep], warps[keep]):
            chosen = keep[part.rows]
            subsets = reference_subsets(
                part.regions,
                np.arange(chosen.size),
                warps[chosen],
                o.shape,
                o.radius,
            )
            reference.put(chosen, subsets)
        return reference

    def _regions(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        warps: np.ndarray,
    ) -> list[Sampled]:
        """Regions of points `rows` in `frames` around their `warps`, wide
        enough for refinement and for a new reference subset (with its
        gradient margin), one Regions per box size; their `rows` index
        the arguments.

        Each point's box fits its own warp, not the widest of the call:
        the spline coefficients depend (slightly) on the box, and a
        point's numbers must not depend on the other points.
        """
        wide = tuple(r + 2 for r in self.options.radius)
        extent = self.options.shape.extent(warps, wide)
        half = np.ceil(extent + MAX_TRAVEL + _TAPS).astype(np.int64)
        sizes, group = np.unique(half, axis=0, return_inverse=True)
        parts = []
        for k, size in enumerate(sizes):
            members = np.flatnonzero(group.ravel() == k)
            regions = Regions(
                self.stack,
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


def _warps(centres: np.ndarray, warps: np.ndarray) -> np.ndarray:
    """Copies of the rows of `warps` translated to `centres`."""
    moved = warps.copy()
    moved[:, :, 0] = centres
    return moved
