"""The checks of whole-pixel tracking: matches confirmed by refinement.

Sub-pixel tracking refines every whole-pixel match against the point's
reference (IC-GN, ``_refinement``) and keeps it only where the
refinement converges, near its start, to a score of at least
`min_score`: a peak on another feature, or one that noise moved, fails
that. Whole-pixel tracking (``subpixel=False``) refines nothing: a
relock after a lost or border vertex may land on another feature, and a
reference renewed at a noisy, rounded match carries its error into every
later vertex. :class:`Confirmation` runs the same check where a
whole-pixel match can be wrong, and only there, so that tracking which
goes well pays nothing for it.
"""

from __future__ import annotations

import numpy as np

from ..matching._result import Status
from ..matching._shape import Refined
from ._refinement import Refinement
from ._whole_pixel import Found

# A whole-pixel match is the pixel nearest to where the refinement puts
# the point (at most half a pixel along each axis), give or take this
# much of the refinement's own error.
_SLACK = 0.1


class Confirmation:
    """Whole-pixel matches confirmed by refinement, where they need it.

    A match needs confirming when it is a relock (the first after a lost
    or doubtful vertex: the peak nearest the old position may lie on
    another feature), when it scores below `refresh_score` (the
    template no longer matches well: noise, deformation, another
    feature), and where the reference is renewed (below `refresh_score`
    with 'adaptive', at every vertex with 'previous'): a renewed
    reference carries its error into every later vertex. IC-GN confirms
    a match when it converges from it to a score of at least
    `min_score`, at most half a pixel (plus _SLACK) from it along each
    axis (the match is the pixel nearest the point). It runs two ways:

    - forward, as sub-pixel tracking refines: the reference subset (the
      template, cut at the reference position) into the frame, from the
      match;
    - backward, matching back to the reference: the subset at the match
      into the reference frame, from the reference position.

    A relock must be confirmed both ways: on a smooth texture an affine
    warp fits many a patch seen from one side, seldom from both. Another
    match needs one way: IC-GN steers by the gradients of its reference
    subset, and where one image is noisy (a low-contrast frame, or a
    reference renewed in one) only the direction that takes them from
    the other converges. An unconfirmed match is ``uncertain`` (its
    score may be high, its place is not confirmed), as an unconverged
    refinement is in sub-pixel tracking. Both directions run
    with the affine shape function, on regions whose pixels without
    data are filled (see Refinement.refined_subsets).

    A confirmed match also says, to a fraction of a pixel, where the
    reference position went (:meth:`confirm`'s anchors): a reference
    renewed there, rather than at the rounded match, adds no rounding
    error to the vertices after it.
    """

    def __init__(self, refinement: Refinement):
        self.refinement = refinement
        self.options = refinement.options
        self.shape = refinement.affine

    def confirm(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        centres: np.ndarray,
        found: Found,
        relock: np.ndarray,
        t: int,
    ) -> tuple[Found, np.ndarray]:
        """Whole-pixel matches `found` in frame `t` of points `rows`,
        whose references lie in `frames` around `centres`, with those
        that need confirming and are not confirmed ``uncertain``; `relock` says
        which points follow a lost or doubtful vertex.

        Also returns the anchors: where each reference position went,
        the refined position where confirmed, else the match.
        """
        o = self.options
        anchors = found.position.copy()
        weak = ~(found.score >= o.refresh_score)
        # 'previous' renews the reference at every ok vertex.
        renewing = o.reference == "previous"
        check = np.flatnonzero(
            (found.status == Status.OK) & (relock | weak | renewing)
        )
        if check.size == 0:
            return found, anchors
        matches, here = found.position[check], np.full(check.size, t)
        forward, anchors[check] = self._forward(
            rows[check], frames[check], centres[check], here, matches
        )
        both = relock[check]
        # Back where a relock went forward, or another match did not.
        back = np.flatnonzero(both == forward)
        backward = np.zeros(check.size, dtype=bool)
        if back.size:
            which = check[back]
            backward[back], moved = self._backward(
                rows[which],
                here[back],
                matches[back],
                frames[which],
                centres[which],
            )
            anchors[which[~forward[back]]] = moved[~forward[back]]
        sure = np.where(both, forward & backward, forward | backward)
        failed = check[~sure]
        status = found.status.copy()
        status[failed] = Status.UNCERTAIN
        anchors[failed] = found.position[failed]
        return found._replace(status=status), anchors

    def _forward(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        centres: np.ndarray,
        targets: np.ndarray,
        matches: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Which references (in `frames` at `centres`) refine into
        `targets` from `matches` and are confirmed, and where the
        reference positions went."""
        refined = self.refinement.refined_subsets(
            rows, frames, centres, targets, self.shape.identity(matches)
        )
        return self._sure(refined, matches), refined.warps[:, :, 0]

    def _backward(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        matches: np.ndarray,
        targets: np.ndarray,
        centres: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Which subsets at `matches` (in `frames`) refine back into the
        reference frames `targets` from the reference positions `centres`
        and are confirmed; and where the reference positions lie in
        `frames`, by the inverses of the refined warps."""
        refined = self.refinement.refined_subsets(
            rows, frames, matches, targets, self.shape.identity(centres)
        )
        landed = refined.warps[:, :, 0]
        inverse = np.linalg.inv(self.shape.linear(refined.warps))
        # The subset's offset k lands at landed + A k: the reference
        # position is the offset A^-1 (centre - landed) from the match.
        offset = (inverse @ (centres - landed)[..., None])[..., 0]
        return self._sure(refined, centres), matches + offset

    def _sure(self, refined: Refined, starts: np.ndarray) -> np.ndarray:
        """Refinements that confirm their start: converged, scoring at
        least min_score, within half a pixel (and _SLACK) of the start
        along every axis."""
        apart = np.abs(refined.warps[:, :, 0] - starts).max(axis=1)
        return (
            refined.converged
            & (refined.score >= self.options.min_score)
            & (apart <= 0.5 + _SLACK)
        )
