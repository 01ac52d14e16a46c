"""Resampling an image through a fitted transform: the target image in
the template's pixel grid.

As in ``_transform``, everything here works in pixel coordinates in the
arrays' axis order (row, col[, plane]), like napari's ``affine``.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from typing import TYPE_CHECKING, Any, TypeGuard, cast

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ..core._arrays import Image, LazyArray
from ..core._validate import check_real, number
from ..matching._guided import apply_matrix as _apply
from ._transform import TransformFit

if TYPE_CHECKING:
    import dask.array

__all__ = ["warp"]


def _is_dask(image: object) -> TypeGuard[dask.array.Array]:
    # Only a loaded dask can have made a dask array: never import it here.
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(image, dask_array.Array)


def _input_region(
    matrix: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    shape: tuple[int, ...],
    order: int,
) -> tuple[slice, ...] | None:
    """Slices of the input that output pixels start..stop-1 sample from.

    None when they all fall outside the input.
    """
    corners = np.array(list(itertools.product(*zip(start, stop - 1))))
    if np.any(corners @ matrix[-1, :-1] + matrix[-1, -1] <= 0):
        # The block crosses the horizon of the projection: no bounding box.
        return tuple(slice(0, n) for n in shape)
    mapped = _apply(matrix, corners.astype(float))
    # Spline prefilters reach this far with weights below 1e-13, so cutting
    # the input there changes no output pixel.
    margin = 0 if order <= 1 else 8 * order
    lo = np.clip(np.floor(mapped.min(0)).astype(int) - margin, 0, shape)
    hi = np.clip(np.ceil(mapped.max(0)).astype(int) + 1 + margin, 0, shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def _warp_region(
    region: npt.ArrayLike,
    matrix: np.ndarray,
    start: np.ndarray,
    shape: tuple[int, ...],
    order: int,
    cval: float,
    dtype: np.dtype,
    lo: np.ndarray,
) -> np.ndarray:
    """Output pixels start + (0..shape) sampled from region at offset lo."""
    # In the output's type: ndimage has no float16 or bool splines.
    region = np.asarray(region, dtype=dtype)
    if not matrix[-1, :-1].any():
        linear = matrix[:-1, :-1] / matrix[-1, -1]
        offset = linear @ start + matrix[:-1, -1] / matrix[-1, -1] - lo
        return ndimage.affine_transform(
            region,
            linear,
            offset,
            output_shape=tuple(shape),
            output=dtype,
            order=order,
            mode="constant",
            cval=cval,
        )
    grid = np.indices(shape, dtype=float).reshape(len(shape), -1).T + start
    coords = (_apply(matrix, grid) - lo).T
    values = ndimage.map_coordinates(
        region, coords, output=dtype, order=order, mode="constant", cval=cval
    )
    return values.reshape(shape)


def _warp_lazy(
    image: dask.array.Array,
    matrix: np.ndarray,
    output_shape: tuple[int, ...],
    *options: Any,
) -> dask.array.Array:
    """A dask array of output blocks, each reading the input it needs."""
    import dask
    import dask.array as da

    order, cval, dtype = options
    # Output blocks as large as the input's, so each reads a few chunks.
    chunks = da.core.normalize_chunks(image.chunksize, output_shape)
    bounds = [np.cumsum((0, *c)) for c in chunks]

    def block(index: tuple[int, ...]) -> dask.array.Array:
        start = np.array([b[i] for b, i in zip(bounds, index)])
        stop = np.array([b[i + 1] for b, i in zip(bounds, index)])
        shape = tuple(stop - start)
        region = _input_region(matrix, start, stop, image.shape, order)
        if region is None:
            return da.full(shape, cval, dtype=dtype)
        lo = np.array([s.start for s in region])
        values = dask.delayed(_warp_region, pure=True)(
            image[region], matrix, start, shape, *options, lo
        )
        return da.from_delayed(values, shape, dtype=dtype)

    def nest(index: tuple[int, ...]) -> Any:
        # da.block takes the blocks as nested lists, one level per axis.
        if len(index) == len(chunks):
            return block(index)
        return [nest((*index, i)) for i in range(len(chunks[len(index)]))]

    return da.block(nest(()))


def warp(
    image: Image,
    fit: TransformFit | npt.ArrayLike,
    output_shape: tuple[int, ...] | None = None,
    *,
    order: int = 1,
    cval: float = np.nan,
) -> np.ndarray | dask.array.Array:
    """Resample the target image into the template's pixel grid.

    ``output[p] = image[fit(p)]``: overlaid on the template, the output
    shows the target where the fit says each template pixel went.

    Parameters
    ----------
    image : (M0, M1[, M2]) array_like
        Target image with one axis per coordinate of the fit. A dask array
        gives a lazy result whose blocks read only the input they need;
        other arrays (zarr...) are read only where the output samples.
    fit : TransformFit or (D+1, D+1) array_like
        Fit (or homogeneous matrix) from template pixels to target pixels.
    output_shape : tuple of int, optional
        Shape of the template image; by default the shape of `image`.
    order : int, optional
        Spline interpolation order, 0 to 5 (1: linear).
    cval : float, optional
        Value of output pixels that map outside `image`.

    Returns
    -------
    ndarray or dask.array.Array
        Floating-point image of `output_shape` (float32 for images of 16
        bits or fewer, float64 otherwise).

    Raises
    ------
    ValueError
        For a matrix that is not square, finite and invertible, an image
        with other than D axes, an `output_shape` that is not D ints >= 1
        (or, in memory, larger than the machine's memory), or an `order`
        outside 0 to 5.
    """
    matrix = _checked_matrix(fit)
    if not hasattr(image, "shape"):
        image = np.asarray(image)
    # Arrays with a shape (dask, zarr...) are read only where sampled.
    image = cast(LazyArray, image)
    check_real("image", image.dtype, tuple(image.shape))
    ndim = len(matrix) - 1
    if len(image.shape) != ndim:
        raise ValueError(
            f"image must have {ndim} axes for a {ndim}-D fit, "
            f"got shape {image.shape}"
        )
    shape = _checked_shape(
        image.shape if output_shape is None else output_shape, ndim
    )
    if isinstance(order, bool) or order not in range(6):
        raise ValueError(f"order must be an int from 0 to 5, got {order!r}.")
    options = (int(order), number("cval", cval, nan=True), _dtype(image.dtype))
    if _is_dask(image):
        return _warp_lazy(image, matrix, shape, *options)
    _check_memory(shape, options[-1])
    start, stop = np.zeros(ndim, int), np.array(shape)
    region = _input_region(matrix, start, stop, image.shape, order)
    if region is None:
        return np.full(shape, cval, dtype=options[-1])
    lo = np.array([s.start for s in region])
    return _warp_region(image[region], matrix, start, shape, *options, lo)


def _dtype(dtype: npt.DTypeLike) -> np.dtype:
    """float32 for images of 16 bits or fewer, float64 otherwise."""
    return np.result_type(dtype, np.float32)


def _checked_matrix(fit: TransformFit | npt.ArrayLike) -> np.ndarray:
    """The fit's (D+1, D+1) matrix, finite and invertible, or raise."""
    try:
        matrix = np.asarray(getattr(fit, "matrix", fit), dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"fit must be a TransformFit or a square matrix, got {fit!r}."
        ) from None
    if (
        matrix.ndim != 2
        or matrix.shape[0] != matrix.shape[1]
        or len(matrix) < 2
    ):
        raise ValueError(f"fit must be a square matrix, got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("fit's matrix holds NaN or infinity.")
    # A singular matrix sends the whole grid onto a line or a point.
    if np.linalg.cond(matrix) > 1 / np.finfo(float).eps:
        raise ValueError("fit's matrix is singular: it maps no image.")
    return matrix


def _checked_shape(shape: Any, ndim: int) -> tuple[int, ...]:
    """`output_shape` as `ndim` ints >= 1, or raise naming it."""
    values = np.atleast_1d(np.asarray(shape))
    whole = values.dtype.kind in "iu" or (
        values.dtype.kind == "f" and np.all(values == np.round(values))
    )
    if values.ndim != 1 or len(values) != ndim:
        raise ValueError(f"output_shape must have {ndim} axes, got {shape!r}")
    if not whole or np.any(values < 1):
        raise ValueError(
            f"output_shape must be {ndim} ints >= 1, got {shape!r}."
        )
    return tuple(int(n) for n in values)


def _check_memory(shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Raise naming `output_shape` when the output would not fit in RAM
    (the allocation may otherwise succeed and be killed when filled)."""
    needed = math.prod(shape) * dtype.itemsize
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on every platform
        memory = 2**63
    if needed > memory:
        raise ValueError(
            f"output_shape {shape} needs {needed / 2**30:,.0f} GiB, more "
            f"than this machine's {memory / 2**30:,.0f} GiB; pass a dask "
            "image for a lazy result, or a smaller shape."
        )
