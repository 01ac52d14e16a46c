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
# Layer metadata the napari widget reads: the radii that suit a sample
# (template radius, max displacement per axis, px), and layers holding the
# answers, which it never picks as the points to match.
_KEY = "napari-normxcorr"
ANSWERS = {_KEY: {"answers": True}}


def preset(template_radius: int, max_displacement: Any) -> dict[str, Any]:
    """Metadata suggesting the widget's radii for a sample."""
    return {
        _KEY: {
            "template_radius": template_radius,
            "max_displacement": max_displacement,
        }
    }


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
        # On its row, up to ~60 px left: a few rows, many columns.
        (left, {"name": "left", "metadata": preset(10, (3, 60))}, "image"),
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
        (before, {"name": "before", "metadata": preset(12, 12)}, "image"),
        (after, {"name": "after (deformed)"}, "image"),
        (
            truth,
            {"name": "true positions", "metadata": ANSWERS, **TRUTH_STYLE},
            "points",
        ),
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


# The drifting time-lapse: frames, frame size, and where it is cut from.
SERIES_FRAMES = 30
SERIES_SIZE = 256
_SERIES_CORNER = 128


def series_motion(points: np.ndarray, t: float) -> np.ndarray:
    """Where content at `points` (row, col) of frame 0 is at time `t`.

    A drift of (0.5 t + 2 sin(t / 5), -1.2 t) px (smooth, sub-pixel per
    frame, 36 px to the left over the series, so points near the left
    edge leave the field of view), plus a swirl that grows with t: a
    local rotation of up to 3 degrees around the frame centre, fading
    towards the borders.
    """
    points = np.asarray(points, dtype=float)
    drift = np.array([0.5 * t + 2.0 * np.sin(t / 5.0), -1.2 * t])
    centre = SERIES_SIZE / 2
    radial = points - centre
    distance = np.hypot(*radial.T) / centre
    angle = np.deg2rad(3.0) * (t / SERIES_FRAMES) * np.exp(-(distance**2))
    cos, sin = np.cos(angle), np.sin(angle)
    rotated = np.c_[
        cos * radial[:, 0] - sin * radial[:, 1],
        sin * radial[:, 0] + cos * radial[:, 1],
    ]
    return centre + rotated + drift


def series_frame(
    base: np.ndarray, t: int, rng: np.random.Generator
) -> np.ndarray:
    """Frame `t`: `base` moved by `series_motion`, dimmer, with 1 % noise."""
    grid = np.indices((SERIES_SIZE, SERIES_SIZE), dtype=float)
    pixels = grid.reshape(2, -1).T
    # Pull back: where each pixel's content was at t = 0, found by
    # fixed-point iteration of q = motion(p) (the motion is smooth).
    source = pixels.copy()
    for _ in range(10):
        source += pixels - series_motion(source, t)
    values = ndimage.map_coordinates(
        base, (source + _SERIES_CORNER).T, order=3, mode="reflect"
    ).reshape(SERIES_SIZE, SERIES_SIZE)
    brightness = 1.0 - 0.01 * t  # a slow fade, and a little offset
    noisy = values * brightness + 0.004 * t + rng.normal(0, 0.01, values.shape)
    return noisy.astype(np.float32)


def drifting_series() -> list[LayerData]:
    """A 30-frame time-lapse of scikit-image's gravel, drifting and
    swirling, with points in frame 0 and their true tracks.

    See `series_motion` for the motion; frames are dimmer over time and
    carry 1 % noise. 'true tracks' (a Tracks layer) shows where every
    point really is in each frame while it stays in the field of view.
    """
    from skimage import data

    base = data.gravel().astype(float) / 255.0
    rng = np.random.default_rng(4)
    stack = np.stack(
        [series_frame(base, t, rng) for t in range(SERIES_FRAMES)]
    )
    axis = np.linspace(30.0, SERIES_SIZE - 30.0, 5)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    points = np.c_[np.zeros(len(grid)), grid]
    # napari's axis labels say that the first axis is time.
    axes = {"axis_labels": ("t", "y", "x")}
    return [
        (
            stack,
            {"name": "time-lapse", "metadata": preset(10, 10), **axes},
            "image",
        ),
        (
            series_tracks(grid),
            {"name": "true tracks", "metadata": ANSWERS, **axes},
            "tracks",
        ),
        (points, {"name": "points", **POINT_STYLE, **axes}, "points"),
    ]


def series_tracks(points: np.ndarray) -> np.ndarray:
    """napari Tracks data (track_id, t, row, col) of `points` (frame 0)
    while they stay inside the frame."""
    rows = []
    for t in range(SERIES_FRAMES):
        where = series_motion(points, t)
        inside = np.all((where >= 0) & (where <= SERIES_SIZE - 1), axis=1)
        ids = np.flatnonzero(inside)
        rows.append(np.c_[ids, np.full(len(ids), t), where[inside]])
    tracks = np.concatenate(rows)
    return tracks[np.lexsort((tracks[:, 1], tracks[:, 0]))]
