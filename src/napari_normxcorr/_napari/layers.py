"""napari glue: layer pixels as arrays, coordinates through world space,
and output layers updated in place.

Only public napari API is used (``data_to_world``, ``world_to_data``,
``features``, ``metadata``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..core._arrays import LazyArray, grey

if TYPE_CHECKING:
    import napari

# An affine map of points: (matrix, offset).
Affine = tuple[np.ndarray, np.ndarray]
# Runs a step on a later turn of the event loop.
Later = Callable[[Callable[[], Any]], None]


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
    later: Later | None = None,
    **kwargs: Any,
) -> napari.layers.Layer:
    """Update the layer called `name` in place, or add it.

    An existing layer gets the new data and the keyword arguments named in
    `update` (each only when it differs from what this function set last);
    the others (styling) apply only when the layer is created, so a user's
    restyling survives re-runs and live edits. Every napari setter costs a
    few milliseconds on the GUI thread, and live edits call this often.

    With `later` (which runs a step on a later turn of the event loop), a
    new layer is added hidden and shown there: its shaders compile on its
    first paint, tens of ms without a GPU, as long as adding it. An empty
    layer that gets data is likewise restyled and shown there: napari
    takes tens of ms to add thousands of points, as long to restyle them.
    """
    if name in viewer.layers:
        layer = viewer.layers[name]
        if layer.ndim == np.ndim(data) or kind != "image":
            _update(layer, kind, data, update, kwargs, later)
            return layer
        viewer.layers.remove(layer)
    add = getattr(viewer, f"add_{kind}")
    if later is not None:
        kwargs["visible"] = False
    layer = add(_own(kind, data), name=name, **kwargs)
    layer.metadata[_GIVEN] = {
        key: kwargs[key] for key in update if key in kwargs
    }
    if later is not None:
        _leave(layer, later, partial(show, layer))
    return layer


def _update(
    layer: napari.layers.Layer,
    kind: str,
    data: Any,
    update: Sequence[str],
    kwargs: dict[str, Any],
    later: Later | None = None,
) -> None:
    """New data and the changed `update` settings for an existing layer."""
    # A layer whose showing (and restyling) an earlier call left for later
    # is restyled and shown by this one.
    shown = layer.metadata.pop(_WAITING, None) is not None or layer.visible
    # The data is our own copy: same shape, new values in place and one
    # refresh (a data setter costs several ms more in napari).
    if kind != "surface" and np.shape(layer.data) == np.shape(data):
        layer.data[...] = data
        changed = _restyle(layer, update, kwargs)
        if shown and not layer.visible:
            show(layer)
        # An affine change refreshes the layer already.
        elif "affine" not in changed:
            layer.refresh()
        return
    if later is not None and shown and len(layer.data) == 0:
        # An empty layer's data on this turn, its restyling on a later one
        # (napari refreshes a visible layer after each setter, a hidden
        # one once, when it is shown again).
        layer.visible = False
        layer.data = _own(kind, data)
        _leave(layer, later, partial(_restyle_and_show, layer, update, kwargs))
        return
    layer.data = _own(kind, data)
    _restyle(layer, update, kwargs)
    if shown and not layer.visible:
        show(layer)


def _restyle(
    layer: napari.layers.Layer, update: Sequence[str], kwargs: dict[str, Any]
) -> set[str]:
    """Set the `update` settings that differ from those set last; returns
    their names."""
    given = layer.metadata.setdefault(_GIVEN, {})
    changed = {
        key
        for key in update
        if key not in given or not _same(given[key], kwargs[key])
    }
    for key in update:
        if key in changed:
            setattr(layer, key, kwargs[key])
            given[key] = kwargs[key]
    return changed


def _restyle_and_show(
    layer: napari.layers.Layer, update: Sequence[str], kwargs: dict[str, Any]
) -> None:
    """The rest of an update that filled an empty layer."""
    _restyle(layer, update, kwargs)
    show(layer)


def _leave(
    layer: napari.layers.Layer, later: Later, finish: Callable[[], None]
) -> None:
    """Run `finish` (which shows `layer`) on a later turn, unless an
    update does the same meanwhile (it would be stale then); kept on the
    layer until then, so that `finish_left` can run it early."""
    layer.metadata[_WAITING] = finish

    def step() -> None:
        if layer.metadata.get(_WAITING) is finish:
            del layer.metadata[_WAITING]
            finish()

    later(step)


def finish_left(viewer: napari.Viewer) -> None:
    """Run at once what `set_or_add` left for later on the layers of
    `viewer` (when the turns it waits for will not come: the widget
    closes), so that no output stays hidden."""
    for layer in list(viewer.layers):
        finish = layer.metadata.pop(_WAITING, None)
        if finish is not None:
            finish()


def show(layer: napari.layers.Layer) -> None:
    """Show `layer`, refreshed (its extent too: the data may have changed
    while it was hidden)."""
    layer.visible = True
    layer.refresh(thumbnail=False, data_displayed=False, highlight=False)


# Metadata keys: what set_or_add last set on a layer; its showing (and
# restyling) left for later.
_GIVEN = "napari-normxcorr set"
_WAITING = "napari-normxcorr shown later"


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
