"""Sub-pixel refinement of read windows with a shape function.

A translation alone (``_subpixel``) cannot follow a template that rotates,
stretches or shears between the images: the residual pattern pulls the
shift off by tenths of a pixel while the peak still looks sharp. Here the
template of each window is matched to its search window with an affine
(or quadratic) warp of its pixels' offsets from its centre, by inverse
compositional Gauss-Newton (IC-GN) on the zero-mean normalised sum of
squared differences, as digital image correlation does [1]_ (see
``_shape`` for the tracker's version on whole frames).

Only pixels that hold data in both windows count (``_warp_data``), taken
anew at each of the first iterations, so that a mask or a NaN stripe
neither biases the fit nor stops it. What the fit says about its match,
its covariance with the misfit and its gradient, is ``_warp_precision``'s.

.. [1] B. Pan, K. Li and W. Tong, "Fast, robust and accurate digital image
   correlation calculation without redundant computations", Experimental
   Mechanics 53, 1277-1289, 2013.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._shape_functions import ShapeFunction
from ._warp_data import (
    MAX_TRAVEL,
    Crops,
    Problem,
    References,
    Residuals,
    inverse_hessians,
    residuals,
    taken,
)
from ._warp_precision import block_numbers, precision

# Templates narrower than this along an axis hold too few pixels to fit
# a linear part: they keep the translation-only refinement.
MIN_SIDE = 5
# Templates of more pixels are fitted on a regular sub-grid of about as
# many: resampling costs per pixel, and neighbouring pixels of a smooth
# image add little to the fit.
MAX_PIXELS = 2**12
_MAX_ITERATIONS = 30
# Iterations after which the pixels a fit uses may only be dropped.
_SETTLED = 4
# Converged when no pixel of the template moves more than this (pixels).
_TOLERANCE = 1e-5


@dataclass
class WarpFits:
    """Outcome of :func:`fit_warps`, one entry per window.

    `corner` is where the fit puts the point, minus its place in the
    template (so that, as for a translation, the point's match is the
    window's origin plus `corner`); `covariance` (d, d) px² is that of the
    point's match; `gradient` (d, d) is d u_i / d x_j at the point.
    """

    corner: np.ndarray
    score: np.ndarray
    covariance: np.ndarray
    gradient: np.ndarray
    converged: np.ndarray


def fit_warps(
    templates: np.ndarray,
    template_valid: Sequence[np.ndarray | None],
    searches: Sequence[np.ndarray],
    search_valid: Sequence[np.ndarray | None],
    corners: np.ndarray,
    pivots: np.ndarray,
    shape: ShapeFunction,
) -> WarpFits:
    """Fit a warp of each template into its search window.

    Parameters
    ----------
    templates : (n, m0, m1[, m2]) ndarray
        Templates of one shape.
    template_valid, search_valid : sequences of n bool arrays or None
        Where each template and search window holds data (None:
        everywhere).
    searches : sequence of n ndarrays
        Search windows of one shape.
    corners : (n, d) ndarray
        Where each template's first pixel starts in its search window
        (the NCC peak, sub-pixel).
    pivots : (n, d) ndarray
        The point's position in its template's pixels.
    shape : ShapeFunction
        The warp (order 1: affine, 2: quadratic).

    Returns
    -------
    WarpFits
        Where a fit did not converge within :data:`MAX_TRAVEL` of its
        start, `converged` is False, `covariance` is that at the start
        and the other entries are NaN (all NaN without the pixels for a
        fit).
    """
    n, d = corners.shape
    side = np.asarray(templates.shape[1:])
    # Gradients are unreliable on the template's outermost pixels; large
    # templates are sampled on a sparser grid (see MAX_PIXELS).
    stride = max(1, int(np.ceil((np.prod(side - 2) / MAX_PIXELS) ** (1 / d))))
    inner = tuple(slice(1, m - 1, stride) for m in side)
    axes = [np.arange(1, m - 1, stride, dtype=np.float64) for m in side]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    offsets = grid.reshape(-1, d) - (side - 1) / 2.0  # from the centre
    monomials = shape.values(offsets)
    reference = References.of(templates, template_valid, inner, monomials)
    crops = Crops.of(searches, search_valid, corners, side)
    # Each warp relative to where its centre starts (in crop pixels):
    # the lifted products stay small.
    start = corners - crops.low + (side - 1) / 2.0
    problem = Problem(
        reference,
        crops,
        start,
        monomials,
        block_numbers(offsets, side),
        shape,
    )
    out = WarpFits(
        np.full((n, d), np.nan),
        np.full(n, np.nan),
        np.full((n, d, d), np.nan),
        np.full((n, d, d), np.nan),
        np.zeros(n, dtype=bool),
    )
    lifted, kept, last = _iterate(problem, out.converged)
    won = np.flatnonzero(out.converged)
    if won.size:
        rows = shape.rows(lifted[won])
        centre = pivots[won] - (side - 1) / 2.0
        # The residuals of the last step: it moved no pixel by more than
        # the tolerance, so they are those at the fitted warp.
        at_fit = Residuals(*(values[won] for values in last))
        fitted = precision(problem, won, rows, centre, at_fit)
        out.score[won] = fitted.score
        out.covariance[won] = fitted.covariance
        out.gradient[won] = fitted.gradient
        out.corner[won] = (
            _at(shape, rows, centre)
            + start[won]
            + crops.low[won]
            - pivots[won]
        )
    # A fit that did not converge still says how well its start fits:
    # the covariance there (misfit included) stands for the fallback's.
    lost = np.flatnonzero(reference.usable & ~out.converged)
    if lost.size:
        rows = shape.identity(np.zeros((lost.size, d)))
        centre = pivots[lost] - (side - 1) / 2.0
        at_start = residuals(problem, lost, rows, kept[lost])
        start_fit = precision(problem, lost, rows, centre, at_start)
        out.covariance[lost] = start_fit.covariance
    return out


def _iterate(
    problem: Problem, converged: np.ndarray
) -> tuple[np.ndarray, np.ndarray, Residuals]:
    """IC-GN iterations of every usable fit from the identity warp.

    Marks in `converged` the fits that converged within MAX_TRAVEL;
    returns the lifted warps (n, S, S), the pixels each fit kept and the
    residuals of each converged fit's last step.
    """
    shape = problem.shape
    n, d = problem.start.shape
    reaches = np.abs(problem.monomials).max(axis=0)
    lifted = shape.lift(shape.identity(np.zeros((n, d))))
    todo = np.flatnonzero(problem.reference.usable)
    # Pixels each fit may still use: those with data at its warp so far.
    kept = problem.reference.valid.copy()
    last = Residuals(
        np.zeros(kept.shape), np.zeros(kept.shape), np.full(n, np.nan)
    )
    for iteration in range(_MAX_ITERATIONS):
        if todo.size == 0:
            break
        rows = shape.rows(lifted[todo])
        step, fit = _step(problem, todo, rows, kept[todo])
        weight = fit.weight
        if iteration >= _SETTLED:
            # From here the set only shrinks: pixels going in and out at
            # the rim of a hole would keep the fit from converging.
            kept[todo] = weight > 0
        update = shape.identity(np.zeros((todo.size, d)))
        update += step.reshape(update.shape)
        lifted[todo] = lifted[todo] @ np.linalg.inv(shape.lift(update))
        moved = np.abs(step.reshape(update.shape)) @ reaches
        travel = np.abs(shape.rows(lifted[todo])[:, :, 0]).max(axis=1)
        lost = (
            ~weight.any(axis=1)
            | ~np.isfinite(moved).all(axis=1)
            | (travel > MAX_TRAVEL)
        )
        done = ~lost & (moved.max(axis=1) < _TOLERANCE)
        converged[todo[done]] = True
        for values, now in zip(last, fit):
            values[todo[done]] = now[done]
        todo = todo[~(done | lost)]
    return lifted, kept, last


def _step(
    problem: Problem, todo: np.ndarray, rows: np.ndarray, kept: np.ndarray
) -> tuple[np.ndarray, Residuals]:
    """Gauss-Newton steps (k, P) of windows `todo` at warps `rows` on the
    pixels `kept` that hold data there, and their residuals there (the
    weights of the pixels used all 0 where too few, or a singular fit)."""
    residual, weight, score = residuals(problem, todo, rows, kept)
    steepest = taken(problem.reference.steepest, todo)
    # (k, P, M) @ (k, M, 1): a batched matrix product, BLAS's job.
    weighted = (weight * residual)[..., None]
    rhs = (steepest.transpose(0, 2, 1) @ weighted)[..., 0]
    inverse = inverse_hessians(problem.reference, todo, weight)
    used = np.isfinite(inverse).all(axis=(1, 2))
    step = np.zeros_like(rhs)
    step[used] = -(inverse[used] @ rhs[used, :, None])[..., 0]
    weight[~used] = 0.0
    return step, Residuals(residual, weight, score)


def _at(
    shape: ShapeFunction, rows: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """(k, d) positions the warps `rows` give the (k, d) `offsets`."""
    values = shape.values(offsets.reshape(-1, offsets.shape[-1]))
    return np.einsum("kds,ks->kd", rows, values)
