"""What a fitted warp says about its match: the covariance of the
point's position, the fit's misfit included, and the displacement
gradient (see ``_warp_fit``).

The residual of the fit, over the pixels used, gives the least-squares
covariance [1]_; the parts of the template that still disagree with the
warp give its misfit, which a residual spread over every pixel hides.

.. [1] W. Förstner, "On the geometric precision of digital correlation",
   International Archives of Photogrammetry 24(3), 176-189, 1982.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._shape_functions import ShapeFunction
from ._warp_data import Problem, Residuals, inverse_hessians, taken

# Blocks of a template whose own translation is this ill-determined (an
# edge, or too few pixels with data) say nothing about the misfit.
_MAX_BLOCK_CONDITION = 1e4
# Blocks per axis in which the misfit of a warp is looked for: the
# centre against the rim sees curvature, halves see two motions.
_BLOCKS = 3


class Precision(NamedTuple):
    """Score, covariance (k, d, d) px² and gradient (k, d, d) of fits."""

    score: np.ndarray
    covariance: np.ndarray
    gradient: np.ndarray


def precision(
    problem: Problem,
    fits: np.ndarray,
    rows: np.ndarray,
    centre: np.ndarray,
    fitted: Residuals,
) -> Precision:
    """Score, covariance and gradient of the `fits` at their warps
    `rows`, at the points `centre` (offsets from their templates'
    centres), from their residuals at those warps (see `residuals`)."""
    residual, weight, score = fitted
    inverse = inverse_hessians(problem.reference, fits, weight)
    params = inverse.shape[1]
    pixels = weight.sum(axis=1)
    # The least-squares variance of the residual per pixel: noise and
    # the model's misfit alike.
    variance = np.sum(weight * residual**2, axis=1) / np.maximum(
        pixels - params, 1.0
    )
    d, shape = rows.shape[1], problem.shape
    derivative = _design(shape, centre)  # (k, d, P): d x / d parameters
    parameters = variance[:, None, None] * inverse
    covariance = derivative @ parameters @ derivative.transpose(0, 2, 1)
    covariance += _misfit(problem, fits, weight, residual, variance)
    gradient = _jacobian(shape, rows, centre) - np.eye(d)
    return Precision(np.clip(score, -1, 1), covariance, gradient)


def _misfit(
    problem: Problem,
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
    shape, blocks = problem.shape, problem.blocks
    # The translation columns of the steepest descent images, axis first
    # (k, d, M): products along the contiguous pixels.
    steepest = taken(problem.reference.steepest, won)
    translation = steepest[:, :, :: shape.size].transpose(0, 2, 1)
    slopes = np.ascontiguousarray(translation) * weight[:, None]
    # Per block, by one product with the (M, blocks) membership matrix.
    members = (blocks[:, None] == np.arange(blocks.max() + 1)).astype(float)
    sums = ((slopes * residual[:, None]) @ members).transpose(0, 2, 1)
    pairs = slopes[:, :, None] * slopes[:, None]  # (k, d, d, M)
    normal = (pairs @ members).transpose(0, 3, 1, 2)  # (k, blocks, d, d)
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


def block_numbers(offsets: np.ndarray, side: np.ndarray) -> np.ndarray:
    """(M,) the block (of _BLOCKS per axis, numbered in C order) of each
    of (M, d) pixel `offsets` from the centre of a template of `side`."""
    cells = np.floor((offsets / side + 0.5) * _BLOCKS).astype(np.int64)
    cells = np.clip(cells, 0, _BLOCKS - 1)
    return np.ravel_multi_index(tuple(cells.T), (_BLOCKS,) * len(side))


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
