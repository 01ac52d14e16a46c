"""napari glue: layer pixels as arrays, coordinates through world space,
and output layers updated in place.

Only public napari API is used (``data_to_world``, ``world_to_data``,
``features``, ``metadata``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..core._arrays import LazyArray, grey

if TYPE_CHECKING:
    import napari

# An affine map of points: (matrix, offset).
Affine = tuple[np.ndarray, np.ndarray]


def image_array(layer: napari.layers.Image) -> LazyArray:
    """The pixels of an Image layer to match in: full resolution, grey."""
    data = layer.data[0] if layer.multiscale else layer.data
    return grey(data) if layer.rgb else data


def affine_from(
    transform: Callable[[np.ndarray], npt.ArrayLike], ndim: int
) -> Affine:
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


def convert(points: np.ndarray, transform: Affine) -> np.ndarray:
    """Apply an affine (matrix, offset) to (N, D) points."""
    matrix, offset = transform
    return points @ matrix.T + offset


def data_to_world(layer: napari.layers.Layer) -> Affine:
    """The layer's data-to-world map as (matrix, offset)."""
    return affine_from(layer.data_to_world, layer.ndim)


def world_to_data(layer: napari.layers.Layer) -> Affine:
    """The layer's world-to-data map as (matrix, offset)."""
    return affine_from(layer.world_to_data, layer.ndim)


def points_world(layer: napari.layers.Points) -> np.ndarray:
    """World coordinates of the points of a Points layer, (N, D)."""
    data = np.asarray(layer.data, dtype=float)
    return convert(data, data_to_world(layer))


def set_or_add(
    viewer: napari.Viewer,
    name: str,
    kind: str,
    data: Any,
    update: Sequence[str] = (),
    **kwargs: Any,
) -> napari.layers.Layer:
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
            _update(layer, kind, data, update, kwargs)
            return layer
        viewer.layers.remove(layer)
    add = getattr(viewer, f"add_{kind}")
    layer = add(_own(kind, data), name=name, **kwargs)
    layer.metadata[_GIVEN] = {
        key: kwargs[key] for key in update if key in kwargs
    }
    return layer


def _update(
    layer: napari.layers.Layer,
    kind: str,
    data: Any,
    update: Sequence[str],
    kwargs: dict[str, Any],
) -> None:
    """New data and the changed `update` settings for an existing layer."""
    given = layer.metadata.setdefault(_GIVEN, {})
    # The data is our own copy: same shape, new values in place and one
    # refresh (a data setter costs several ms more in napari).
    in_place = kind != "surface" and np.shape(layer.data) == np.shape(data)
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


# Metadata key of what set_or_add last set on a layer.
_GIVEN = "napari-normxcorr set"


def _own(kind: str, data: Any) -> Any:
    """Data the layer owns, so later updates may write into it."""
    return data if kind == "surface" else np.array(data, copy=True)


def _same(old: Any, new: Any) -> bool:
    try:
        return bool(np.array_equal(np.asarray(old), np.asarray(new)))
    except (TypeError, ValueError):
        return False


def pan_to(viewer: napari.Viewer, world: np.ndarray) -> None:
    """Centre the view on the world position `world` (its leading
    coordinates, a frame or a slice, become the sliders' positions)."""
    world = np.asarray(world, dtype=float)
    offset = viewer.dims.ndim - len(world)
    displayed = [a for a in viewer.dims.displayed if a >= offset]
    for axis in range(offset, viewer.dims.ndim):
        if axis not in displayed:
            viewer.dims.set_point(axis, world[axis - offset])
    # napari 0.9 keeps the camera in its scene (viewer.camera before).
    scene = getattr(viewer, "scene", viewer)
    scene.camera.center = tuple(world[a - offset] for a in displayed)


def reconnect(signal: Any, slot: Callable[..., Any]) -> None:
    """Connect `slot` to `signal` once, however often this runs."""
    signal.disconnect(slot)
    signal.connect(slot)


@contextmanager
def keeping_active(viewer: napari.Viewer) -> Iterator[None]:
    """Layers added meanwhile do not take over the user's active layer.

    napari activates an inserted layer: its controls are swapped in and
    the layer list redrawn (tens of ms), then again for the user's layer.
    With the selection's events held back, the user's layer is made
    active again (or the user's selection restored) before anyone hears
    of the change.
    """
    layers = viewer.layers
    selection = layers.selection
    active, kept = selection.active, list(selection)
    with selection.events.blocker_all():
        try:
            yield
        finally:
            selection.active = active if active in layers else None
            if selection.active is None:
                selection.update([ly for ly in kept if ly in layers])
