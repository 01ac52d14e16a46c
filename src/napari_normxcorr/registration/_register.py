"""register: a transform between two images, refined through its matches.

A rough starting transform (given, fitted to a few clicks, or a shift
from phase correlation) guides the matching of the points; the matches
give a better transform, which guides the next matching, until the
transform stops moving.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core._arrays import Image, LazyArray, as_image
from ..core._validate import number, point_array, positive_int
from ..matching._guided import apply_matrix, transform_matrix
from ..matching._match import (
    SEARCH_RADIUS,
    TEMPLATE_RADIUS,
    match_points,
    matched_axes,
)
from ..matching._result import MatchResult, Status
from ._estimators import article, point_rank
from ._models import MODELS, TooFewMatches, requirements
from ._transform import TransformFit, checked_threshold, fit_transform

__all__ = ["register"]


def register(
    template_image: Image,
    image: Image,
    points: npt.ArrayLike,
    *,
    model: str = "affine",
    transform: TransformFit | npt.ArrayLike | None = None,
    image_points: npt.ArrayLike | None = None,
    robust: bool = True,
    threshold: float | None = None,
    max_iterations: int = 10,
    tolerance: float = 0.01,
    **match_options: Any,
) -> TransformFit:
    """Fit a transform between two images by matching points through it.

    Parameters
    ----------
    template_image : (..., M0, M1[, M2]) array_like
        Image the points are on (numpy, dask, zarr...).
    image : (..., M0', M1'[, M2']) array_like
        Target image, same number of axes.
    points : (N, D) array_like
        Points to match, in `template_image` pixels (row, col, ...), one
        column per image axis; spread them over the overlap of the images.
    model : {'translation', 'rigid', 'similarity', 'affine', 'projective'}
        Transform family of the result; in 3-D only translation, rigid
        and affine.
    transform : TransformFit or (d+1, d+1) array_like, optional
        Starting transform from template pixels to target pixels in the d
        matched axes: a fit saved earlier (:meth:`TransformFit.from_json`),
        one fitted to a few pairs clicked by hand, or a matrix.
    image_points : (N, D) array_like, optional
        Rough positions of some of the points in `image` (clicks, a few
        pixels off will do); NaN rows for the points without one. Used
        when `transform` is not given.
    robust : bool, optional
        Fit each transform robustly (RANSAC and refit), see
        :func:`fit_transform`.
    threshold : float, optional
        Inlier threshold in pixels for the fits; by default from the data.
    max_iterations : int, optional
        At most this many rounds of matching and fitting.
    tolerance : float, optional
        Stop once a round moves no corner of the points' bounding box by
        more than this many pixels.
    **match_options
        Passed on to :func:`match_points` (``template_radius``,
        ``search_radius``, ``min_score``...). The search radius must cover
        the error of the starting transform.

    Returns
    -------
    TransformFit
        The last fit; its ``matches`` hold the matches it was fitted to,
        flagged by it (``transform_residual``, ``transform_inlier``, status
        ``transform outlier``).

    Raises
    ------
    ValueError
        For points of the wrong shape, too few (or collinear) points for
        `model`, images with different numbers of axes, no-data masks
        (guided matching takes none), a bad `max_iterations`, `tolerance`
        or `threshold`, a starting transform of the wrong shape, no usable
        `image_points`, or when a round leaves too few good matches to fit.

    Warns
    -----
    RuntimeWarning
        When the transform still moves after `max_iterations` rounds.

    Notes
    -----
    The starting transform is `transform` if given; else the fit of the
    points with finite `image_points` onto them (least squares, no
    outlier rejection): `model` if those clicks determine it, else the
    most general of the simpler models they do determine (affine ->
    similarity -> rigid -> translation: three clicks fit an affine, two a
    similarity, one a shift); else the shift that phase correlation of
    the whole images finds [1]_. That reads both images whole, needs
    images without leading (plane) axes, and fails under large rotation
    or scale (beyond a few degrees or percent): then click a few points.

    Each round matches the points with :func:`match_points` guided by the
    current transform M (templates resampled through M, so that
    rotation, scale and shear no longer hurt the correlation) and fits
    `model` to the ``ok`` matches with :func:`fit_transform`, which
    becomes the next M. Rounds stop when M moves no corner of the
    points' bounding box by more than `tolerance` pixels.

    References
    ----------
    .. [1] Guizar-Sicairos, Thurman and Fienup, "Efficient subpixel image
       registration algorithms", Optics Letters 33, 2008.
    """
    template_image, image = _checked_images(template_image, image)
    points = point_array("points", points, template_image.ndim)
    _check_options(match_options)
    d = matched_axes(
        match_options.get("template_radius", TEMPLATE_RADIUS),
        match_options.get("search_radius", SEARCH_RADIUS),
        template_image.ndim,
    )
    _check_points(points[:, -d:], model)
    max_iterations = positive_int("max_iterations", max_iterations)
    if not number("tolerance", tolerance) > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
    # Checked now: a bad one would otherwise fail only after a round.
    threshold = checked_threshold(threshold)
    if transform is not None:
        matrix = transform_matrix(transform, d)
    elif image_points is not None:
        matrix = _fit_clicks(points, image_points, model, d)
    else:
        matrix = _phase_shift(template_image, image, d)
    corners = _box_corners(points[:, -d:])
    for rounds in range(1, max_iterations + 1):
        result = match_points(
            template_image, image, points, transform=matrix, **match_options
        )
        fit = _fit_round(result, d, rounds, model, robust, threshold)
        moved = _largest_move(matrix, fit.matrix, corners)
        matrix = fit.matrix
        if moved <= tolerance:
            break
    else:
        warnings.warn(
            f"register did not converge in {max_iterations} rounds: the "
            f"last moved the transform by {moved:.3g} px (tolerance "
            f"{tolerance} px)",
            RuntimeWarning,
            stacklevel=2,
        )
    return replace(fit, matches=fit.flag(result))


def _checked_images(
    template_image: Image, image: Image
) -> tuple[LazyArray, LazyArray]:
    """Both images as arrays with the same number of axes, or raise."""
    template_image = as_image("template_image", template_image)
    image = as_image("image", image)
    if image.ndim != template_image.ndim:
        raise ValueError(
            f"image has {image.ndim} axes (shape {tuple(image.shape)}) but "
            f"template_image has {template_image.ndim} (shape "
            f"{tuple(template_image.shape)}); give both the same axes."
        )
    return template_image, image


def _check_options(match_options: dict[str, Any]) -> None:
    """Raise for keywords register sets itself, or cannot pass on."""
    if "image_points" in match_options or "transform" in match_options:
        raise ValueError("pass transform and image_points to register alone")
    masks = [
        name
        for name in ("template_mask", "image_mask", "nodata")
        if match_options.get(name) is not None
    ]
    if masks:
        raise ValueError(
            f"register cannot take {', '.join(masks)}: it matches through "
            "its transform, where no-data masks are not supported yet; "
            "fill the missing data, or match with match_points and fit "
            "with fit_transform."
        )


def _check_points(points: np.ndarray, model: str) -> None:
    """Raise unless `points` (N, d) could determine a `model` transform."""
    d = points.shape[1]
    need, rank = requirements(model, d)
    if len(points) < need:
        raise ValueError(
            f"register with model {model!r} needs at least {need} points "
            f"in {d}-D, got {len(points)}"
        )
    if not np.isfinite(points).all():
        raise ValueError("points hold NaN or infinity")
    spread = point_rank(points)
    if spread < rank:
        raise ValueError(
            f"the points span {spread} direction(s): {article(model)} {model} "
            "transform "
            f"in {d}-D needs them to span {rank}"
        )


def _fit_round(
    result: MatchResult,
    d: int,
    rounds: int,
    model: str,
    robust: bool,
    threshold: float | None,
) -> TransformFit:
    """The fit to the matches of one round, in the d matched axes."""
    # Leading (plane) coordinates pass through: the fit sees d axes only.
    matched_axes_only = replace(
        result, points=result.points[:, -d:], matched=result.matched[:, -d:]
    )
    try:
        return fit_transform(
            matched_axes_only, model=model, robust=robust, threshold=threshold
        )
    except TooFewMatches as error:
        # Its message has the counts and what to try instead.
        raise TooFewMatches(
            f"register: round {rounds}: {error}", error.supported
        ) from error
    except ValueError as error:
        ok = int(np.count_nonzero(result.status == Status.OK))
        raise ValueError(
            f"register: round {rounds} left {ok} good matches of "
            f"{len(result)}, and the fit failed: {error}. Check the "
            "starting transform, or widen search_radius."
        ) from error


def _fit_clicks(
    points: np.ndarray, image_points: npt.ArrayLike, model: str, d: int
) -> np.ndarray:
    """Starting matrix from the points that have a rough position."""
    clicks = np.asarray(image_points, dtype=float)
    if clicks.shape != points.shape:
        raise ValueError(
            f"image_points has shape {clicks.shape} but points has shape "
            f"{points.shape}; give one row per point (NaN where unknown)."
        )
    known = np.isfinite(clicks).all(axis=1)
    if not known.any():
        raise ValueError("image_points has no finite row to start from")
    src, dst = points[known, -d:], clicks[known, -d:]
    # From the model down to a shift: the first the clicks determine.
    error = None
    for candidate in reversed(MODELS[: MODELS.index(model) + 1]):
        try:
            fit = fit_transform(src, dst, model=candidate, robust=False)
            return fit.matrix
        except ValueError as failure:
            error = failure
    raise ValueError(f"image_points determine no transform: {error}")


def _phase_shift(
    template_image: LazyArray, image: LazyArray, d: int
) -> np.ndarray:
    """Starting matrix: the shift that phase correlation finds."""
    # scikit-image's registration pulls in scipy.optimize: load it here.
    from skimage.registration import phase_cross_correlation

    if template_image.ndim != d:
        raise ValueError(
            f"the images have {template_image.ndim} axes but are matched "
            f"in {d}: give transform or image_points to start from."
        )
    # The common top-left part keeps both images' pixel coordinates.
    common = tuple(
        slice(0, min(a, b)) for a, b in zip(template_image.shape, image.shape)
    )
    shift, _, _ = phase_cross_correlation(
        np.asarray(image[common], dtype=float),
        np.asarray(template_image[common], dtype=float),
    )
    matrix = np.eye(d + 1)
    matrix[:-1, -1] = shift
    return matrix


def _box_corners(points: np.ndarray) -> np.ndarray:
    """(2**d, d) corners of the bounding box of (N, d) `points`."""
    low, high = points.min(axis=0), points.max(axis=0)
    return np.array(list(itertools.product(*zip(low, high))))


def _largest_move(
    before: np.ndarray, after: np.ndarray, corners: np.ndarray
) -> float:
    """How far, in pixels, the change of matrix moves any of `corners`."""
    moved = apply_matrix(after, corners) - apply_matrix(before, corners)
    return float(np.max(np.linalg.norm(moved, axis=1)))
