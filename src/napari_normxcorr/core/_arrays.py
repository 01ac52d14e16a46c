"""Images as the engine sees them: numpy, dask or zarr arrays, read lazily.

The engine only ever slices windows out of an image, so anything with a
shape, a dtype and numpy-style indexing will do; nothing here loads a
whole image.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ._validate import check_real

# skimage.color.rgb2gray's weights (ITU-R BT.709).
LUMINANCE = np.array([0.2125, 0.7154, 0.0721])
# Float64 values are scaled into range when their largest magnitude lies
# beyond 2**50 or below 2**-50: the single-precision transforms (float32
# tops out near 2**128, and products of spectra square the values) and the
# product of a window's and a template's energies (values to the fourth
# power) then neither overflow nor underflow.
_SAFE_EXPONENT = 50


@runtime_checkable
class LazyArray(Protocol):
    """An array read window by window: numpy, dask, zarr, h5py..."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> Any: ...

    @property
    def ndim(self) -> int: ...

    def __getitem__(self, index: Any) -> npt.ArrayLike: ...


Image = npt.ArrayLike | LazyArray


def as_image(name: str, values: Image) -> LazyArray:
    """`values` as an array to read windows from, or raise naming `name`.

    numpy, dask and zarr arrays pass as they are (windows are read later);
    anything else becomes a numpy array.
    """
    array: LazyArray = (
        values
        if isinstance(values, LazyArray) and hasattr(values, "dtype")
        else np.asarray(values)
    )
    check_real(name, array.dtype, tuple(array.shape))
    return array


class Luminance:
    """Lazy grey view of an RGB(A) array: windows are converted when read."""

    def __init__(self, rgb: LazyArray):
        self.rgb = rgb
        self.shape = tuple(rgb.shape[:-1])
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float64)

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        colour = np.asarray(self.rgb[(*index, slice(0, 3))], dtype=float)
        return colour @ LUMINANCE


def grey(rgb: LazyArray) -> LazyArray:
    """The luminance of an RGB(A) array (colour last).

    In memory it is converted at once (the engine's fast paths need a
    numpy array); lazy arrays are converted window by window.
    """
    if isinstance(rgb, np.ndarray):
        return np.asarray(rgb[..., :3], dtype=float) @ LUMINANCE
    return Luminance(rgb)


def is_colour(image: LazyArray, ndim: int) -> bool:
    """Whether `image` has one more trailing axis of 3 or 4 (RGB, RGBA)
    than the `ndim` coordinates of its points."""
    return image.ndim == ndim + 1 and image.shape[-1] in (3, 4)


def safe_scale(values: np.ndarray) -> float:
    """A power of two that brings `values` where squares and sums are safe.

    NCC does not change when either input is scaled, and a power of two
    scales exactly: 1.0 for values already in range (anything but
    float64 always is), else the factor that brings their largest finite
    magnitude into [0.5, 1).
    """
    if values.dtype.kind != "f" or values.dtype.itemsize < 8:
        return 1.0
    high = max(abs(float(values.max())), abs(float(values.min())))
    if not np.isfinite(high):  # NaN or infinity: scaled for the rest
        finite = values[np.isfinite(values)]
        high = float(np.abs(finite).max()) if finite.size else 0.0
    exponent = np.frexp(high)[1] if high > 0 else 0
    if abs(exponent) <= _SAFE_EXPONENT:
        return 1.0
    return float(np.ldexp(1.0, -exponent))


def sum_shows_in_range(total: float, count: int) -> bool:
    """Whether `count` values summing to `total`, taken from an array
    that `safe_scale` leaves alone, are left alone too.

    Their largest magnitude is at most the array's, and at least
    ``|total| / count``: above the lower limit, no look at the values is
    needed (NaN says nothing).
    """
    return bool(abs(total) > count * 2.0**-_SAFE_EXPONENT)


def scaled(values: np.ndarray) -> np.ndarray:
    """`values`, or a copy scaled by `safe_scale` when it is not 1."""
    scale = safe_scale(values)
    return values if scale == 1.0 else values * scale
