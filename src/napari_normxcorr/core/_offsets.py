"""normxcorr2-compatible matching: the offset of a template, or of a point."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from ._arrays import Image, LazyArray
from ._debug import visualize_cross_correlation
from ._ncc import crop_start, normalized_cross_correlation
from ._peaks import argmax_index, parabolic_shift
from ._validate import as_real_array, per_axis
from ._windows import as_slices, window_bounds


def find_template_offset(
    template: npt.ArrayLike,
    image: npt.ArrayLike,
    debug_dir: str | Path | None = None,
    *,
    mode: str = "full",
    subpixel: bool = False,
) -> tuple[float, ...]:
    """Offset of `template`'s first element (top-left corner) in `image`.

    Parameters
    ----------
    template : (m0, m1[, ...]) array_like
        Pattern to look for, no larger than `image` along any axis.
    image : (M0, M1[, ...]) array_like
        Array to search.
    debug_dir : str or Path, optional
        Folder to write pictures of the correlation to (see
        :func:`visualize_cross_correlation`).
    mode : {'full', 'same', 'valid'}, optional
        Correlation mode; 'full' (default, as normxcorr2) also considers
        positions where the template hangs over the image border.
    subpixel : bool, optional
        Refine the offset with a three-point parabola per axis (floats).

    Returns
    -------
    offset : int or float, one per axis
        Where the template's first element lies in the image, e.g.
        ``(y_offset, x_offset)`` in 2-D; negative in 'full' mode when the
        template hangs over the top or left border.
    fit : float
        NCC at the peak, from -1 (perfect negative match) to 1 (perfect
        match); 0 means no match.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((60, 80))
    >>> template = image[10:30, 25:40]
    >>> y_offset, x_offset, fit = find_template_offset(template, image)
    >>> y_offset, x_offset, round(fit, 6)
    (10, 25, 1.0)
    """
    template = as_real_array("template", template)
    xc = normalized_cross_correlation(template, image, mode)
    peak = argmax_index(xc)
    fit = float(xc[peak])
    start = crop_start(template.shape, mode)
    offset = [p + s - (m - 1) for p, s, m in zip(peak, start, template.shape)]
    if subpixel:
        offset = [float(o) for o in offset + parabolic_shift(xc, peak)]
    if debug_dir:
        visualize_cross_correlation(
            debug_dir, template, image, xc, peak, fit, offset
        )
    return (*offset, fit)


def find_template_offset_centered(
    template_image: Image,
    image: Image,
    template_center: npt.ArrayLike,
    image_center: npt.ArrayLike,
    template_radius: int | Sequence[int] = 50,
    image_radius: int | Sequence[int] = 200,
    adjust_template: Callable[..., Sequence[int]] | None = None,
    debug_dir: str | Path | None = None,
    *,
    mode: str = "full",
    subpixel: bool = False,
) -> tuple[float, ...]:
    """Displacement of a point of interest between two images.

    A window of `template_radius` around `template_center` in
    `template_image` is searched for in a window of `image_radius` around
    `image_center` in `image`. Windows are ``2 * radius + 1`` pixels wide,
    centred on the rounded centre and clipped at the image borders; the
    returned offset is exact whatever the clipping.

    Parameters
    ----------
    template_image : (M0, M1[, ...]) array_like
        The image containing the template patch.
    image : (M0', M1'[, ...]) array_like
        The image to search, same number of axes.
    template_center : sequence of float
        The point in `template_image`, (row, col[, ...]).
    image_center : sequence of float
        Where to search around in `image`, (row, col[, ...]).
    template_radius : int or sequence of int, optional
        Radius of the template window, one for all axes or one per axis.
        ``50`` gives a 101 x 101 patch away from the borders.
    image_radius : int or sequence of int, optional
        Radius of the search window. Default: 200.
    adjust_template : callable, optional
        ``adjust_template(template_image, start0, stop0, start1, stop1,
        ...) -> (shrink_start0, shrink_stop0, shrink_start1, ...)``: moves
        the template window's bounds inwards before correlating
        (``(image, min_y, max_y, min_x, max_x)`` in 2-D).
    debug_dir : str or Path, optional
        Folder for pictures of the correlation.
    mode : {'full', 'same', 'valid'}, optional
        Correlation mode inside the search window (default 'full').
    subpixel : bool, optional
        Refine the offset with a parabola fit (floats).

    Returns
    -------
    offset : int or float, one per axis
        Displacement of the point: its match in `image` lies at
        ``image_center + offset``, e.g. ``(y_offset, x_offset)`` in 2-D.
    fit : float
        NCC at the peak, in [-1, 1].
    """
    template_image = _as_array(template_image)
    image = _as_array(image)
    ndim = template_image.ndim
    if image.ndim != ndim:
        raise ValueError(
            f"template_image has {ndim} axes and image has {image.ndim}; "
            "they must have the same number."
        )
    template_center = _check_centre(
        "template_center", template_center, template_image.shape
    )
    image_center = _check_centre("image_center", image_center, image.shape)
    template_radius = per_axis("template_radius", template_radius, ndim)
    image_radius = per_axis("image_radius", image_radius, ndim)

    t_start, t_stop = window_bounds(
        template_center, template_radius, template_image.shape
    )
    i_start, i_stop = window_bounds(image_center, image_radius, image.shape)
    if adjust_template is not None:
        t_start, t_stop = _adjusted(
            adjust_template, template_image, t_start, t_stop
        )
    template = as_real_array(
        "template window", template_image[as_slices(t_start, t_stop)]
    )
    search = as_real_array("image window", image[as_slices(i_start, i_stop)])
    if any(t > s for t, s in zip(template.shape, search.shape)):
        raise ValueError(
            f"the template window (shape {template.shape}) is larger than "
            f"the image window (shape {search.shape}); make image_radius "
            "larger than template_radius."
        )
    *found, fit = find_template_offset(
        template, search, debug_dir, mode=mode, subpixel=subpixel
    )
    # Match = where the template window starts + where the POI sits in it.
    offset = (
        i_start
        + np.asarray(found)
        + (template_center - t_start)
        - image_center
    )
    offset = [
        int(o) if float(o).is_integer() and not subpixel else float(o)
        for o in offset
    ]
    return (*offset, fit)


def _as_array(values: Image) -> LazyArray:
    """Keep array-likes with a shape (numpy, dask, zarr) lazy; wrap lists."""
    if hasattr(values, "shape"):
        # Windows are sliced out of it: a shape and indexing is all it takes.
        return cast(LazyArray, values)
    return np.asarray(values)


def _check_centre(
    name: str, centre: npt.ArrayLike, shape: tuple[int, ...]
) -> np.ndarray:
    centre = np.asarray(centre, dtype=np.float64)
    if centre.shape != (len(shape),):
        raise ValueError(
            f"{name} must have {len(shape)} coordinates, got {centre.shape}."
        )
    rounded = np.rint(centre)
    if not np.all(np.isfinite(centre)) or np.any(
        (rounded < 0) | (rounded >= shape)
    ):
        raise ValueError(
            f"{name} {tuple(centre.tolist())} lies outside the image of "
            f"shape {tuple(shape)}."
        )
    return centre


def _adjusted(
    adjust_template: Callable[..., Sequence[int]],
    template_image: LazyArray,
    start: np.ndarray,
    stop: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the caller's `adjust_template` hook to a window's bounds."""
    bounds = [int(v) for pair in zip(start, stop) for v in pair]
    shrink = np.asarray(adjust_template(template_image, *bounds), dtype=int)
    if shrink.shape != (2 * len(start),):
        raise ValueError(
            f"adjust_template must return {2 * len(start)} integers (shrink "
            f"of each start and stop), got {shrink.tolist()}."
        )
    start = start + shrink[0::2]
    stop = stop - shrink[1::2]
    if (
        np.any(start < 0)
        or np.any(stop > template_image.shape)
        or np.any(stop <= start)
    ):
        raise ValueError(
            f"adjust_template moved the template window to {start.tolist()} "
            f".. {stop.tolist()}, outside the template image of shape "
            f"{tuple(template_image.shape)}."
        )
    return start, stop
