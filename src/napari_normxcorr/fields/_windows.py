"""Many windows of one shape cut from an image at once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def cut_windows(
    image: np.ndarray, corners: np.ndarray, shape: Sequence[int] | np.ndarray
) -> np.ndarray:
    """Windows of `shape` whose first pixels are the (n, D) whole-pixel
    `corners` of `image`: (n, *shape) float64, NaN beyond the image."""
    corners = np.asarray(corners, dtype=np.intp)
    n, d = corners.shape
    if (
        n
        and np.all(corners >= 0)
        and np.all(corners + np.asarray(shape) <= image.shape)
    ):
        # All inside: whole rows copied at a time from a strided view.
        strided = np.lib.stride_tricks.sliding_window_view(
            image, tuple(int(n) for n in shape)
        )
        return strided[tuple(corners.T)].astype(np.float64, copy=False)
    index: list[np.ndarray] = []
    inside = np.ones((n,) + (1,) * d, dtype=bool)
    for k in range(d):
        along = corners[:, k, None] + np.arange(shape[k])
        view = [n] + [1] * d
        view[1 + k] = shape[k]
        within = (along >= 0) & (along < image.shape[k])
        index.append(np.clip(along, 0, image.shape[k] - 1).reshape(view))
        inside = inside & within.reshape(view)
    windows = image[tuple(index)].astype(np.float64)
    windows[~np.broadcast_to(inside, windows.shape)] = np.nan
    return windows


def search_reach(
    centres: np.ndarray,
    radius: np.ndarray,
    reach: np.ndarray,
    shape: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """How far a search may go below and above each of the (n, D)
    `centres`, at most `reach`, so that a window of `radius` stays in an
    image of `shape`: (n, D) each; negative where even the centre's
    window sticks out on that side."""
    low = np.minimum(reach, centres - radius)
    high = np.minimum(reach, np.asarray(shape) - 1 - centres - radius)
    return low, high
