"""match_field: a dense displacement field by passes of window deformation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ..core._masked import MIN_OVERLAP
from ..core._strain import local_affine_fits
from ..core._validate import (
    check_real,
    fft_dtype,
    number,
    per_axis,
    positive_int,
)
from ..matching._neighbours import normalized_median_residual
from ..matching._result import Status
from ..matching._verdicts import MAX_NEIGHBOUR_RESIDUAL, MAX_UNCERTAINTY
from ._field_result import FieldResult, Units
from ._grid import _per_axis
from ._grid_field import GridField
from ._pass import Limits, PassMatches
from ._passes import Level, Passes, plan
from ._replace import replace_vectors, smoothed

# Between passes the field that deforms the target is smoothed this many
# times by a [1, 2, 1] filter: repeated window deformation amplifies
# noise on scales shorter than a window unless the predictor is
# low-passed (Schrijer and Scarano 2008); once is enough at 50 % overlap.
SMOOTHING = 1
# A failed vector is replaced only this close (in grid steps) to good
# ones: deep inside a region of failures there is nothing to go by.
REPLACE_ROUNDS = 2
# A vector whose window matches with MISFIT_FACTOR times the field's
# typical misfit (1 - score), and at least MISFIT_FLOOR, is uncertain:
# noise alone rarely doubles it, an unresolved deformation does.
MISFIT_FACTOR = 3.0
MISFIT_FLOOR = 0.1
# Statuses of measurements that failed (replaced by their neighbours'
# fit when asked). An uncertain vector keeps its measurement: where the
# field is not resolved (a vortex's core) its neighbours say less still.
# The other statuses mark places without data, left empty.
FAILED = (
    Status.LOW_SCORE,
    Status.ON_BORDER,
    Status.AMBIGUOUS,
    Status.OUTLIER,
)


def match_field(
    template_image: npt.ArrayLike,
    image: npt.ArrayLike,
    spacing: float | Sequence[float],
    *,
    template_radius: int | Sequence[int] = 16,
    search_radius: int | Sequence[int] | None = None,
    passes: int = 3,
    template_mask: npt.ArrayLike | None = None,
    image_mask: npt.ArrayLike | None = None,
    nodata: float | None = None,
    min_valid: float = MIN_OVERLAP,
    min_score: float = 0.5,
    min_peak_ratio: float = 1.5,
    max_uncertainty: float = MAX_UNCERTAINTY,
    median_threshold: float = MAX_NEIGHBOUR_RESIDUAL,
    replace: bool = True,
    pixel_size: float | Sequence[float] = 1.0,
    unit: str = "px",
    frame_interval: float = 1.0,
    time_unit: str = "frame",
    fft_precision: str = "single",
    progress: Callable[[int, int], None] | None = None,
) -> FieldResult:
    """A dense displacement field: vectors on a regular grid (PIV, DIC).

    The first pass looks at both images shrunk twice: windows twice as
    large as `template_radius` on a grid twice as coarse, searching up to
    ``search_radius - template_radius`` pixels. Each later pass matches
    the windows of `template_radius` on the grid of `spacing` in the
    target deformed by the field so far (window deformation: the target
    is resampled at ``x + u(x)``, u interpolated by cubic splines), and
    adds what it finds within 4 px. Between passes, vectors that fail
    their checks or the normalized median test are replaced by the mean
    of their neighbours, and the field is smoothed once. After the last
    pass, a vector whose deformed window still matches far worse than the
    field's typical one is ``uncertain`` (the field changes faster than
    the windows resolve). Displacements follow match_points' convention:
    where the template image's grid point went in `image`.

    Parameters
    ----------
    template_image, image : array_like
        Two images of the same shape, 2-D or 3-D (a volume matched in 3-D);
        NaN marks pixels without data.
    spacing : float or sequence of float
        Distance between grid points (px), one or one per axis.
    template_radius : int or sequence of int, optional
        Half size of the windows of the last passes: 16 gives 33-px
        windows (OpenPIV's 32). The grid keeps this far from the edges.
    search_radius : int or sequence of int, optional
        Half size of the first pass's search windows at the scale of
        `template_radius`: vectors up to ``search_radius -
        template_radius`` px long are found. Default ``2 *
        template_radius``.
    passes : int, optional
        1 matches once (no deformation); 3 (default) is a coarse pass and
        two with window deformation; more passes converge further on
        strongly sheared flows.
    template_mask, image_mask : array_like of bool, optional
        True marks pixels without data in each image (as in match_points).
    nodata : float, optional
        A value marking pixels without data in both images.
    min_valid : float, optional
        Least share of a window's pixels with data (masked windows).
    min_score, min_peak_ratio, max_uncertainty : float, optional
        The checks of each vector, as in match_points.
    median_threshold : float, optional
        Largest normalized median residual of a good vector (Westerweel
        and Scarano's 2).
    replace : bool, optional
        Replace the vectors of the last pass that fail a check (low score,
        peak on the border, ambiguous, outlier) by the affine map fitted
        to their good neighbours (status ``replaced``); ``uncertain``
        vectors keep their measurement, places without data are never
        filled.
    pixel_size, unit : float or sequence of float, str, optional
        The size of a pixel (one or one per axis) and its unit, for the
        physical columns and layers of the result.
    frame_interval, time_unit : float, str, optional
        Time between the two images and its unit, for velocities.
    fft_precision : {'single', 'double'}, optional
        Precision of the transforms.
    progress : callable, optional
        Called as ``progress(done, total)`` after each pass.

    Returns
    -------
    FieldResult

    Raises
    ------
    ValueError
        On images of different shapes or of other than 2 or 3 axes, a
        grid with no point, or a bad parameter (named in the message).
    """
    template, target = _images(
        template_image, image, template_mask, image_mask, nodata
    )
    d = template.ndim
    radius = np.array(per_axis("template_radius", template_radius, d))
    if np.any(radius < 1):
        raise ValueError(
            f"template_radius must be >= 1, got {template_radius!r}."
        )
    search = (
        2 * radius
        if search_radius is None
        else np.array(per_axis("search_radius", search_radius, d))
    )
    if np.any(search < radius):
        raise ValueError(
            "search_radius must be at least template_radius, got "
            f"{search_radius!r}."
        )
    step = _per_axis("spacing", spacing, d)
    if not np.all((step > 0) & np.isfinite(step)):
        raise ValueError(f"spacing must be finite and > 0, got {spacing!r}.")
    passes = positive_int("passes", passes)
    limits = Limits(
        number("min_score", min_score, -1.0),
        number("min_peak_ratio", min_peak_ratio, 0.0),
        number("max_uncertainty", max_uncertainty, 0.0),
    )
    threshold = number("median_threshold", median_threshold, 0.0)
    units = Units.of(pixel_size, unit, frame_interval, time_unit, d)
    dtype = fft_dtype(fft_precision)
    levels = plan(template.shape, step, radius, search - radius, passes)
    run = Passes(
        template, target, limits, dtype, number("min_valid", min_valid, 0.0)
    )
    field = None
    for k, level in enumerate(levels):
        last = k == len(levels) - 1
        matches, values = run.one(level, field, last)
        outlier = _outliers(level, values, matches.status, threshold)
        if last:
            break
        filled = replace_vectors(
            values,
            ~(matches.status.reshape(level.shape) == Status.OK) | outlier,
        )
        if not np.isfinite(filled).all():
            break  # nothing to deform by: the vectors so far are the answer
        field = GridField(level.image_axes, smoothed(filled, SMOOTHING))
        if progress is not None:
            progress(k + 1, len(levels))
    result = _result(level, matches, values, outlier, replace, step, units)
    if progress is not None:
        progress(len(levels), len(levels))
    return result


def _images(
    template_image: npt.ArrayLike,
    image: npt.ArrayLike,
    template_mask: npt.ArrayLike | None,
    image_mask: npt.ArrayLike | None,
    nodata: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Both images in float64, NaN wherever there is no data (copies: the
    inputs are never written)."""
    arrays = []
    for name, values in (("template_image", template_image), ("image", image)):
        array = np.asarray(values)
        check_real(name, array.dtype, array.shape)
        # Copies in float64; infinities are no data, as NaN.
        array = np.array(array, dtype=np.float64)
        array[~np.isfinite(array)] = np.nan
        arrays.append(array)
    template, target = arrays
    if template.ndim not in (2, 3):
        raise ValueError(
            f"template_image must be 2-D or 3-D, got {template.ndim} axes."
        )
    if target.shape != template.shape:
        raise ValueError(
            f"image has shape {target.shape} but template_image has "
            f"{template.shape}: a field needs two images of one shape."
        )
    for name, mask, values in (
        ("template_mask", template_mask, template),
        ("image_mask", image_mask, target),
    ):
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != values.shape or mask.dtype.kind not in "bui":
                raise ValueError(
                    f"{name} must be a boolean array of shape {values.shape}, "
                    f"got {mask.dtype} of shape {mask.shape}."
                )
            values[mask.astype(bool)] = np.nan
    if nodata is not None:
        value = number("nodata", nodata, nan=True)
        for values in (template, target):
            values[
                (values == value) | (np.isnan(value) & np.isnan(values))
            ] = np.nan
    return template, target


def _outliers(
    level: Level, values: np.ndarray, status: np.ndarray, threshold: float
) -> np.ndarray:
    """The ok vectors that fail the normalized median test (match_points'
    neighbour test: each vector against what a robust local affine fit of
    its 8 (26) neighbours predicts, so that a shear or vortex, or the
    one-sided neighbourhood of an edge, flags nothing), (*grid)."""
    ok = status.reshape(level.shape) == Status.OK
    residual, _ = normalized_median_residual(
        level.image_points,
        values.reshape(-1, len(level.shape)),
        valid=ok.reshape(-1),
        limit=threshold,
    )
    with np.errstate(invalid="ignore"):
        return ok & (residual.reshape(level.shape) > threshold)


def _misfits(status: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The ok vectors whose deformed windows still match far worse than
    the field's typical window: the field changes faster there than the
    grid and windows resolve (a vortex's core), and the vector, though its
    peak is sharp, may be off by more than its peak says."""
    ok = status == Status.OK
    if not ok.any():
        return ok
    misfit = 1.0 - score
    typical = float(np.median(misfit[ok]))
    with np.errstate(invalid="ignore"):
        return ok & (misfit > max(MISFIT_FACTOR * typical, MISFIT_FLOOR))


def _replacements(
    level: Level, offset: np.ndarray, good: np.ndarray, failed: np.ndarray
) -> np.ndarray:
    """What replaces each failed vector (*grid, D): the affine map fitted
    to its good 3 x 3 neighbours, at it (a rotation or vortex core is
    followed, where a mean would flatten it); the mean of the good
    vectors within two grid steps where fewer than D + 2 neighbours
    fit; NaN where none is that close."""
    fitted, _ = local_affine_fits(
        level.image_points,
        offset.reshape(-1, offset.shape[-1]),
        good.reshape(-1),
        at_valid_only=False,
    )
    kept = np.where(good[..., None], offset, np.nan)
    mean = replace_vectors(kept, failed, REPLACE_ROUNDS)
    fitted = fitted.reshape(offset.shape)
    return np.where(np.isfinite(fitted).all(axis=-1)[..., None], fitted, mean)


def _result(
    level: Level,
    matches: PassMatches,
    values: np.ndarray,
    outlier: np.ndarray,
    replace: bool,
    step: np.ndarray,
    units: Units,
) -> FieldResult:
    """The last pass's vectors and verdicts as a FieldResult."""
    shape = level.shape
    status = matches.status.reshape(shape).copy()
    status[outlier] = Status.OUTLIER
    status[_misfits(status, matches.score.reshape(shape))] = Status.UNCERTAIN
    offset = values.copy()
    if replace:
        failed = np.isin(status.astype(str), [s.value for s in FAILED])
        filled = _replacements(level, offset, status == Status.OK, failed)
        done = failed & np.isfinite(filled).all(axis=-1)
        offset[done] = filled[done]
        status[done] = Status.REPLACED
    return FieldResult(
        points=level.points.reshape(*shape, -1).astype(np.float64),
        offset=offset,
        status=status,
        score=matches.score.reshape(shape),
        peak_ratio=matches.peak_ratio.reshape(shape),
        covariance=matches.covariance.reshape(
            *shape, *matches.covariance.shape[1:]
        ),
        spacing=step,
        units=units,
    )
