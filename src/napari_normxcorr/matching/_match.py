"""match_points: where many points of interest went, scored and flagged."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core._arrays import Image, LazyArray, as_image
from ..core._masked import MIN_OVERLAP
from ..core._validate import (
    fft_dtype,
    number,
    per_axis,
    point_array,
    positive_int,
)
from ._back_match import back_match_distances
from ._cluster import match_on_cluster
from ._guided import GuidedMatcher, Transform, apply_matrix, transform_matrix
from ._matcher import Matcher, NoData
from ._passes import ForwardPass
from ._result import MatchResult, Status
from ._verdicts import (
    MAX_CONSISTENCY_ERROR,
    MAX_MOTION_GAP,
    MAX_NEIGHBOUR_RESIDUAL,
    MAX_UNCERTAINTY,
    Thresholds,
    judge_neighbours,
    judge_rows,
    peak_ratio,
)

# Default window radii of match_points, in pixels.
TEMPLATE_RADIUS = 50
SEARCH_RADIUS = 200
SHAPE_ORDERS = (1, 2, 0)


def match_points(
    template_image: Image,
    image: Image,
    points: npt.ArrayLike,
    *,
    template_radius: int | Sequence[int] = TEMPLATE_RADIUS,
    search_radius: int | Sequence[int] = SEARCH_RADIUS,
    image_points: npt.ArrayLike | None = None,
    transform: Transform | npt.ArrayLike | None = None,
    subpixel: bool = True,
    shape_order: int = 1,
    min_score: float = 0.5,
    min_distinctiveness: float = 0.0,
    min_peak_ratio: float = 1.5,
    max_motion_gap: float = MAX_MOTION_GAP,
    max_uncertainty: float = MAX_UNCERTAINTY,
    max_consistency_error: float = MAX_CONSISTENCY_ERROR,
    max_neighbour_residual: float = MAX_NEIGHBOUR_RESIDUAL,
    check_consistency: bool = True,
    keep_surfaces: bool = False,
    fft_precision: str = "single",
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    template_mask: Image | None = None,
    image_mask: Image | None = None,
    nodata: float | None = None,
    min_valid: float = MIN_OVERLAP,
    client: Any = None,
) -> MatchResult:
    """Find where each point of interest went from one image to another.

    For each point, a window of `template_radius` around it in
    `template_image` is correlated (NCC) with a window of `search_radius`
    around its starting guess in `image`; the best position is refined to
    sub-pixel precision and scored.

    Parameters
    ----------
    template_image : (..., M0, M1[, M2]) array_like
        Image the points were picked on, in grey values. numpy, dask and
        zarr arrays work; only the windows around the points are read.
        An image of three or more axes whose last axis has 3 or 4 entries
        looks like colour (RGB) and is refused: convert it to grey first.
    image : (..., M0', M1'[, M2']) array_like
        Target image, same number of axes.
    points : (N, D) array_like
        Points of interest (row, col, ...) in `template_image` pixel
        coordinates, one column per axis of the images; floats allowed.
        Leading coordinates (t, z, c in front of the matched axes) select
        the plane to match in, rounded.
    template_radius, search_radius : int or sequence of int, optional
        Window radii in pixels: windows are ``2 * r + 1`` wide, centred on
        the rounded point and clipped at the image borders. One int matches
        in the last two axes; a sequence gives one radius per matched axis
        (three entries match in 3-D).
    image_points : (N, D) array_like, optional
        Starting guesses in `image` (default: the same coordinates, or
        the points mapped through `transform`).
    transform : TransformFit or (d+1, d+1) array_like, optional
        Known (or rough) transform from template pixels to target pixels
        in the d matched axes (row, col[, plane] order, as
        :func:`fit_transform` gives it). Each template is then resampled
        through it before the correlation, so that only the shift left
        over is searched for (see Notes); leading coordinates pass
        through.
    subpixel : bool, optional
        Refine matches below a pixel (Gauss-Newton on the template patch,
        falling back to a parabola fit of the NCC peak).
    shape_order : {1, 2, 0}, optional
        The sub-pixel refinement's warp of the template: 1 affine (it
        follows rotation, stretch and shear, and gives the displacement
        gradient), 2 quadratic, 0 a translation only. Templates under 5
        pixels wide, and fits that do not converge, fall back to a
        translation.
    min_score : float, optional
        Below this NCC a match is flagged ``low score``.
    min_distinctiveness : float, optional
        Below this margin over the second-best peak (``score -
        second_score``) a match is flagged ``ambiguous`` (off by default:
        the peak ratio is the scale-aware test).
    min_peak_ratio : float, optional
        Below this ``(1 - second_score) / (1 - score)`` a match is flagged
        ``ambiguous``, and so is a match whose surface leaves no room for
        a second peak (its uniqueness is unknown).
    max_motion_gap : float, optional
        A match where some quadrant of the template scores more than this
        much better (NCC) at its own best offset, 3 px or more away (of
        those within 3 px), than at the match is flagged ``two motions``
        (the window holds two motions, e.g. across a depth edge, and
        neither is the whole window's; see ``MatchResult.motion_gap``).
        ``np.inf`` turns the test off (and leaves the column NaN: it is
        not computed).
    max_uncertainty : float, optional
        A match whose largest standard deviation (px, from the peak's
        curvature and the residual noise) exceeds this is flagged ``edge
        only`` when its uncertainty ellipse is elongated (a ridge: the
        template holds a straight edge only) and ``uncertain`` otherwise.
    max_consistency_error : float, optional
        Matching back from the found position must land within this many
        pixels of the point, or the row is flagged ``failed consistency``.
    max_neighbour_residual : float, optional
        An ok match whose normalized median residual against the offsets
        of its nearest ok matches (up to 8 in the same plane, 26 in 3-D,
        within 4 times the median spacing; at least 3 needed, else not
        judged), against the local robust affine trend of the
        neighbours, exceeds
        this is flagged ``outlier`` (the usual PIV limit is 2; ``np.inf``
        turns the test off). Planes with fewer than 16 ok matches are
        too sparse to judge: the test is for grids and dense points.
    check_consistency : bool, optional
        Match back from each found position into `template_image` (doubles
        the work).
    keep_surfaces : bool, optional
        Keep every surface so that ``result.surface(i)`` needs no new
        correlation (for a few points, e.g. live edits: memory grows with
        the number of points).
    fft_precision : {'single', 'double'}, optional
        Transform precision; single keeps peaks and scores within 1e-4.
    batch_size : int >= 1, optional
        Points correlated together; bounds memory. Batches of small
        windows are worked on several at a time (up to about 2**18
        search pixels), each correlated as if alone.
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch (or each
        run of batches worked on together).
    template_mask, image_mask : array_like of bool, optional
        True where a pixel of `template_image` (resp. `image`) holds no
        data; the shape of its image, numpy or lazy (read window by window
        like the images). NaN and infinite pixels hold no data either.
    nodata : float, optional
        A fill value that marks pixels without data, in both images.
    min_valid : float, optional
        A template with less than this share of its pixels holding data is
        not matched (status ``too little data``); positions of a masked
        surface where fewer than this share of the template's pixels hold
        data in both windows score NaN.
    client : distributed.Client, optional
        Run on this dask.distributed cluster: the points are split into
        tasks of thousands, grouped by position, and the workers read
        their own windows (zarr and dask arrays and numpy memmaps by
        reference to their storage; in-memory numpy arrays are sent to
        the workers once). The result is the local run's, row for row;
        `progress` reports points done as tasks finish. Needs
        ``pip install napari-normxcorr[distributed]``.

    Returns
    -------
    MatchResult
        One row per point, in input order.

    Notes
    -----
    With a `transform` M, the template of a point p is resampled on the
    target's pixel grid around c = M(p), not rounded:
    ``T'(k) = template_image(M^-1(c + k))`` for the offsets k of a
    ``2 * r + 1`` window, by cubic B-spline interpolation of a region read
    around p. Rotation, scale and shear within M thus leave the
    correlation, and the match is the position of the centre of T' at
    the NCC peak, in target pixels. A point whose resampled template
    would need pixels outside `template_image` is flagged
    ``template does not fit`` (it is not clipped as without a transform:
    the samples cover a rotated, scaled box). The back-match of the
    consistency check resamples the target around the match through
    M^-1 alike. Masks and `nodata` are refused with a `transform`, and a
    NaN in a resampled window gives ``non-finite data``.

    A window with pixels without data is matched by masked NCC [1]_: only
    pixels valid in both the template and the shifted window count, in
    the means, variances and products. Its position comes from a parabola
    fit of the NCC peak (``refined`` is False); windows without such
    pixels keep the plain path, at its speed.

    References
    ----------
    .. [1] D. Padfield, "Masked object registration in the Fourier domain",
       IEEE Transactions on Image Processing 21(5), 2706-2718, 2012.
    """
    if client is not None:
        # The tasks run this very function: it is handed over, so that
        # _cluster, which this module imports, needs no import of it.
        return match_on_cluster(match_points, dict(locals()))
    batch_size = positive_int("batch_size", batch_size)
    limits = Thresholds(
        number("min_score", min_score),
        number("min_distinctiveness", min_distinctiveness),
        number("min_peak_ratio", min_peak_ratio),
        number("max_motion_gap", max_motion_gap, low=0),
        number("max_uncertainty", max_uncertainty, low=0),
        number("max_consistency_error", max_consistency_error, low=0),
        number("max_neighbour_residual", max_neighbour_residual, low=0),
    )
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be callable, got {progress!r}.")
    matcher, points, image_points = _setup(
        template_image,
        image,
        points,
        image_points,
        transform,
        template_radius,
        search_radius,
        fft_precision,
        NoData(template_mask, image_mask, nodata, min_valid),
    )
    found = ForwardPass(
        matcher,
        points,
        subpixel,
        keep_surfaces,
        motions=bool(np.isfinite(limits.max_motion_gap)),
        shape_order=_shape_order(shape_order),
    )
    consistency = np.full(len(points), np.nan)
    with matcher.caching_chunks():
        found.run(image_points, batch_size, progress)
        if check_consistency:
            # Rows flagged already keep their verdict: checking is moot.
            todo = (found.status == Status.OK) & (
                found.score >= limits.min_score
            )
            consistency = back_match_distances(
                matcher, points, found.matched, todo, batch_size
            )
    return _judged(found, image_points, consistency, limits)


def _judged(
    found: ForwardPass,
    image_points: np.ndarray,
    consistency: np.ndarray,
    limits: Thresholds,
) -> MatchResult:
    """The result of a forward pass and its consistency check, each row
    judged alone, then against its neighbours (see `_verdicts`)."""
    points, matcher = found.points, found.matcher
    columns = {
        "score": found.score,
        "distinctiveness": found.score - found.second,
        "peak_ratio": peak_ratio(found.score, found.second),
        "uncertainty": found.uncertainty,
        "covariance": found.covariance,
        "motion_gap": found.motion_gap,
        "consistency": consistency,
        "on_border": found.on_border,
    }
    status = judge_rows(found.status, columns, limits)
    n = len(points)
    result = MatchResult(
        points=points,
        image_points=image_points,
        matched=found.matched,
        offset=found.matched - points,
        score=found.score,
        second_score=found.second,
        distinctiveness=columns["distinctiveness"],
        consistency=consistency,
        refined=found.refined,
        transform_residual=np.full(n, np.nan),
        transform_inlier=np.zeros(n, dtype=bool),
        status=status,
        peak_ratio=columns["peak_ratio"],
        uncertainty=found.uncertainty,
        motion_gap=found.motion_gap,
        covariance=found.covariance,
        gradient=found.gradient,
        _context=matcher,
        _surfaces=found.surfaces if found.keep_surfaces else None,
    )
    return judge_neighbours(
        result, limits.max_neighbour_residual, matcher.ndim
    )


def _shape_order(value: object) -> int:
    """`value` as a shape function's order (0, 1 or 2), or raise."""
    if isinstance(value, bool) or value not in SHAPE_ORDERS:
        raise ValueError(
            f"shape_order must be one of {SHAPE_ORDERS}, got {value!r}."
        )
    return SHAPE_ORDERS[SHAPE_ORDERS.index(value)]


def matched_axes(
    template_radius: int | Sequence[int],
    search_radius: int | Sequence[int],
    image_ndim: int,
) -> int:
    """Number of axes the radii match in, for images of `image_ndim` axes.

    One int per radius matches in (row, col); a sequence says how many.
    """
    sizes = [np.size(template_radius), np.size(search_radius)]
    ndim = max(sizes) if max(sizes) > 1 else min(2, image_ndim)
    if ndim > image_ndim:
        raise ValueError(
            f"the radii have {ndim} entries but the images have "
            f"{image_ndim} axes."
        )
    return ndim


def _setup(
    template_image: Image,
    image: Image,
    points: npt.ArrayLike,
    image_points: npt.ArrayLike | None,
    transform: Transform | npt.ArrayLike | None,
    template_radius: int | Sequence[int],
    search_radius: int | Sequence[int],
    fft_precision: str,
    masking: NoData,
) -> tuple[Matcher, np.ndarray, np.ndarray]:
    """Check the arguments and bundle them into a Matcher."""
    template_image = as_image("template_image", template_image)
    image = as_image("image", image)
    for name, array in (("template_image", template_image), ("image", image)):
        _refuse_colour(name, array)
    if template_image.ndim != image.ndim:
        raise ValueError(
            f"template_image has {template_image.ndim} axes and image has "
            f"{image.ndim}; they must have the same number."
        )
    ndim = matched_axes(template_radius, search_radius, image.ndim)
    t_radius = per_axis("template_radius", template_radius, ndim)
    s_radius = per_axis("search_radius", search_radius, ndim)
    points = point_array("points", points, image.ndim)
    matrix = None if transform is None else transform_matrix(transform, ndim)
    if image_points is None:
        image_points = points.copy()
        if matrix is not None:
            image_points[:, -ndim:] = apply_matrix(matrix, points[:, -ndim:])
    else:
        image_points = point_array("image_points", image_points, image.ndim)
        if image_points.shape != points.shape:
            raise ValueError(
                f"image_points has shape {image_points.shape} but points "
                f"has shape {points.shape}; give one guess per point."
            )
    dtype = fft_dtype(fft_precision)
    images = (template_image, image, t_radius, s_radius, dtype)
    if matrix is None:
        masks = masking.checked(template_image, image)
        return Matcher(*images, **masks), points, image_points
    if masking.given:
        raise ValueError(
            "template_mask, image_mask and nodata cannot be combined with "
            "a transform; match without it, or fill the missing data."
        )
    return GuidedMatcher(*images, matrix=matrix), points, image_points


def _refuse_colour(name: str, image: LazyArray) -> None:
    """Raise for an image whose last axis looks like colour channels.

    Matched axes are the last ones, so an RGB(A) image would be matched
    across its channels as if they were pixels.
    """
    if image.ndim >= 3 and image.shape[-1] in (3, 4):
        raise ValueError(
            f"{name} has shape {tuple(image.shape)}: its last axis of "
            f"{image.shape[-1]} looks like colour channels (RGB); match in "
            "grey, e.g. skimage.color.rgb2gray(image), or one channel, "
            "image[..., c]."
        )
