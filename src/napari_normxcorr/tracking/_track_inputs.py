"""The inputs of a track: the stack, points and keywords checked, views
of frames.

``checked_stack``, ``checked_points`` and ``checked_frames`` turn the
arguments of :func:`track_points` and :func:`retrack` into arrays (or
raise with a message for the user); :class:`Options` holds the checked
keywords; :class:`Planes` shows chosen frames of a stack as one array,
for ``match_points`` and for a frame range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ..core._arrays import Image, LazyArray, as_image
from ..core._validate import int_at_least, number
from ..matching._shape_functions import ShapeFunction


@dataclass(frozen=True)
class Options:
    """The keywords of track_points, checked: radii per axis, the shape
    function built from `shape_order`."""

    radius: tuple[int, ...]
    search: tuple[int, ...]
    reference: str
    subpixel: bool
    shape: ShapeFunction
    min_score: float
    min_distinctiveness: float
    refresh_score: float
    patience: int
    fft_precision: str
    batch_size: int


def checked_stack(stack: Image | Sequence[Image]) -> LazyArray:
    """`stack` as a lazy (T, ...) array of at least two frames, or raise."""
    if isinstance(stack, list | tuple):
        stack = as_image("stack", _FrameList(stack))
    else:
        stack = as_image("stack", cast(Image, stack))
    if stack.ndim < 3:
        raise ValueError(
            f"stack has shape {tuple(stack.shape)}; give time first and "
            "frames of 2 or 3 axes, (T, rows, cols) or (T, z, rows, cols)."
        )
    if stack.shape[0] < 2:
        raise ValueError(
            f"stack has {stack.shape[0]} frame (shape "
            f"{tuple(stack.shape)}); tracking needs at least two."
        )
    return stack


def checked_points(points: npt.ArrayLike, stack: LazyArray) -> np.ndarray:
    """(N, stack.ndim) float64 copy of `points` with valid times, or raise."""
    values = np.array(points, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != stack.ndim:
        columns = stack.ndim
        hint = (
            " (no time column?)"
            if values.ndim == 2 and values.shape[1] == columns - 1
            else ""
        )
        raise ValueError(
            f"points has shape {values.shape}{hint}; for a stack of shape "
            f"{tuple(stack.shape)} give an (N, {columns}) array of "
            "(t, ..., row, col), the frame first."
        )
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        raise ValueError(
            f"points {bad[:5].tolist()} hold NaN or infinity; every point "
            "needs a frame and a position to be tracked from."
        )
    times = np.rint(values[:, 0])
    outside = np.flatnonzero((times < 0) | (times >= stack.shape[0]))
    if outside.size:
        raise ValueError(
            f"points {outside[:5].tolist()} have times "
            f"{values[outside[:5], 0].tolist()} outside the stack's "
            f"{stack.shape[0]} frames (0 to {stack.shape[0] - 1})."
        )
    return values


def checked_frames(
    frames: tuple[int, int] | None, stack: LazyArray, points: np.ndarray
) -> tuple[int, int]:
    """The (first, last) frames to track through, or raise."""
    count = stack.shape[0]
    if frames is None:
        return 0, count - 1
    rule = (
        f"frames must be (first, last) with 0 <= first < last <= "
        f"{count - 1}, got {frames!r}."
    )
    try:
        first, last = (int_value(f) for f in frames)
    except (TypeError, ValueError):
        raise ValueError(rule) from None
    if not 0 <= first < last < count:
        raise ValueError(rule)
    times = np.rint(points[:, 0])
    outside = np.flatnonzero((times < first) | (times > last))
    if outside.size:
        raise ValueError(
            f"points {outside[:5].tolist()} have times "
            f"{points[outside[:5], 0].tolist()} outside the frames "
            f"{first} to {last} to track through."
        )
    return first, last


def int_value(value: object) -> int:
    """`value` if it is a whole number (2, 2.0, numpy ints), else raise
    (TypeError or ValueError, for the caller to name)."""
    if isinstance(value, bool) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise TypeError(value)
    if value != int(value):
        raise ValueError(value)
    return int(value)


def checked_refresh_score(value: object) -> float:
    """`refresh_score` as a float in [-1, 1], or raise naming it."""
    score = number("refresh_score", value)
    if not -1 <= score <= 1:
        raise ValueError(f"refresh_score must lie in [-1, 1], got {value!r}.")
    return score


def checked_patience(value: object) -> int:
    """`patience` as an int >= 0, or raise naming it."""
    return int_at_least("patience", value, 0)


def checked_vertex(
    result: Any, stack: LazyArray, point: object, t: object
) -> tuple[int, int]:
    """`point` and `t` of a retrack as ints within `result`, and `stack`
    the one `result` was tracked through; else raise naming them."""
    count, length = result.status.shape
    if length != stack.shape[0]:
        raise ValueError(
            f"result has {length} frames but stack has {stack.shape[0]}."
        )
    tracked = getattr(result, "stack", None)
    if tracked is not None and tuple(tracked.shape) != tuple(stack.shape):
        raise ValueError(
            f"stack has shape {tuple(stack.shape)} but result was tracked "
            f"through a stack of shape {tuple(tracked.shape)}."
        )
    found = np.asarray(result.position)
    found = found[np.isfinite(found).all(axis=-1)]
    if found.size and np.any(found.max(axis=0) > np.array(stack.shape[1:])):
        raise ValueError(
            f"stack has frames of shape {tuple(stack.shape[1:])}, smaller "
            "than those result was tracked through."
        )
    try:
        row = int_value(point)
    except (TypeError, ValueError):
        row = -1
    if not 0 <= row < count:
        raise ValueError(
            f"point must lie in 0 .. {count - 1} (an int), got {point!r}."
        )
    try:
        # Its range is checked with the position, as a point's time.
        return row, int_value(t)
    except (TypeError, ValueError):
        raise ValueError(f"t must be an int (a frame), got {t!r}.") from None


def checked_position(position: npt.ArrayLike, stack: LazyArray) -> np.ndarray:
    """A retrack's `position`: one finite coordinate per axis of a frame
    of `stack`, or raise naming it."""
    try:
        values = np.ravel(np.asarray(position, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(
            f"position must be numbers, got {position!r}."
        ) from None
    axes = stack.ndim - 1
    if values.size != axes:
        raise ValueError(
            f"position has {values.size} coordinates but the frames of "
            f"stack have {axes} axes; give one per axis."
        )
    if not np.isfinite(values).all():
        raise ValueError(f"position holds NaN or infinity: {values}.")
    return values


class _FrameList:
    """A list of frames of one shape, read as a lazy (T, ...) array."""

    def __init__(self, frames: Sequence[Image]):
        self.frames = [
            as_image(f"stack[{k}]", f) for k, f in enumerate(frames)
        ]
        if not self.frames:
            raise ValueError("stack is an empty list; give at least two.")
        shapes = [tuple(f.shape) for f in self.frames]
        if len(set(shapes)) > 1:
            odd = next(k for k, s in enumerate(shapes) if s != shapes[0])
            raise ValueError(
                f"the frames of stack have different shapes: frame 0 is "
                f"{shapes[0]} and frame {odd} is {shapes[odd]}."
            )
        self.shape = (len(shapes), *shapes[0])
        self.ndim = len(self.shape)
        self.dtype = np.result_type(*[f.dtype for f in self.frames])

    def __getitem__(self, index: Any) -> np.ndarray:
        frame, *rest = index if isinstance(index, tuple) else (index,)
        if isinstance(frame, int | np.integer):
            return np.asarray(self.frames[frame][tuple(rest)])
        # A slice or an array of frames (dask reads blocks so): stacked.
        chosen = np.arange(len(self.frames))[frame]
        return np.stack(
            [np.asarray(self.frames[k][tuple(rest)]) for k in chosen]
        )


class Planes:
    """A (K, ...) view of a stack whose plane k is frame ``frames[k]``.

    Lets one match_points call take each point's template from its own
    frame: its leading coordinate picks the plane.
    """

    def __init__(self, stack: LazyArray, frames: np.ndarray):
        self.stack, self.frames = stack, frames
        self.shape = (len(frames), *stack.shape[1:])
        self.ndim = len(self.shape)
        self.dtype = stack.dtype

    def __getitem__(self, index: Any) -> npt.ArrayLike:
        plane, *rest = index if isinstance(index, tuple) else (index,)
        return self.stack[(int(self.frames[plane]), *rest)]
