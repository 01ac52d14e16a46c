"""Sub-pixel refinement of read windows with a shape function.

A translation alone (``_subpixel``) cannot follow a template that rotates,
stretches or shears between the images: the residual pattern pulls the
shift off by tenths of a pixel while the peak still looks sharp. Here the
template of each window is matched to its search window with an affine
(or quadratic) warp of its pixels' offsets from its centre, by inverse
compositional Gauss-Newton (IC-GN) on the zero-mean normalised sum of
squared differences, as digital image correlation does [1]_ (see
``_shape`` for the tracker's version on whole frames).

Only pixels that hold data in both windows count: the template's valid
pixels (whose gradients are valid too) whose warped positions fall where
every spline tap of the search window holds data. The set is taken anew
at every iteration, so a mask or a NaN stripe neither biases the fit nor
stops it.

The fit also says how well the model holds: its residual, over the
pixels used, gives the least-squares covariance of the position ([2]_,
the misfit of the model included), and its linear part gives the
displacement gradient.

.. [1] B. Pan, K. Li and W. Tong, "Fast, robust and accurate digital image
   correlation calculation without redundant computations", Experimental
   Mechanics 53, 1277-1289, 2013.
.. [2] W. Förstner, "On the geometric precision of digital correlation",
   International Archives of Photogrammetry 24(3), 176-189, 1982.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ._shape_functions import ShapeFunction

# Beyond this distance from its start the template's centre has lost
# its way (pixels).
MAX_TRAVEL = 2.0
# Templates narrower than this along an axis hold too few pixels to fit
# a linear part: they keep the translation-only refinement.
MIN_SIDE = 5
# Templates of more pixels are fitted on a regular sub-grid of about as
# many: resampling costs per pixel, and neighbouring pixels of a smooth
# image add little to the fit.
MAX_PIXELS = 2**12
# How far (pixels) the search crop reaches past the translated template:
# travel, the warp's own reach (a 0.1 px/px gradient at the corners of a
# template of radius 20) and the spline prefilter's reach (its
# coefficients 12 pixels into a crop equal the whole window's to 1e-7).
_TRAVEL_REACH = 3
_FILTER_REACH = 12
# Cubic B-spline samples read 2 pixels either way.
_TAPS = 2
_MAX_ITERATIONS = 30
# Iterations after which the pixels a fit uses may only be dropped.
_SETTLED = 4
# Converged when no pixel of the template moves more than this (pixels).
_TOLERANCE = 1e-5
_MAX_CONDITION = 1e10
# Blocks of a template whose own translation is this ill-determined (an
# edge, or too few pixels with data) say nothing about the misfit.
_MAX_BLOCK_CONDITION = 1e4
# Blocks per axis in which the misfit of a warp is looked for: the
# centre against the rim sees curvature, halves see two motions.
_BLOCKS = 3


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
    reference = _References.of(templates, template_valid, inner, monomials)
    crops = _Crops.of(searches, search_valid, corners, side)
    # Each warp relative to where its centre starts (in crop pixels):
    # the lifted products stay small.
    start = corners - crops.low + (side - 1) / 2.0
    problem = _Problem(
        reference,
        crops,
        start,
        monomials,
        _block_numbers(offsets, side),
        shape,
    )
    out = WarpFits(
        np.full((n, d), np.nan),
        np.full(n, np.nan),
        np.full((n, d, d), np.nan),
        np.full((n, d, d), np.nan),
        np.zeros(n, dtype=bool),
    )
    lifted, kept = _iterate(problem, out.converged)
    won = np.flatnonzero(out.converged)
    if won.size:
        rows = shape.rows(lifted[won])
        centre = pivots[won] - (side - 1) / 2.0
        _finish(problem, out, won, rows, centre, kept)
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
        unfit = WarpFits(*(np.copy(v) for v in vars(out).values()))
        _finish(problem, unfit, lost, rows, centre, kept)
        out.covariance[lost] = unfit.covariance[lost]
    return out


def _iterate(
    problem: _Problem, converged: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """IC-GN iterations of every usable fit from the identity warp.

    Marks in `converged` the fits that converged within MAX_TRAVEL;
    returns the lifted warps (n, S, S) and the pixels each fit kept.
    """
    shape = problem.shape
    n, d = problem.start.shape
    reaches = np.abs(problem.monomials).max(axis=0)
    lifted = shape.lift(shape.identity(np.zeros((n, d))))
    todo = np.flatnonzero(problem.reference.usable)
    # Pixels each fit may still use: those with data at its warp so far.
    kept = problem.reference.valid.copy()
    for iteration in range(_MAX_ITERATIONS):
        if todo.size == 0:
            break
        rows = shape.rows(lifted[todo])
        step, weight = _step(problem, todo, rows, kept[todo])
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
        todo = todo[~(done | lost)]
    return lifted, kept


@dataclass
class _Problem:
    """What every step of the fits of one stack of windows reads."""

    reference: _References
    crops: _Crops
    start: np.ndarray  # (n, d) each template centre's start, crop pixels
    monomials: np.ndarray  # (M, S) of the pixels' offsets
    blocks: np.ndarray  # (M,) the block of each pixel (see _misfit)
    shape: ShapeFunction


@dataclass
class _References:
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
    ) -> _References:
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
        # np.gradient gives one array, not a list of one, along one axis.
        slopes = np.gradient(filled, axis=tuple(range(1, d + 1)))
        along: list[np.ndarray] = [slopes] if d == 1 else list(slopes)
        index = (slice(None), *inner)
        gradients = np.stack([g[index].reshape(n, -1) for g in along], axis=-1)
        steepest = (
            gradients[..., :, None] * monomials[None, :, None]
        ).reshape(n, monomials.shape[0], -1)
        values = filled[index].reshape(n, -1)
        used = valid[index].reshape(n, -1)
        whole = np.all(used, axis=1)
        params = steepest.shape[2]
        inverse = np.zeros((n, params, params))
        usable = np.sum(used, axis=1) > 2 * params
        rows = np.flatnonzero(whole & usable)
        if rows.size:
            hessian = steepest[rows].transpose(0, 2, 1) @ steepest[rows]
            good = np.linalg.cond(hessian) < _MAX_CONDITION
            inverse[rows[good]] = np.linalg.inv(hessian[good])
            usable[rows[~good]] = False
        return cls(values, used, steepest, inverse, whole, usable)


@dataclass
class _Crops:
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
    ) -> _Crops:
        n, d = corners.shape
        reach = int(np.ceil(MAX_TRAVEL)) + _TRAVEL_REACH + _TAPS
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
                bad, size=(1,) + (2 * _TAPS + 1,) * d, mode="nearest"
            )
        for axis in range(1, d + 1):
            ndimage.spline_filter1d(
                boxes, order=3, axis=axis, mode="mirror", output=boxes
            )
        stacked = boxes.reshape(-1, *size[1:])
        return cls(low, size, stacked, unreliable, holes)

    def sample(
        self, rows: np.ndarray, coords: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Values at `coords` (k, M, d) (crop pixels) of crops `rows`, and
        whether each sample is reliable."""
        local = coords.copy()
        local[..., 0] += (rows * self.shape[0])[:, None]
        flat = local.reshape(-1, local.shape[-1]).T
        values = ndimage.map_coordinates(
            self.coefficients, flat, order=3, prefilter=False, mode="nearest"
        ).reshape(coords.shape[:-1])
        # Inside the crop, and off every hole.
        high = np.asarray(self.shape) - 1 - _TAPS
        reliable = np.all((coords >= _TAPS) & (coords <= high), axis=-1)
        holed = np.flatnonzero(self.holes[rows])
        if self.unreliable is not None and holed.size:
            upper = np.asarray(self.shape) - 1
            nearest = np.clip(np.rint(coords[holed]), 0, upper).astype(np.intp)
            index = (rows[holed][:, None], *np.moveaxis(nearest, -1, 0))
            reliable[holed] &= ~self.unreliable[index]
        return values, reliable


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


def _step(
    problem: _Problem, todo: np.ndarray, rows: np.ndarray, kept: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Newton steps (k, P) of windows `todo` at warps `rows` on the
    pixels `kept` that hold data there, and the weights of the pixels
    used (all 0 where too few, or a singular fit)."""
    residual, weight, _ = _residuals(problem, todo, rows, kept)
    steepest = problem.reference.steepest[todo]
    rhs = np.einsum("kmp,km->kp", steepest, weight * residual)
    inverse = _inverse_hessians(problem.reference, todo, weight)
    used = np.isfinite(inverse).all(axis=(1, 2))
    step = np.zeros_like(rhs)
    step[used] = -(inverse[used] @ rhs[used, :, None])[..., 0]
    weight[~used] = 0.0
    return step, weight


def _residuals(
    problem: _Problem, todo: np.ndarray, rows: np.ndarray, kept: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ZNSSD residuals (k, M) of windows `todo` at warps `rows`, the
    weights of their pixels (1 where `kept` and the target hold data)
    and their ZNCC."""
    start = problem.start[todo, None, :]
    coords = problem.monomials @ rows.transpose(0, 2, 1) + start
    target, reliable = problem.crops.sample(todo, coords)
    weight = (kept & reliable).astype(np.float64)
    count = np.maximum(weight.sum(axis=1, keepdims=True), 1.0)
    values = problem.reference.values[todo]
    ref = (values - (weight * values).sum(1, keepdims=True) / count) * weight
    tgt = (target - (weight * target).sum(1, keepdims=True) / count) * weight
    ref_energy = np.sqrt(np.sum(ref**2, axis=1))
    tgt_energy = np.sqrt(np.sum(tgt**2, axis=1))
    gain = np.divide(
        ref_energy,
        tgt_energy,
        out=np.zeros_like(tgt_energy),
        where=tgt_energy > 0,
    )
    residual = ref - gain[:, None] * tgt
    denominator = ref_energy * tgt_energy
    score = np.divide(
        np.sum(ref * tgt, axis=1),
        denominator,
        out=np.full_like(denominator, np.nan),
        where=denominator > 0,
    )
    return residual, weight, score


def _inverse_hessians(
    reference: _References, todo: np.ndarray, weight: np.ndarray
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


def _finish(
    problem: _Problem,
    out: WarpFits,
    won: np.ndarray,
    rows: np.ndarray,
    centre: np.ndarray,
    kept: np.ndarray,
) -> None:
    """Score, covariance and gradient of the fits `won` at their warps
    `rows`, at the points `centre` (offsets from their templates'
    centres), on the pixels `kept`."""
    residual, weight, score = _residuals(problem, won, rows, kept[won])
    inverse = _inverse_hessians(problem.reference, won, weight)
    params = inverse.shape[1]
    pixels = weight.sum(axis=1)
    # The least-squares variance of the residual per pixel: noise and
    # the model's misfit alike.
    variance = np.sum(weight * residual**2, axis=1) / np.maximum(
        pixels - params, 1.0
    )
    out.score[won] = np.clip(score, -1, 1)
    d, shape = rows.shape[1], problem.shape
    derivative = _design(shape, centre)  # (k, d, P): d x / d parameters
    parameters = variance[:, None, None] * inverse
    out.covariance[won] = (
        derivative @ parameters @ derivative.transpose(0, 2, 1)
    ) + _misfit(problem, won, weight, residual, variance)
    out.gradient[won] = _jacobian(shape, rows, centre) - np.eye(d)


def _misfit(
    problem: _Problem,
    won: np.ndarray,
    weight: np.ndarray,
    residual: np.ndarray,
    variance: np.ndarray,
) -> np.ndarray:
    """(k, d, d) px²: how far the parts of each template still disagree
    with the fitted warp, beyond what the residual noise explains.

    Each block of the template (3 per axis) gets the translation that
    would best fit its own residual; where the warp fits, these are
    noise, of covariance ``variance * inverse(H_b)``. Their mean square
    beyond that noise is the misfit: a curved field under an affine
    warp, or two motions in one window, bias the match by about as
    much, and the residual alone, spread over every pixel, hides it.
    """
    k, shape, blocks = len(won), problem.shape, problem.blocks
    d = shape.ndim
    # The translation columns of the steepest descent images.
    steepest = problem.reference.steepest[won]
    slopes = steepest[:, :, :: shape.size] * weight[..., None]
    count = blocks.max() + 1
    sums = np.zeros((k, count, d))
    normal = np.zeros((k, count, d, d))
    for block in range(count):
        inside = blocks == block
        g = slopes[:, inside]
        sums[:, block] = np.einsum("kmd,km->kd", g, residual[:, inside])
        normal[:, block] = g.transpose(0, 2, 1) @ g
    usable = np.linalg.cond(normal) < _MAX_BLOCK_CONDITION
    inverse = np.zeros_like(normal)
    inverse[usable] = np.linalg.inv(normal[usable])
    shifts = (inverse @ sums[..., None])[..., 0]
    excess = shifts[..., :, None] * shifts[..., None, :] - (
        variance[:, None, None, None] * inverse
    )
    used = np.maximum(usable.sum(axis=1), 1)[:, None, None]
    mean = np.sum(excess * usable[..., None, None], axis=1) / used
    # Only the excess over the noise counts: the mean's part that is
    # positive.
    values, vectors = np.linalg.eigh(mean)
    values = np.maximum(values, 0.0)
    return (vectors * values[:, None, :]) @ vectors.transpose(0, 2, 1)


def _block_numbers(offsets: np.ndarray, side: np.ndarray) -> np.ndarray:
    """(M,) the block (of _BLOCKS per axis, numbered in C order) of each
    of (M, d) pixel `offsets` from the centre of a template of `side`."""
    cells = np.floor((offsets / side + 0.5) * _BLOCKS).astype(np.int64)
    cells = np.clip(cells, 0, _BLOCKS - 1)
    return np.ravel_multi_index(tuple(cells.T), (_BLOCKS,) * len(side))


def _at(
    shape: ShapeFunction, rows: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """(k, d) positions the warps `rows` give the (k, d) `offsets`."""
    values = shape.values(offsets.reshape(-1, offsets.shape[-1]))
    return np.einsum("kds,ks->kd", rows, values)


def _design(shape: ShapeFunction, offsets: np.ndarray) -> np.ndarray:
    """(k, d, P): how the position of each offset moves with each
    parameter (the parameters of axis a are a's row of the warp)."""
    k, d = offsets.shape
    values = shape.values(offsets)
    design = np.zeros((k, d, d * shape.size))
    for axis in range(d):
        design[:, axis, axis * shape.size : (axis + 1) * shape.size] = values
    return design


def _jacobian(
    shape: ShapeFunction, rows: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """(k, d, d) derivatives of the warped positions of `offsets` with
    respect to the offsets."""
    powers = np.asarray(shape.exponents, dtype=np.float64)  # (S, d)
    k, d = offsets.shape
    out = np.zeros((k, d, d))
    for axis in range(d):
        lowered = powers.copy()
        lowered[:, axis] -= 1
        factor = powers[:, axis]
        safe = np.where(lowered < 0, 0, lowered)
        values = factor * np.prod(
            offsets[:, None, :] ** safe[None], axis=-1
        )  # (k, S)
        out[:, :, axis] = np.einsum("kds,ks->kd", rows, values)
    return out
