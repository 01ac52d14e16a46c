"""Input checks shared by the public functions; errors name the argument."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

MODES = ("full", "same", "valid")
FFT_PRECISIONS: dict[str, type[np.floating]] = {
    "double": np.float64,
    "single": np.float32,
}


def check_real(
    name: str, dtype: npt.DTypeLike, shape: tuple[int, ...]
) -> None:
    """Raise unless an array of `dtype` and `shape` holds real numbers."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise ValueError(
            f"{name} is complex ({dtype}); pass its real part or its "
            "magnitude."
        )
    if dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {dtype}.")
    if len(shape) == 0:
        raise ValueError(
            f"{name} is a single number (0-d); give an array with at least "
            "one axis."
        )
    if 0 in shape:
        raise ValueError(f"{name} is empty (shape {shape}).")


def as_real_array(name: str, value: npt.ArrayLike) -> np.ndarray:
    """Return `value` as a real numeric array, or raise naming it.

    Integers, booleans and floats pass through with their dtype; complex,
    object, string and empty arrays, and arrays holding NaN or infinity are
    refused.
    """
    array = np.asarray(value)
    check_real(name, array.dtype, array.shape)
    if array.dtype.kind == "f":
        check_finite(name, array)
    return array


def check_finite(name: str, array: np.ndarray) -> None:
    """Raise a ValueError saying how many values of `array` are not finite."""
    finite = np.isfinite(array)
    if not finite.all():
        bad = finite.size - np.count_nonzero(finite)
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"{name} holds {bad} non-finite value(s) (NaN or inf); the first "
            f"is at index {first}."
        )


def check_template_fits(template: np.ndarray, image: np.ndarray) -> None:
    """Raise when `template` cannot be slid over `image`."""
    if template.ndim > image.ndim:
        raise ValueError(
            f"template has more dimensions ({template.ndim}) than image "
            f"({image.ndim}); the arguments probably need to be swapped."
        )
    if template.ndim < image.ndim:
        raise ValueError(
            f"template has fewer dimensions ({template.ndim}) than image "
            f"({image.ndim}); give both the same number of axes."
        )
    too_big = [
        axis
        for axis, (t, i) in enumerate(zip(template.shape, image.shape))
        if t > i
    ]
    if too_big:
        raise ValueError(
            f"template (shape {template.shape}) is larger than image (shape "
            f"{image.shape}) along axis {too_big}; the arguments probably "
            "need to be swapped."
        )


def check_mode(mode: str) -> None:
    """Raise unless `mode` is one of :data:`MODES`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")


def fft_dtype(fft_precision: str) -> type[np.floating]:
    """The dtype of the transforms for `fft_precision`, or raise."""
    if fft_precision not in FFT_PRECISIONS:
        raise ValueError(
            f"fft_precision must be one of {tuple(FFT_PRECISIONS)}, got "
            f"{fft_precision!r}."
        )
    return FFT_PRECISIONS[fft_precision]


def point_array(name: str, values: npt.ArrayLike, ndim: int) -> np.ndarray:
    """(N, `ndim`) float64 coordinates, or raise naming `name`."""
    points = np.asarray(values, dtype=np.float64)
    if points.size == 0:
        return np.empty((0, ndim))
    if points.ndim != 2 or points.shape[1] != ndim:
        raise ValueError(
            f"{name} has shape {points.shape} but the images have {ndim} "
            f"axes; give an (N, {ndim}) array of (row, col, ...) "
            "coordinates."
        )
    return points


def per_axis(
    name: str, value: int | Sequence[int], ndim: int
) -> tuple[int, ...]:
    """Expand a radius given as one int or one per axis to `ndim` ints >= 0."""
    values = np.atleast_1d(np.asarray(value))
    if values.ndim != 1 or values.dtype.kind not in "iu":
        if values.dtype.kind == "f" and np.all(values == np.round(values)):
            values = values.astype(np.int64)
        else:
            raise ValueError(
                f"{name} must be an int or a sequence of ints, got {value!r}."
            )
    if values.size == 1:
        values = np.repeat(values, ndim)
    if values.size != ndim:
        raise ValueError(
            f"{name} has {values.size} entries for {ndim} axes: give one "
            "int, or one per axis."
        )
    if np.any(values < 0):
        raise ValueError(f"{name} must be >= 0, got {value!r}.")
    return tuple(int(v) for v in values)


def positive_int(name: str, value: object) -> int:
    """`value` as an int >= 1, or raise naming `name`."""
    return int_at_least(name, value, 1)


def int_at_least(name: str, value: object, low: int) -> int:
    """`value` as an int >= `low` (not a bool), or raise naming `name`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or value < low
    ):
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
    return int(value)


def number(
    name: str, value: object, low: float = -np.inf, *, nan: bool = False
) -> float:
    """`value` as a float >= `low` (infinity allowed, NaN only if `nan`),
    or raise naming `name`: a NaN threshold would silently turn its check
    off."""
    if isinstance(value, str | bytes):
        # float('0.5') would pass: a string is a slip, not a number.
        raise ValueError(f"{name} must be a number, got {value!r}.")
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}.") from None
    if nan and np.isnan(result):
        return result
    if not result >= low:
        bound = "" if low == -np.inf else f" >= {low:g}"
        raise ValueError(f"{name} must be a number{bound}, got {value!r}.")
    return result
