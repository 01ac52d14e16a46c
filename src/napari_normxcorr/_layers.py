"""napari glue: layer data as arrays, coordinates through world space, and
the output layers built from a MatchResult.

Only public napari API is used (``data_to_world``, ``world_to_data``,
``features``), so this module imports napari only for layer types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._match import MatchResult, Status

if TYPE_CHECKING:
    import napari

# skimage.color.rgb2gray's weights (ITU-R BT.709).
_LUMINANCE = np.array([0.2125, 0.7154, 0.0721])

STATUS_COLORS = {
    Status.OK: (0.2, 0.9, 0.3, 1.0),
    Status.AMBIGUOUS: (1.0, 0.8, 0.1, 1.0),
    Status.INCONSISTENT: (1.0, 0.55, 0.0, 1.0),
    Status.ON_BORDER: (1.0, 0.55, 0.0, 1.0),
    Status.LOW_SCORE: (1.0, 0.2, 0.2, 1.0),
}
_FAILED_COLOR = (0.6, 0.6, 0.6, 1.0)


class Luminance:
    """Lazy grey view of an RGB(A) array: windows are converted when read."""

    def __init__(self, rgb):
        self.rgb = rgb
        self.shape = tuple(rgb.shape[:-1])
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float64)

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        colour = np.asarray(self.rgb[(*index, slice(0, 3))], dtype=float)
        return colour @ _LUMINANCE


def image_array(layer: napari.layers.Image):
    """The pixels of an Image layer to match in: full resolution, grey."""
    data = layer.data[0] if layer.multiscale else layer.data
    return Luminance(data) if layer.rgb else data


def affine_from(transform, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset of an affine map given as a function of a point.

    napari's ``data_to_world`` and ``world_to_data`` are affine; probing
    them at the origin and the unit vectors turns them into arrays, so that
    thousands of points convert in one product.
    """
    origin = np.asarray(transform(np.zeros(ndim)), dtype=float)
    columns = [
        np.asarray(transform(unit), dtype=float) - origin
        for unit in np.eye(ndim)
    ]
    return np.stack(columns, axis=1), origin


def convert(points: np.ndarray, transform) -> np.ndarray:
    """Apply an affine (matrix, offset) to (N, D) points."""
    matrix, offset = transform
    return points @ matrix.T + offset


def data_to_world(layer) -> tuple[np.ndarray, np.ndarray]:
    return affine_from(layer.data_to_world, layer.ndim)


def world_to_data(layer) -> tuple[np.ndarray, np.ndarray]:
    return affine_from(layer.world_to_data, layer.ndim)


def output_names(points_layer) -> dict[str, str]:
    name = points_layer.name
    return {
        "matched": f"{name} matched",
        "surface": f"{name} NCC surface",
        "displacement": f"{name} displacement",
        "peaks": f"{name} peaks",
        "height field": f"{name} NCC height field",
    }


def features_of(result: MatchResult) -> dict[str, np.ndarray]:
    """Per-point columns for the matched layer's ``features``."""
    table = result.to_table()
    keep = [
        name for name in table if not name.startswith(("point-", "matched-"))
    ]
    return {name: table[name] for name in keep}


def status_colors(result: MatchResult) -> np.ndarray:
    return np.array(
        [STATUS_COLORS.get(s, _FAILED_COLOR) for s in result.status]
    )


def matched_world(result, image_layer, points_world) -> np.ndarray:
    """World positions of the matches; unmatched rows stay at the point."""
    world = convert(result.matched, data_to_world(image_layer))
    missing = ~np.isfinite(world).all(axis=1)
    world[missing] = points_world[missing]
    return world


def surface_placement(surface, image_layer) -> tuple[np.ndarray, np.ndarray]:
    """Data of a surface layer and its affine in the target's world.

    The surface element q scores the match at target data position
    ``origin + q``; leading plane coordinates make it a one-plane stack,
    so it shows in its own time point or slice only.
    """
    values = surface.values
    plane = np.asarray(surface.plane, dtype=float)
    data = values.reshape((1,) * plane.size + values.shape)
    start = np.concatenate([plane, surface.origin])
    matrix, offset = data_to_world(image_layer)
    affine = np.eye(len(start) + 1)
    affine[:-1, :-1] = matrix
    affine[:-1, -1] = matrix @ start + offset
    return data, affine


def height_field(surface, image_layer, height: float = 20.0):
    """Mesh of a 2-D surface with the NCC as height (in world units).

    Returns vertices (height, then the world coordinates of each surface
    pixel), triangle faces and the NCC values for colouring.
    """
    values = surface.values
    if values.ndim != 2:
        raise ValueError("a height field needs a 2-D surface")
    grid = np.indices(values.shape).reshape(2, -1).T.astype(float)
    plane = np.broadcast_to(
        np.asarray(surface.plane, float), (len(grid), len(surface.plane))
    )
    data = np.concatenate([plane, surface.origin + grid], axis=1)
    world = convert(data, data_to_world(image_layer))
    vertices = np.c_[height * values.ravel(), world[:, -2:]]
    rows, cols = values.shape
    corner = np.arange(rows * cols).reshape(rows, cols)[:-1, :-1].ravel()
    faces = np.concatenate(
        [
            np.c_[corner, corner + 1, corner + cols],
            np.c_[corner + 1, corner + cols + 1, corner + cols],
        ]
    )
    return vertices, faces, values.ravel()


def set_or_add(
    viewer: napari.Viewer, name: str, kind: str, data, update=(), **kwargs
):
    """Update the layer called `name` in place, or add it.

    An existing layer gets the new data and the keyword arguments named in
    `update` (each only when it differs from what this function set last);
    the others (styling) apply only when the layer is created, so a user's
    restyling survives re-runs and live edits. Every napari setter costs a
    few milliseconds on the GUI thread, and live edits call this often.
    """
    if name in viewer.layers:
        layer = viewer.layers[name]
        if layer.ndim == np.ndim(data) or kind != "image":
            given = layer.metadata.setdefault(_GIVEN, {})
            # The data is our own copy: same shape, new values in place and
            # one refresh (a data setter costs several ms more in napari).
            in_place = kind != "surface" and np.shape(layer.data) == np.shape(
                data
            )
            if in_place:
                layer.data[...] = data
            else:
                layer.data = _own(kind, data)
            changed = [
                key
                for key in update
                if key not in given or not _same(given[key], kwargs[key])
            ]
            for key in changed:
                setattr(layer, key, kwargs[key])
                given[key] = kwargs[key]
            # An affine change refreshes the layer already.
            if in_place and "affine" not in changed:
                layer.refresh()
            return layer
        viewer.layers.remove(layer)
    add = getattr(viewer, f"add_{kind}")
    layer = add(_own(kind, data), name=name, **kwargs)
    layer.metadata[_GIVEN] = {key: kwargs[key] for key in update}
    return layer


# Metadata key of what set_or_add last set on a layer.
_GIVEN = "napari-normxcorr set"


def _own(kind: str, data):
    """Data the layer owns, so later updates may write into it."""
    return data if kind == "surface" else np.array(data, copy=True)


def _same(old, new) -> bool:
    try:
        return bool(np.array_equal(np.asarray(old), np.asarray(new)))
    except (TypeError, ValueError):
        return False
