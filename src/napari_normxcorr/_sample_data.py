"""Sample data for File > Open Sample: pairs with points and known answers.

Nothing is downloaded: the stereo pair ships with scikit-image, the others
are made here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

# What napari's sample data functions return: (data, layer kwargs, kind).
LayerData = tuple[np.ndarray, dict[str, Any], str]

POINT_STYLE = {
    "size": 10,
    "face_color": "transparent",
    "border_color": "cyan",
    "border_width": 0.15,
}
TRUTH_STYLE = {"size": 6, "face_color": "magenta", "symbol": "cross"}


def texture(
    shape: tuple[int, ...], sigma: float = 1.5, seed: int = 0
) -> np.ndarray:
    """Smooth random texture scaled to [0, 1]."""
    rng = np.random.default_rng(seed)
    values = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return (values - values.min()) / np.ptp(values)


def stereo_images() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey left and right images of scikit-image's motorcycle, and the
    ground-truth disparity (left column minus right column, pixels)."""
    from skimage import data
    from skimage.color import rgb2gray

    left, right, disparity = data.stereo_motorcycle()
    return rgb2gray(left), rgb2gray(right), disparity


def stereo_points(left: np.ndarray, count: int = 12) -> np.ndarray:
    """`count` textured points of `left`, spread over the image."""
    mean = ndimage.uniform_filter(left, 21)
    spread = np.sqrt(
        np.maximum(ndimage.uniform_filter(left**2, 21) - mean**2, 0)
    )
    rows = np.linspace(80, left.shape[0] - 80, 3).astype(int)
    cols = np.linspace(160, left.shape[1] - 80, count // 3).astype(int)
    points = []
    for r in rows:
        for c in cols:
            # The most textured pixel near each grid node.
            patch = spread[r - 20 : r + 21, c - 20 : c + 21]
            dr, dc = np.unravel_index(np.argmax(patch), patch.shape)
            points.append((r - 20 + dr, c - 20 + dc))
    return np.array(points, dtype=float)


def stereo_pair() -> list[LayerData]:
    """Left and right views of scikit-image's motorcycle, grey, with points.

    The points sit on textured places of the left image; their matches lie
    on the same row of the right image, up to ~60 pixels to the left.
    """
    left, right, _ = stereo_images()
    return [
        (left, {"name": "left"}, "image"),
        (right, {"name": "right"}, "image"),
        (
            stereo_points(left),
            {"name": "stereo points", **POINT_STYLE},
            "points",
        ),
    ]


def deformation_field(shape: tuple[int, int]) -> np.ndarray:
    """A smooth displacement field (2, rows, cols), up to about 4 pixels."""
    rows, cols = np.meshgrid(
        *(np.linspace(0, 1, n) for n in shape), indexing="ij"
    )
    return np.stack(
        [
            3.0 * np.sin(np.pi * cols) + 1.0 * rows,
            2.5 * np.cos(np.pi * rows) - 1.5 * cols,
        ]
    )


def deformed_pair() -> list[LayerData]:
    """A texture and its smooth deformation, points and their true matches.

    The target is sampled so that template content at ``p`` appears at
    ``p + field(p)`` (to first order); the 'true positions' layer shows
    where each point really went.
    """
    shape = (256, 256)
    before = texture(shape, seed=1)
    field = deformation_field(shape)
    grid = np.indices(shape, dtype=float)
    # Pull back: target(x) = before(x - field(x)).
    after = ndimage.map_coordinates(
        before, grid - field, order=3, mode="reflect"
    )
    points = (
        np.stack(
            np.meshgrid(
                np.arange(40, 220, 30), np.arange(40, 220, 30), indexing="ij"
            ),
            axis=-1,
        )
        .reshape(-1, 2)
        .astype(float)
    )
    truth = true_positions(points, field)
    return [
        (before, {"name": "before"}, "image"),
        (after, {"name": "after (deformed)"}, "image"),
        (truth, {"name": "true positions", **TRUTH_STYLE}, "points"),
        # Last, so it is the selected layer the widget picks by default.
        (points, {"name": "grid points", **POINT_STYLE}, "points"),
    ]


def true_positions(points: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Solve q = p + field(q) by fixed-point iteration (field is smooth)."""
    position = points.copy()
    for _ in range(20):
        displacement = np.stack(
            [ndimage.map_coordinates(f, position.T, order=1) for f in field],
            axis=1,
        )
        position = points + displacement
    return position


def drifting_stack() -> list[LayerData]:
    """A small time-lapse (t, row, col) whose features drift frame to frame.

    Two layers hold frames 0..3 and 1..4, so matching plane t of the first
    against plane t of the second follows each point from t to t + 1.
    """
    frames, size, drift = 5, 128, np.array([1.5, -1.0])
    base = texture((size + 20, size + 20), sigma=2.0, seed=2)
    stack = np.stack(
        [
            ndimage.shift(base, drift * t, order=3)[10:-10, 10:-10]
            for t in range(frames)
        ]
    )
    rng = np.random.default_rng(3)
    points = np.concatenate(
        [
            np.c_[np.full(4, t), rng.uniform(30, 98, size=(4, 2))]
            for t in range(frames - 1)
        ]
    )
    return [
        (stack[:-1], {"name": "frames t"}, "image"),
        (stack[1:], {"name": "frames t+1"}, "image"),
        (points, {"name": "tracked points", **POINT_STYLE}, "points"),
    ]
