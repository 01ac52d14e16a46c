"""Drift of a tracked series: how the whole field moved, and undoing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..core._arrays import LazyArray
from ._tracks import TrackResult


@dataclass
class Drift:
    """Displacement of each frame from the first, and the stack without it.

    Attributes
    ----------
    displacement : (T, D) ndarray
        Median displacement of the ok points from frame 0 to each frame,
        per axis of a frame, in pixels (0 at frame 0).
    points_used : (T,) ndarray of int
        How many points each median was taken over (0: no point was ok
        in both frames, and the displacement was chained through the
        frame before, see :func:`estimate_drift`).
    corrected : array_like or None
        The stack shifted back by `displacement`, frame by frame, lazily
        (a dask array when dask is installed, else a view that shifts a
        frame when it is read); None when the result holds no stack.
    """

    displacement: np.ndarray
    points_used: np.ndarray
    corrected: Any


def estimate_drift(
    result: TrackResult, stack: LazyArray | None = None
) -> Drift:
    """Robust per-frame drift of a tracked series.

    Parameters
    ----------
    result : TrackResult
        Tracks from :func:`track_points`.
    stack : (T, ...) array_like, optional
        The stack to correct (default: the one tracked through).

    Returns
    -------
    Drift
        Displacement per frame and a lazily drift-corrected stack.

    Notes
    -----
    The displacement of frame t is the median, per axis, of
    ``position[t] - position[0]`` over the points ``ok`` in both frames:
    a few wrong tracks do not move it. Where no point is ok in both, it
    is the displacement of frame t - 1 plus the median step from t - 1
    to t over the points ok in both of those (and that of t - 1 if none).
    """
    displacement, used = _median_displacement(result)
    stack = result.stack if stack is None else stack
    corrected = None if stack is None else corrected_view(stack, displacement)
    return Drift(displacement, used, corrected)


def _median_displacement(result: TrackResult) -> tuple[np.ndarray, np.ndarray]:
    ok, position = result.ok, result.position
    frames = ok.shape[1]
    displacement = np.zeros((frames, position.shape[2]))
    used = np.zeros(frames, dtype=np.int64)
    used[0] = np.count_nonzero(ok[:, 0])
    for t in range(1, frames):
        common = ok[:, 0] & ok[:, t]
        used[t] = np.count_nonzero(common)
        if used[t]:
            moved = position[common, t] - position[common, 0]
            displacement[t] = np.median(moved, axis=0)
            continue
        step = ok[:, t - 1] & ok[:, t]
        displacement[t] = displacement[t - 1]
        if step.any():
            moved = position[step, t] - position[step, t - 1]
            displacement[t] += np.median(moved, axis=0)
    return displacement, used


def corrected_view(stack: LazyArray, displacement: np.ndarray) -> Any:
    """`stack` with frame t shifted by ``-displacement[t]``, lazily.

    A dask array (one frame per chunk) when dask is installed, else a
    :class:`ShiftedFrames` view. Pixels shifted in from outside are 0.
    """
    try:
        import dask.array as da
    except ImportError:
        return ShiftedFrames(stack, displacement)
    array = stack if isinstance(stack, da.Array) else da.from_array(stack)
    array = array.rechunk((1, *array.shape[1:]))
    dtype = np.result_type(array.dtype, np.float32)

    def shift_block(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        t = block_info[0]["chunk-location"][0]
        return _shifted(block[0], displacement[t], dtype)[np.newaxis]

    return array.map_blocks(shift_block, dtype=dtype)


class ShiftedFrames:
    """A stack whose frame t is shifted by ``-displacement[t]`` when read.

    Only the frames an index asks for are shifted (cubic spline, zeros
    shifted in); napari reads one frame at a time.
    """

    def __init__(self, stack: LazyArray, displacement: np.ndarray):
        self.stack, self.displacement = stack, displacement
        self.shape = tuple(stack.shape)
        self.ndim = len(self.shape)
        self.dtype = np.result_type(stack.dtype, np.float32)

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        first, rest = (index[0], index[1:]) if index else (slice(None), ())
        frames = np.arange(self.shape[0])[first]
        shifted = np.stack(
            [
                _shifted(
                    np.asarray(self.stack[int(t)]),
                    self.displacement[int(t)],
                    self.dtype,
                )
                for t in np.atleast_1d(frames)
            ]
        )
        if np.ndim(frames) == 0:
            shifted = shifted[0]
            return shifted[rest]
        return shifted[(slice(None), *rest)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self[:]
        return values if dtype is None else values.astype(dtype)


def _shifted(frame: np.ndarray, moved: np.ndarray, dtype: Any) -> np.ndarray:
    """`frame` moved back by `moved` (pixels per axis of the frame)."""
    return ndimage.shift(
        np.asarray(frame, dtype=dtype), -np.asarray(moved), order=3, cval=0.0
    )
